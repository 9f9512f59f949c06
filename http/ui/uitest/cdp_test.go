package uitest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/testenv"
	"github.com/stewardhq/steward/opamp/websocket"
)

// A small Chrome DevTools Protocol client: one WebSocket to the browser,
// pages attached as flattened sessions.

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

type cdpResponse struct {
	ID     int64           `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	SessionID string `json:"sessionId"`
}

// browser is a running headless Chromium.
type browser struct {
	t      *testing.T
	cmd    *exec.Cmd
	ws     *websocket.Conn
	nextID atomic.Int64

	mu       sync.Mutex
	pending  map[int64]chan cdpResponse
	handlers map[string][]func(method string, params json.RawMessage) // by session id
	done     chan struct{}
}

func startBrowser(t *testing.T) *browser {
	t.Helper()
	bin := findChromium(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
		"--font-render-hinting=none", "--user-data-dir="+dir, "--remote-debugging-port=0",
		"--remote-debugging-address=127.0.0.1", "about:blank")
	var stderr strings.Builder
	cmd.Stderr = &limitedWriter{w: &stderr, n: 64 << 10}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cancel()
		<-exited
	})
	// Chromium writes the port and the browser target's path once the
	// DevTools server listens.
	portFile := filepath.Join(dir, "DevToolsActivePort")
	var wsURL string
	deadline := time.Now().Add(60 * time.Second)
	for wsURL == "" {
		if b, err := os.ReadFile(portFile); err == nil {
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if len(lines) == 2 {
				wsURL = "ws://127.0.0.1:" + lines[0] + lines[1]
				break
			}
		}
		select {
		case <-exited:
			t.Fatalf("chromium exited before listening: %s", stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("chromium did not write %s within 60s: %s", portFile, stderr.String())
		}
	}
	ws, _, err := websocket.Dial(context.Background(), wsURL, &websocket.DialOptions{MaxMessageSize: 256 << 20})
	if err != nil {
		t.Fatalf("dial devtools %s: %v", wsURL, err)
	}
	b := &browser{t: t, cmd: cmd, ws: ws, pending: map[int64]chan cdpResponse{}, handlers: map[string][]func(string, json.RawMessage){}, done: make(chan struct{})}
	go b.readLoop()
	t.Cleanup(func() {
		_ = ws.Close()
		<-b.done
	})
	return b
}

type limitedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
	n  int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := l.n - l.w.Len(); room > 0 {
		if len(p) > room {
			l.w.Write(p[:room])
		} else {
			l.w.Write(p)
		}
	}
	return len(p), nil
}

func (b *browser) readLoop() {
	defer close(b.done)
	for {
		_, data, err := b.ws.ReadMessage()
		if err != nil {
			b.mu.Lock()
			for id, ch := range b.pending {
				close(ch)
				delete(b.pending, id)
			}
			b.mu.Unlock()
			return
		}
		var r cdpResponse
		if err := json.Unmarshal(data, &r); err != nil {
			continue
		}
		b.mu.Lock()
		if r.ID != 0 {
			if ch := b.pending[r.ID]; ch != nil {
				delete(b.pending, r.ID)
				ch <- r
			}
			b.mu.Unlock()
			continue
		}
		hs := append([]func(string, json.RawMessage){}, b.handlers[r.SessionID]...)
		b.mu.Unlock()
		for _, h := range hs {
			h(r.Method, r.Params)
		}
	}
}

// call sends a command (to a page session when session is set) and decodes
// the result into out (if non-nil).
func (b *browser) call(session, method string, params any, out any) error {
	id := b.nextID.Add(1)
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	data, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	ch := make(chan cdpResponse, 1)
	b.mu.Lock()
	b.pending[id] = ch
	b.mu.Unlock()
	if err := b.ws.WriteMessage(websocket.Text, data); err != nil {
		return fmt.Errorf("cdp %s: %w", method, err)
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return fmt.Errorf("cdp %s: browser connection closed", method)
		}
		if r.Error != nil {
			return fmt.Errorf("cdp %s: %s (%d)", method, r.Error.Message, r.Error.Code)
		}
		if out != nil {
			return json.Unmarshal(r.Result, out)
		}
		return nil
	case <-time.After(60 * time.Second):
		b.mu.Lock()
		delete(b.pending, id)
		b.mu.Unlock()
		return fmt.Errorf("cdp %s: no answer within 60s", method)
	}
}

// page is one browser tab.
type page struct {
	t       *testing.T
	b       *browser
	session string
	base    string // the server's http://127.0.0.1:port

	mu      sync.Mutex
	errors  []string          // uncaught exceptions and console errors
	pending map[string]string // requests in flight: id -> method and URL
}

// newPage opens a tab with a 1440×900 viewport in the given color scheme
// ("light" or "dark").
func (b *browser) newPage(t *testing.T, base, scheme string) *page {
	t.Helper()
	var tgt struct {
		TargetID string `json:"targetId"`
	}
	if err := b.call("", "Target.createTarget", map[string]any{"url": "about:blank"}, &tgt); err != nil {
		t.Fatal(err)
	}
	var att struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.call("", "Target.attachToTarget", map[string]any{"targetId": tgt.TargetID, "flatten": true}, &att); err != nil {
		t.Fatal(err)
	}
	p := &page{t: t, b: b, session: att.SessionID, base: base}
	b.mu.Lock()
	b.handlers[p.session] = append(b.handlers[p.session], p.onEvent)
	b.mu.Unlock()
	p.pending = map[string]string{}
	for _, m := range []string{"Page.enable", "Runtime.enable", "Log.enable", "Network.enable"} {
		p.must(m, nil, nil)
	}
	p.must("Emulation.setDeviceMetricsOverride", map[string]any{"width": 1440, "height": 900, "deviceScaleFactor": 1, "mobile": false}, nil)
	p.must("Emulation.setEmulatedMedia", map[string]any{"features": []map[string]string{{"name": "prefers-color-scheme", "value": scheme}}}, nil)
	return p
}

func (p *page) onEvent(method string, params json.RawMessage) {
	switch method {
	case "Network.requestWillBeSent":
		var e struct {
			RequestID string `json:"requestId"`
			Request   struct{ Method, URL string }
		}
		_ = json.Unmarshal(params, &e)
		p.mu.Lock()
		p.pending[e.RequestID] = time.Now().Format("15:04:05.000") + " " + e.Request.Method + " " + e.Request.URL
		p.mu.Unlock()
	case "Network.loadingFinished", "Network.loadingFailed":
		var e struct {
			RequestID string `json:"requestId"`
		}
		_ = json.Unmarshal(params, &e)
		p.mu.Lock()
		delete(p.pending, e.RequestID)
		p.mu.Unlock()
	case "Runtime.exceptionThrown":
		var e struct {
			ExceptionDetails struct {
				Text      string `json:"text"`
				Exception struct {
					Description string `json:"description"`
				} `json:"exception"`
			} `json:"exceptionDetails"`
		}
		_ = json.Unmarshal(params, &e)
		p.addError("exception: " + e.ExceptionDetails.Text + " " + e.ExceptionDetails.Exception.Description)
	case "Log.entryAdded":
		var e struct {
			Entry struct {
				Source string `json:"source"`
				Level  string `json:"level"`
				Text   string `json:"text"`
				URL    string `json:"url"`
			} `json:"entry"`
		}
		_ = json.Unmarshal(params, &e)
		// Network errors are expected (a 401 before login, a 400 for a bad
		// selector); script errors and CSP violations are bugs.
		if e.Entry.Level == "error" && e.Entry.Source != "network" {
			p.addError(e.Entry.Source + ": " + e.Entry.Text + " " + e.Entry.URL)
		}
	case "Runtime.consoleAPICalled":
		var e struct {
			Type string `json:"type"`
			Args []struct {
				Value       any    `json:"value"`
				Description string `json:"description"`
			} `json:"args"`
		}
		_ = json.Unmarshal(params, &e)
		if e.Type == "error" {
			var parts []string
			for _, a := range e.Args {
				parts = append(parts, fmt.Sprint(a.Value, a.Description))
			}
			p.addError("console.error: " + strings.Join(parts, " "))
		}
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

func (p *page) must(method string, params, out any) {
	p.t.Helper()
	if err := p.b.call(p.session, method, params, out); err != nil {
		p.t.Fatal(err)
	}
}

// goTo loads base+path and waits for the document to finish loading.
func (p *page) goTo(path string) {
	p.t.Helper()
	var r struct {
		ErrorText string `json:"errorText"`
	}
	p.must("Page.navigate", map[string]any{"url": p.base + path}, &r)
	if r.ErrorText != "" {
		p.t.Fatalf("navigate %s: %s", path, r.ErrorText)
	}
	p.waitFor("document.readyState === 'complete'", "page %s loaded", path)
}

// eval runs a JavaScript expression (awaiting a promise) and decodes its
// value into out (if non-nil).
func (p *page) eval(expr string, out any) error {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	err := p.b.call(p.session, "Runtime.evaluate", map[string]any{
		"expression": expr, "returnByValue": true, "awaitPromise": true, "userGesture": true,
	}, &r)
	if err != nil {
		return err
	}
	if r.ExceptionDetails != nil {
		return fmt.Errorf("js %q: %s %s", expr, r.ExceptionDetails.Text, r.ExceptionDetails.Exception.Description)
	}
	if out != nil && len(r.Result.Value) > 0 {
		return json.Unmarshal(r.Result.Value, out)
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
// fails with a description, the page's text and a screenshot in the test's
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
	b, _ := json.Marshal(css)
	return "document.querySelector(" + string(b) + ")"
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
	var pt struct{ X, Y float64 }
	p.js("(() => { const e = "+sel(css)+"; e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect(); return {X: r.x + r.width / 2, Y: r.y + r.height / 2}; })()", &pt)
	for _, typ := range []string{"mouseMoved", "mousePressed", "mouseReleased"} {
		p.must("Input.dispatchMouseEvent", map[string]any{"type": typ, "x": pt.X, "y": pt.Y, "button": "left", "buttons": 1, "clickCount": 1}, nil)
	}
}

// typeInto focuses the field, selects its content and types text with
// real input events (replacing what was there).
func (p *page) typeInto(css, text string) {
	p.t.Helper()
	p.waitFor(sel(css), "%s to exist", css)
	p.js("(() => { const e = "+sel(css)+"; e.focus(); if (e.select) e.select(); })()", nil)
	p.must("Input.insertText", map[string]any{"text": text}, nil)
}

// setValue sets a form control's value and fires input and change, for
// controls without a text caret (select, textarea with much text).
func (p *page) setValue(css, value string) {
	p.t.Helper()
	p.waitFor(sel(css), "%s to exist", css)
	p.js("(() => { const e = "+sel(css)+"; e.value = "+jsString(value)+"; e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true})); return e.value; })()", nil)
}

// press sends one key (e.g. "Enter") to the focused element.
func (p *page) press(key string) {
	p.t.Helper()
	codes := map[string]int{"Enter": 13, "Escape": 27, "Tab": 9, "ArrowRight": 39, "ArrowLeft": 37}
	params := map[string]any{"key": key, "code": key, "windowsVirtualKeyCode": codes[key]}
	if key == "Enter" {
		params["text"] = "\r"
	}
	params["type"] = "keyDown"
	p.must("Input.dispatchKeyEvent", params, nil)
	delete(params, "text")
	params["type"] = "keyUp"
	p.must("Input.dispatchKeyEvent", params, nil)
}

// text returns an element's innerText ("" when missing).
func (p *page) text(css string) string {
	p.t.Helper()
	var s string
	p.js("(() => { const e = "+sel(css)+"; return e ? e.innerText : ''; })()", &s)
	return s
}

func (p *page) screenshotTo(path string) error {
	var m struct {
		CSSContentSize struct{ Width, Height float64 } `json:"cssContentSize"`
	}
	if err := p.b.call(p.session, "Page.getLayoutMetrics", nil, &m); err != nil {
		return err
	}
	h := m.CSSContentSize.Height
	if h < 900 {
		h = 900
	}
	if h > 4000 {
		h = 4000
	}
	var r struct {
		Data string `json:"data"`
	}
	if err := p.b.call(p.session, "Page.captureScreenshot", map[string]any{
		"format": "png", "captureBeyondViewport": true,
		"clip": map[string]any{"x": 0, "y": 0, "width": 1440, "height": h, "scale": 1},
	}, &r); err != nil {
		return err
	}
	png, err := base64.StdEncoding.DecodeString(r.Data)
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
