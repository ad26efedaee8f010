package web

import (
	"bytes"
	"embed"
	"errors"
	"io/fs"
	"net/http"
	"path"
	"time"
)

//go:embed static
var files embed.FS

// Files are the page's files: index.html, app.js and style.css.
func Files() fs.FS {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	return sub
}

// ErrNoFile is Serve's error for a name that is not one of the files.
var ErrNoFile = errors.New("no such file")

// started stands in for the files' modification time (embedded files
// have none), so conditional requests work within one run.
var started = time.Now()

// Serve writes the file name (e.g. "index.html") with security headers
// for the page: it runs only its own script, talks only to its own
// origin, and is never framed. It returns ErrNoFile, having written
// nothing, when there is no such file, so the caller answers in its own
// error format. It is safe for concurrent use.
func Serve(w http.ResponseWriter, r *http.Request, name string) error {
	b, err := fs.ReadFile(Files(), path.Clean(name))
	if err != nil || name == "" || name == "." {
		return ErrNoFile
	}
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, name, started, bytes.NewReader(b))
	return nil
}
