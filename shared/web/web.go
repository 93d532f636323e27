// Package web serves Karma's web page: the bundle built from web/ by `make web` (esbuild, the
// libraries pinned by web/package-lock.json) into dist/, committed, and embedded in the binary
// here — so `go build ./cmd/karma` needs no npm, and the page needs no CDN. karma serve mounts
// Handler at GET / (the page) and GET /ui/ (its files), beside the API; the page calls the API
// with the token it is given (none with --insecure-local). docs/web.md describes the page.
//
// The page's files are public (they hold no data); every answer carries a Content-Security-
// Policy allowing only this origin's scripts, styles and connections (and inline styles:
// Cytoscape.js sets its canvases' with style attributes).
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/usekarma/karma/shared/problem"
)

//go:embed dist
var dist embed.FS

// CSP is the Content-Security-Policy of the page's files.
const CSP = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

type file struct {
	body []byte
	etag string
}

// Handler serves GET / (index.html) and GET /ui/<file>.
func Handler() http.Handler {
	files := map[string]file{}
	entries, _ := fs.ReadDir(dist, "dist")
	for _, e := range entries {
		b, err := fs.ReadFile(dist, "dist/"+e.Name())
		if err != nil || e.IsDir() {
			continue
		}
		sum := sha256.Sum256(b)
		files[e.Name()] = file{body: b, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := "index.html"
		if r.URL.Path != "/" {
			name = strings.TrimPrefix(r.URL.Path, "/ui/")
		}
		f, ok := files[name]
		if !ok || strings.Contains(name, "/") {
			problem.Write(w, http.StatusNotFound, "no such file of the web page: "+r.URL.Path)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache") // revalidated: the ETag answers 304 while unchanged
		h.Set("ETag", f.etag)
		if ct := contentType(name); ct != "" {
			h.Set("Content-Type", ct)
		}
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
	})
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".json":
		return "application/json"
	case ".txt":
		return "text/plain; charset=utf-8"
	}
	return ""
}
