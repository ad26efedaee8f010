package server

import (
	"net/http"
	"time"

	"github.com/ringfront/ringfront/appnode/transport"
	"github.com/ringfront/ringfront/internal/daemon"
)

// DefaultBounds are the API listener's bounds (daemon.HTTPBounds) when
// Options.Bounds leaves one zero. Every API request is bounded by a
// few member timeouts (seconds), so 30s to write an answer is generous;
// a live stream moves its write deadline on at each write.
var DefaultBounds = daemon.HTTPBounds{
	MaxHeaderBytes:    16 << 10, // a token and a few headers; no cookies
	ReadHeaderTimeout: 5 * time.Second,
	ReadTimeout:       30 * time.Second,
	WriteTimeout:      30 * time.Second,
	IdleTimeout:       120 * time.Second,
}

// clientBodies refuses a client request whose announced body is over
// transport.MaxBody (413, before it is read); the members' internal
// routes bound their own bodies.
func clientBodies(h http.Handler) http.Handler {
	limited := daemon.LimitBody(h, transport.MaxBody)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > transport.MaxBody && !internalPath(r.URL.Path) {
			limited.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func internalPath(p string) bool { return len(p) >= 10 && p[:10] == "/internal/" }
