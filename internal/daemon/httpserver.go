package daemon

import (
	"fmt"
	"log"
	"net/http"
	"time"
)

// HTTPBounds bound what one client can make an HTTP listener hold: the
// size of a request's headers, and how long it may take to send the
// request, to read the answer, and to stay idle between requests. Every
// listener of the daemons is built with them (Server), and bounds
// bodies with LimitBody (appnode's API per route), so that a slow or
// hostile client costs one connection for a bounded time and never
// unbounded memory.
type HTTPBounds struct {
	// MaxHeaderBytes bounds the request line and headers; more is
	// answered 431. net/http allows 4 KiB of slack on top, and 4 KiB
	// more on a kept-alive connection (read ahead while it waits).
	MaxHeaderBytes int
	// ReadHeaderTimeout bounds the time to send the request line and
	// headers: a client that trickles them is disconnected.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds the time to send the whole request, body
	// included (not a stream's life: net/http clears the read deadline
	// once the request is read).
	ReadTimeout time.Duration
	// WriteTimeout bounds the time from the end of the request's
	// headers to the end of the answer: a client that stops reading a
	// large answer is cut off. A stream extends it per write
	// (http.ResponseController.SetWriteDeadline).
	WriteTimeout time.Duration
	// IdleTimeout bounds a kept-alive connection's wait for its next
	// request.
	IdleTimeout time.Duration
}

// AdminBounds are the admin listeners' bounds. WriteTimeout is 65s:
// pprof refuses a profile as long as the write timeout, and its
// default profile takes 30s (an operator may ask for up to a minute).
var AdminBounds = HTTPBounds{
	MaxHeaderBytes:    16 << 10,
	ReadHeaderTimeout: 5 * time.Second,
	ReadTimeout:       10 * time.Second,
	WriteTimeout:      65 * time.Second,
	IdleTimeout:       60 * time.Second,
}

// Or returns b with its zero fields taken from d.
func (b HTTPBounds) Or(d HTTPBounds) HTTPBounds {
	if b.MaxHeaderBytes == 0 {
		b.MaxHeaderBytes = d.MaxHeaderBytes
	}
	for _, f := range []struct{ v, d *time.Duration }{
		{&b.ReadHeaderTimeout, &d.ReadHeaderTimeout}, {&b.ReadTimeout, &d.ReadTimeout},
		{&b.WriteTimeout, &d.WriteTimeout}, {&b.IdleTimeout, &d.IdleTimeout},
	} {
		if *f.v == 0 {
			*f.v = *f.d
		}
	}
	return b
}

// AdminMaxBody bounds an admin request's body: the admin API's
// requests carry none, or a few bytes.
const AdminMaxBody = 64 << 10

// Server returns an http.Server serving h within b; errLog (nil: the
// log package's default) receives net/http's own complaints.
func (b HTTPBounds) Server(h http.Handler, errLog *log.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		MaxHeaderBytes:    b.MaxHeaderBytes,
		ReadHeaderTimeout: b.ReadHeaderTimeout,
		ReadTimeout:       b.ReadTimeout,
		WriteTimeout:      b.WriteTimeout,
		IdleTimeout:       b.IdleTimeout,
		ErrorLog:          errLog,
	}
}

// LimitBody refuses a request whose announced body is over max bytes
// with 413 and a JSON error, before h sees it, and makes reading more
// than max bytes of any other body fail (http.MaxBytesReader): h then
// answers (appnode's JSON reader with 413), and the connection is not
// reused. max <= 0 means no bound.
func LimitBody(h http.Handler, max int64) http.Handler {
	if max <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			// Not worth reading: the connection closes after the answer.
			w.Header().Set("Connection", "close")
			WriteError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("request body of %d bytes is larger than %d bytes", r.ContentLength, max))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, max)
		h.ServeHTTP(w, r)
	})
}
