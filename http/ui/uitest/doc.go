// Package uitest holds the web console's end-to-end tests: they run the real
// server stack (store/sqlite, controlplane, the OpAMP transport, the REST API
// and the embedded UI) on 127.0.0.1 with a real OpAMP agent connected, and
// drive a headless Chromium with chromedp (the Chrome DevTools Protocol over
// a pipe; the browser opens no debugging port).
//
// Chromium is found through STEWARD_CHROMIUM, then chromium, chromium-browser
// and google-chrome on PATH (scripts/install-chromium.sh installs Debian's).
// Without one the tests skip, or fail when STEWARD_REQUIRE_ALL_TESTS is set
// (CI). Set STEWARD_UI_SCREENSHOTS=dir to write the screenshots the tests
// take to dir (docs/screenshots is the committed set).
package uitest
