// Package ui is Steward's web console: a single-page application written in
// plain JavaScript modules and CSS, embedded in the steward binary. It needs
// no build step and loads nothing from outside the server (air-gapped
// clusters have no CDN), and it talks only to the REST API under /api/v1/.
//
// Handler serves the console at the root of the site; the http package mounts
// it as the fallback behind /api/. Routes of the application (/agents/…,
// /configs/…) are answered with index.html so deep links and reloads work.
package ui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// asset is one embedded file, prepared once: its bytes, content type and a
// strong ETag over its content.
type asset struct {
	body        []byte
	contentType string
	etag        string
	// gz is body gzipped, when that is smaller; gzETag names it.
	gz     []byte
	gzETag string
}

// contentTypes are set explicitly so that serving does not depend on the
// host's mime tables (a minimal container may have none, and a JavaScript
// module served as text/plain is refused by browsers).
var contentTypes = map[string]string{
	".html":  "text/html; charset=utf-8",
	".js":    "text/javascript; charset=utf-8",
	".mjs":   "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".svg":   "image/svg+xml",
	".png":   "image/png",
	".ico":   "image/x-icon",
	".json":  "application/json",
	".txt":   "text/plain; charset=utf-8",
	".woff2": "font/woff2",
}

// Handler returns the console's handler. It serves GET and HEAD only (405
// with Allow otherwise):
//
//   - an embedded file by its path (index.html itself at "/");
//   - index.html for any other path without a file extension, so the
//     application's client-side routes survive a reload; paths under /api/
//     are never answered this way (404), so an unknown API route is not
//     mistaken for the page;
//   - 404 for a missing file with an extension (a stale script reference
//     must fail loudly, not execute HTML).
//
// Text files are sent gzip-compressed to clients that accept it (Vary:
// Accept-Encoding; the compressed form has its own ETag). Every response
// carries a strong ETag and Cache-Control "no-cache": the
// browser keeps the files but revalidates them, getting 304 Not Modified
// until the binary is upgraded (file names are not content-hashed, so a
// max-age would serve a stale mix after an upgrade). It also sets
// X-Content-Type-Options: nosniff, a Content-Security-Policy that allows
// only same-origin scripts, styles and connections, and forbids framing.
func Handler() http.Handler {
	h, err := newHandler(static)
	if err != nil {
		// The embedded tree is fixed at build time; failing here means the
		// binary itself is broken.
		panic(err)
	}
	return h
}

type handler struct {
	files map[string]*asset // by clean path without leading slash
	index *asset
}

func newHandler(fsys fs.FS) (*handler, error) {
	sub, err := fs.Sub(fsys, "static")
	if err != nil {
		return nil, err
	}
	h := &handler{files: make(map[string]*asset)}
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := contentTypes[path.Ext(p)]
		if ct == "" {
			ct = mime.TypeByExtension(path.Ext(p))
		}
		if ct == "" {
			ct = http.DetectContentType(b)
		}
		a := &asset{body: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		if compressible(ct) {
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
			_, _ = zw.Write(b)
			_ = zw.Close()
			if buf.Len() < len(b) {
				a.gz, a.gzETag = buf.Bytes(), `"`+hex.EncodeToString(sum[:12])+`-gz"`
			}
		}
		h.files[p] = a
		return nil
	})
	if err != nil {
		return nil, err
	}
	h.index = h.files["index.html"]
	if h.index == nil {
		return nil, fs.ErrNotExist
	}
	return h, nil
}

// csp allows only what the console uses: its own scripts, styles, images and
// API (fetch and EventSource are same-origin).
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	a := h.files[p]
	switch {
	case a != nil:
	case p == "" || (path.Ext(p) == "" && p != "api" && !strings.HasPrefix(p, "api/")):
		a = h.index
	default:
		http.NotFound(w, r)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", a.contentType)
	hd.Set("Cache-Control", "no-cache")
	body, etag := a.body, a.etag
	if a.gz != nil {
		hd.Set("Vary", "Accept-Encoding")
		if acceptsGzip(r) {
			body, etag = a.gz, a.gzETag
			hd.Set("Content-Encoding", "gzip")
		}
	}
	hd.Set("ETag", etag)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("X-Frame-Options", "DENY")
	if a == h.index {
		hd.Set("Content-Security-Policy", csp)
	}
	// ServeContent handles If-None-Match (304), Range and HEAD.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

func compressible(contentType string) bool {
	return strings.HasPrefix(contentType, "text/") || strings.HasPrefix(contentType, "image/svg") ||
		strings.HasPrefix(contentType, "application/json")
}

// acceptsGzip reports whether the request's Accept-Encoding allows gzip
// (listed without q=0).
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for _, part := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
				continue
			}
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}
