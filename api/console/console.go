// Package console serves the key administration screen (Settings →
// Integrations → API Keys): a small web app of plain HTML, CSS and ES
// modules embedded in the binary. It talks to the /api/v1 key, usage and
// whoami routes with the admin key the user pastes, which it keeps in the
// tab's sessionStorage only.
package console

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
)

// Path is where the API mounts the console. The handler also works when
// mounted elsewhere, since its pages refer to their files by relative URLs.
const Path = "/console/"

// CSP is the Content-Security-Policy of every console response: scripts,
// styles and API calls from the console's own origin only, no inline
// script or style, no framing, no form submissions.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

//go:embed static
var static embed.FS

// file is one embedded file, ready to serve.
type file struct {
	name        string
	data        []byte
	contentType string
	etag        string
}

var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// loadFiles reads every embedded file once. A file of an unknown kind is a
// programming error, caught by the package's tests.
func loadFiles() map[string]*file {
	files := map[string]*file{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		ct, ok := contentTypes[path.Ext(p)]
		if !ok {
			panic("console: no content type for " + p)
		}
		sum := sha256.Sum256(data)
		name := strings.TrimPrefix(p, "static/")
		files[name] = &file{name: name, data: data, contentType: ct, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		panic("console: reading embedded files: " + err.Error())
	}
	return files
}

var files = loadFiles()

// Handler serves the console. It expects to be mounted at a path ending in
// "/" (Path), with or without http.StripPrefix: it serves the file named by
// the last element of the request path, and index.html for the mount point
// itself. The mount point without its trailing slash is redirected to Path.
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cache-Control", "no-cache")

	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		plain(w, http.StatusMethodNotAllowed, "Method not allowed.")
		return
	}
	p := r.URL.Path
	if p == "" || p == strings.TrimSuffix(Path, "/") {
		h.Set("Location", Path)
		plain(w, http.StatusPermanentRedirect, "See "+Path)
		return
	}
	name := p[strings.LastIndexByte(p, '/')+1:]
	if name == "" {
		name = "index.html"
	}
	f, ok := files[name]
	if !ok {
		plain(w, http.StatusNotFound, "Not found.")
		return
	}
	h.Set("Content-Type", f.contentType)
	h.Set("ETag", f.etag)
	http.ServeContent(w, r, f.name, time.Time{}, bytes.NewReader(f.data))
}

func plain(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(msg + "\n"))
}
