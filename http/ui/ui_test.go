package ui

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHandlerServesAssetsWithContentTypes(t *testing.T) {
	h := Handler()
	for _, tc := range []struct{ path, ctype, contains string }{
		{"/", "text/html; charset=utf-8", `<script type="module" src="/js/app.js">`},
		{"/index.html", "text/html; charset=utf-8", "<title>Steward</title>"},
		{"/js/app.js", "text/javascript; charset=utf-8", "export function navigate"},
		{"/js/pages/agent.js", "text/javascript; charset=utf-8", "export function mount"},
		{"/css/steward.css", "text/css; charset=utf-8", "prefers-color-scheme: dark"},
		{"/favicon.svg", "image/svg+xml", "<svg"},
	} {
		r := get(t, h, http.MethodGet, tc.path, nil)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", tc.path, r.StatusCode)
		}
		if got := r.Header.Get("Content-Type"); got != tc.ctype {
			t.Errorf("%s: Content-Type %q, want %q", tc.path, got, tc.ctype)
		}
		if got := r.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q", tc.path, got)
		}
		if b := body(t, r); !strings.Contains(b, tc.contains) {
			t.Errorf("%s: body lacks %q", tc.path, tc.contains)
		}
	}
}

func TestHandlerSPAFallback(t *testing.T) {
	h := Handler()
	index := body(t, get(t, h, http.MethodGet, "/", nil))
	for _, p := range []string{"/agents", "/agents/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "/configs/otelcol?tab=diff&from=1&to=2", "/login", "/no/such/route"} {
		r := get(t, h, http.MethodGet, p, nil)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d, want 200 (index.html)", p, r.StatusCode)
		}
		if r.Header.Get("Content-Type") != "text/html; charset=utf-8" || body(t, r) != index {
			t.Errorf("%s: not served index.html", p)
		}
		if r.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("%s: no Content-Security-Policy on the page", p)
		}
	}
	// A missing file with an extension, and anything under /api/, is a 404:
	// a stale script reference must not execute HTML, and an unknown API
	// route must not look like success.
	for _, p := range []string{"/js/missing.js", "/css/old.css", "/api/v1/nope", "/api", "/favicon.ico"} {
		if r := get(t, h, http.MethodGet, p, nil); r.StatusCode != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", p, r.StatusCode)
		}
	}
}

func TestHandlerCachingRevalidates(t *testing.T) {
	h := Handler()
	r := get(t, h, http.MethodGet, "/js/app.js", nil)
	etag := r.Header.Get("ETag")
	if !strings.HasPrefix(etag, `"`) || len(etag) < 10 {
		t.Fatalf("ETag %q is not a strong validator", etag)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("Cache-Control %q, want no-cache", cc)
	}
	r2 := get(t, h, http.MethodGet, "/js/app.js", map[string]string{"If-None-Match": etag})
	if r2.StatusCode != http.StatusNotModified {
		t.Fatalf("conditional GET: status %d, want 304", r2.StatusCode)
	}
	if b := body(t, r2); b != "" {
		t.Errorf("304 carried a body of %d bytes", len(b))
	}
	r3 := get(t, h, http.MethodGet, "/js/app.js", map[string]string{"If-None-Match": `"stale"`})
	if r3.StatusCode != http.StatusOK {
		t.Errorf("stale ETag: status %d, want 200", r3.StatusCode)
	}
	if other := get(t, h, http.MethodGet, "/css/steward.css", nil).Header.Get("ETag"); other == etag {
		t.Errorf("two different files share ETag %s", etag)
	}
}

func TestHandlerMethods(t *testing.T) {
	h := Handler()
	r := get(t, h, http.MethodHead, "/js/app.js", nil)
	if r.StatusCode != http.StatusOK || body(t, r) != "" || r.Header.Get("Content-Length") == "" {
		t.Errorf("HEAD: status %d, length %q", r.StatusCode, r.Header.Get("Content-Length"))
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		r := get(t, h, m, "/", nil)
		if r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: status %d Allow %q", m, r.StatusCode, r.Header.Get("Allow"))
		}
	}
}

func TestHandlerPathTraversal(t *testing.T) {
	h := Handler()
	for _, p := range []string{"/../ui.go", "/js/../../ui.go", "/%2e%2e/ui.go"} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL.Path = p
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if strings.Contains(rec.Body.String(), "package ui") {
			t.Fatalf("%s served source outside static/", p)
		}
	}
}

// Every module the page imports must be embedded: walk the import graph
// from app.js the way the browser would.
func TestEveryImportedModuleIsEmbedded(t *testing.T) {
	h := Handler()
	seen := map[string]bool{}
	var walk func(p string)
	walk = func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		r := get(t, h, http.MethodGet, p, nil)
		if r.StatusCode != http.StatusOK || r.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
			t.Fatalf("module %s: status %d type %q", p, r.StatusCode, r.Header.Get("Content-Type"))
		}
		for _, line := range strings.Split(body(t, r), "\n") {
			i := strings.Index(line, " from '")
			if !strings.HasPrefix(line, "import ") || i < 0 {
				continue
			}
			rel := line[i+len(" from '"):]
			rel = rel[:strings.Index(rel, "'")]
			dir := p[:strings.LastIndex(p, "/")+1]
			walk(cleanJoin(dir, rel))
		}
	}
	walk("/js/app.js")
	if len(seen) < 8 {
		t.Fatalf("import graph has only %d modules: %v", len(seen), seen)
	}
}

func cleanJoin(dir, rel string) string {
	parts := strings.Split(strings.TrimSuffix(dir, "/"), "/")
	for _, s := range strings.Split(rel, "/") {
		switch s {
		case ".":
		case "..":
			parts = parts[:len(parts)-1]
		default:
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, "/")
}

func TestHandlerGzip(t *testing.T) {
	h := Handler()
	plain := get(t, h, http.MethodGet, "/js/pages/agent.js", nil)
	plainBody := body(t, plain)
	if plain.Header.Get("Content-Encoding") != "" {
		t.Fatalf("compressed without Accept-Encoding: %q", plain.Header.Get("Content-Encoding"))
	}
	if plain.Header.Get("Vary") != "Accept-Encoding" {
		t.Errorf("Vary %q", plain.Header.Get("Vary"))
	}
	for _, ae := range []string{"gzip", "gzip, deflate, br, zstd", "br;q=1.0, gzip;q=0.8"} {
		r := get(t, h, http.MethodGet, "/js/pages/agent.js", map[string]string{"Accept-Encoding": ae})
		if r.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("Accept-Encoding %q: Content-Encoding %q", ae, r.Header.Get("Content-Encoding"))
		}
		zr, err := gzip.NewReader(bytes.NewReader([]byte(body(t, r))))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		if err != nil || string(got) != plainBody {
			t.Fatalf("gunzipped body differs (%d vs %d bytes, %v)", len(got), len(plainBody), err)
		}
		if r.Header.Get("ETag") == plain.Header.Get("ETag") {
			t.Errorf("compressed and identity responses share ETag %s", r.Header.Get("ETag"))
		}
		if r2 := get(t, h, http.MethodGet, "/js/pages/agent.js", map[string]string{"Accept-Encoding": ae, "If-None-Match": r.Header.Get("ETag")}); r2.StatusCode != http.StatusNotModified {
			t.Errorf("revalidating the compressed form: %d", r2.StatusCode)
		}
	}
	if r := get(t, h, http.MethodGet, "/js/app.js", map[string]string{"Accept-Encoding": "gzip;q=0, identity"}); r.Header.Get("Content-Encoding") != "" {
		t.Errorf("gzip;q=0 got %q", r.Header.Get("Content-Encoding"))
	}
}
