package uitest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/stewardhq/steward/internal/testenv"
)

// The tests drive a headless Chromium with chromedp, which starts the
// browser and talks the Chrome DevTools Protocol to it over a pipe (no
// debugging port is opened). The helpers below keep the tests' vocabulary:
// go to a page, wait for a JavaScript condition, click, type, screenshot.

// findChromium returns the browser binary, or skips/fails the test.
func findChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("STEWARD_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("STEWARD_CHROMIUM=%s: %v", p, err)
		}
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testenv.Missing(t, "no chromium found (set STEWARD_CHROMIUM or run scripts/install-chromium.sh)")
	return ""
}

// browser is a running headless Chromium; it stops when the test ends.
type browser struct {
	ctx context.Context // chromedp context of the browser's first tab
}

// callTimeout bounds one command to the browser, so a hung browser fails
// the test instead of holding it until go test's own timeout.
const callTimeout = 60 * time.Second

func startBrowser(t *testing.T) *browser {
	t.Helper()
	bin := findChromium(t)
	output := &limitedWriter{n: 64 << 10}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true), chromedp.Flag("font-render-hinting", "none"),
		chromedp.CombinedOutput(output))
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancel()
		cancelAlloc() // waits for the browser to exit and removes its profile
	})
	// The first action starts the browser and binds it to ctx.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v\n%s", bin, err, output)
	}
	return &browser{ctx: ctx}
}

// limitedWriter keeps the first n bytes of the browser's output, for the
// message when it fails to start.
type limitedWriter struct {
	mu sync.Mutex
	b  strings.Builder
	n  int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := l.n - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (l *limitedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// page is one browser tab.
type page struct {
	t    *testing.T
	ctx  context.Context // chromedp context of the tab
	base string          // the server's http://127.0.0.1:port

	mu      sync.Mutex
	errors  []string          // uncaught exceptions and console errors
	pending map[string]string // requests in flight: id -> time, method and URL
}

// newPage opens a tab with a 1440×900 viewport in the given color scheme
// ("light" or "dark"). The tab closes when the test ends.
func (b *browser) newPage(t *testing.T, base, scheme string) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	p := &page{t: t, ctx: ctx, base: base, pending: map[string]string{}}
	if err := chromedp.Listen(ctx, p.onNetwork); err != nil {
		cancel()
		t.Fatalf("open a tab: %v", err)
	}
	console := chromedp.Console(ctx)
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for m, err := range console {
			if err != nil {
				return
			}
			// Network errors are expected (a 401 before login, a 400 for a
			// bad selector); script errors and CSP violations are bugs.
			if m.IsException() || (m.Type == chromedp.ConsoleError && m.Source != "network") {
				p.addError(strings.TrimSpace(m.String() + " " + m.URL))
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-collected
	})
	p.run(chromedp.EmulateViewport(1440, 900))
	p.call(func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
		return err
	})
	return p
}

// resize sets the viewport to w×h CSS pixels (a phone is 390×844).
func (p *page) resize(w, h int64) {
	p.t.Helper()
	p.run(chromedp.EmulateViewport(w, h))
}

// setHeaders sends these headers with every request of the tab (an API
// token instead of a session, say).
func (p *page) setHeaders(hs map[string]any) {
	p.t.Helper()
	p.call(func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers(hs)})
		return err
	})
}

// onNetwork keeps the requests in flight, to name them when a wait times
// out. It runs on chromedp's reading goroutine and must be quick.
func (p *page) onNetwork(ev any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e := ev.(type) {
	case *network.EventRequestWillBeSent:
		p.pending[string(e.RequestID)] = time.Now().Format("15:04:05.000") + " " + e.Request.Method + " " + e.Request.URL
	case *network.EventLoadingFinished:
		delete(p.pending, string(e.RequestID))
	case *network.EventLoadingFailed:
		delete(p.pending, string(e.RequestID))
	}
}

func (p *page) addError(s string) {
	p.mu.Lock()
	p.errors = append(p.errors, s)
	p.mu.Unlock()
}

// jsErrors returns the script errors seen so far.
func (p *page) jsErrors() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.errors...)
}

// do runs f against the tab within callTimeout.
func (p *page) do(f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(p.ctx, callTimeout)
	defer cancel()
	return f(ctx)
}

// call runs f against the tab and fails the test on an error.
func (p *page) call(f func(ctx context.Context) error) {
	p.t.Helper()
	if err := p.do(f); err != nil {
		p.t.Fatal(err)
	}
}

// run runs chromedp actions against the tab and fails the test on an error.
func (p *page) run(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	p.call(func(ctx context.Context) error { return chromedp.Do(ctx, actions...) })
}

// goTo loads base+path and waits for the document to finish loading.
func (p *page) goTo(path string) {
	p.t.Helper()
	if err := p.do(func(ctx context.Context) error { return chromedp.Do(ctx, chromedp.Navigate(p.base+path)) }); err != nil {
		p.t.Fatalf("navigate %s: %v", path, err)
	}
	p.waitFor("document.readyState === 'complete'", "page %s loaded", path)
}

// userGesture evaluates as if the user acted (for APIs that need it).
func userGesture(e *runtime.EvaluateParams) { e.UserGesture = new(true) }

// eval runs a JavaScript expression (awaiting a promise) and decodes its
// value into out (if non-nil).
func (p *page) eval(expr string, out any) error {
	err := p.do(func(ctx context.Context) error {
		if out == nil {
			return chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](expr, chromedp.EvalAwaitPromise, userGesture))
		}
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise, userGesture))
		if err != nil || len(raw) == 0 {
			return err
		}
		return json.Unmarshal(raw, out)
	})
	if err != nil {
		return fmt.Errorf("js %q: %w", expr, err)
	}
	return nil
}

// js evaluates expr and fails the test on an error.
func (p *page) js(expr string, out any) {
	p.t.Helper()
	if err := p.eval(expr, out); err != nil {
		p.t.Fatal(err)
	}
}

// waitTimeout bounds every wait: generous, because a loaded 2-core machine
// runs the whole stack and a browser.
const waitTimeout = 45 * time.Second

// waitFor polls a JavaScript condition until it is truthy; on timeout it
// fails with a description, the page's text and a screenshot in the
// temporary directory.
func (p *page) waitFor(cond string, what string, args ...any) {
	p.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	var last error
	for {
		var ok bool
		last = p.eval("!!("+cond+")", &ok)
		if last == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	var text string
	_ = p.eval("document.body ? document.body.innerText.slice(0, 3000) : ''", &text)
	shot := filepath.Join(os.TempDir(), fmt.Sprintf("steward-uitest-%d.png", time.Now().UnixNano()))
	_ = p.screenshotTo(shot)
	p.mu.Lock()
	var inflight []string
	for _, r := range p.pending {
		inflight = append(inflight, r)
	}
	p.mu.Unlock()
	p.t.Fatalf("timed out after %s waiting for %s (condition %s; last error %v)\nscreenshot: %s\npage text:\n%s\njs errors: %v\nrequests in flight: %v",
		waitTimeout, fmt.Sprintf(what, args...), cond, last, shot, text, p.jsErrors(), inflight)
}

// sel returns a JS expression selecting one element.
func sel(css string) string {
	return "document.querySelector(" + jsString(css) + ")"
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// click waits for the element to be visible and enabled, then clicks its
// centre with real mouse events.
func (p *page) click(css string) {
	p.t.Helper()
	p.waitFor("(() => { const e = "+sel(css)+"; if (!e || e.disabled) return false; const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; })()", "%s to be clickable", css)
	p.run(chromedp.Click(chromedp.CSS(css)))
}

// typeInto focuses the field, selects its content and types text with
// real input events (replacing what was there).
func (p *page) typeInto(css, text string) {
	p.t.Helper()
	p.waitFor(sel(css), "%s to exist", css)
	p.js("(() => { const e = "+sel(css)+"; e.focus(); if (e.select) e.select(); })()", nil)
	p.call(func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, input.InsertText, input.InsertTextParams{Text: text})
		return err
	})
}

// setValue sets a form control's value and fires input and change, for
// controls without a text caret (select, textarea with much text).
func (p *page) setValue(css, value string) {
	p.t.Helper()
	p.waitFor(sel(css), "%s to exist", css)
	p.js("(() => { const e = "+sel(css)+"; e.value = "+jsString(value)+"; e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true})); return e.value; })()", nil)
}

// keys names the keys that press sends.
var keys = map[string]string{"Enter": kb.Enter, "Escape": kb.Escape, "Tab": kb.Tab, "ArrowRight": kb.ArrowRight, "ArrowLeft": kb.ArrowLeft}

// press sends one key (e.g. "Enter") to the focused element.
func (p *page) press(key string) {
	p.t.Helper()
	k, ok := keys[key]
	if !ok {
		p.t.Fatalf("press: unknown key %q", key)
	}
	p.run(chromedp.KeyEvent(k))
}

// clearCookies deletes every cookie of the browser, as a session ending
// elsewhere would.
func (p *page) clearCookies() {
	p.t.Helper()
	p.call(func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{})
		return err
	})
}

// text returns an element's innerText ("" when missing).
func (p *page) text(css string) string {
	p.t.Helper()
	var s string
	p.js("(() => { const e = "+sel(css)+"; return e ? e.innerText : ''; })()", &s)
	return s
}

// screenshotTo writes a PNG of the page, as wide as the viewport and as
// tall as its content (the viewport's height to 4000 pixels), to path.
func (p *page) screenshotTo(path string) error {
	var png []byte
	err := p.do(func(ctx context.Context) error {
		m, err := chromedp.Call(ctx, cdppage.GetLayoutMetrics, cdp.Empty{})
		if err != nil {
			return err
		}
		w, h := 1440.0, 900.0
		if v := m.CSSLayoutViewport; v != nil {
			w, h = float64(v.ClientWidth), float64(v.ClientHeight)
		}
		if m.CSSContentSize != nil {
			h = min(max(m.CSSContentSize.Height, h), 4000)
		}
		shot, err := chromedp.Call(ctx, cdppage.CaptureScreenshot, cdppage.CaptureScreenshotParams{
			Format: cdppage.CaptureScreenshotFormatPng, CaptureBeyondViewport: new(true),
			Clip: &cdppage.Viewport{Width: w, Height: h, Scale: 1},
		})
		png = shot.Data
		return err
	})
	if err != nil {
		return err
	}
	if len(png) < 8 || string(png[1:4]) != "PNG" {
		return errors.New("screenshot is not a PNG")
	}
	return os.WriteFile(path, png, 0o644)
}

// screenshot saves a full-page PNG named name.png into
// $STEWARD_UI_SCREENSHOTS (when set). It waits for pending relative-time
// and layout updates by letting two animation frames pass.
func (p *page) screenshot(name string) {
	p.t.Helper()
	dir := os.Getenv("STEWARD_UI_SCREENSHOTS")
	if dir == "" {
		return
	}
	// Transient notifications would cover the page in the docs.
	p.js("document.getElementById('toasts')?.replaceChildren()", nil)
	p.js("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))", nil)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := p.screenshotTo(filepath.Join(dir, name+".png")); err != nil {
		p.t.Fatalf("screenshot %s: %v", name, err)
	}
}
