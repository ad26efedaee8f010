package server

import (
	"net/http"
	"time"

	"github.com/ringfront/ringfront/appnode/transport"
)

// streamWriter returns w for forwarding r: for a stream, a writer that
// moves the connection's write deadline on before each write, so the
// forwarded stream outlives the listener's write timeout as a stream
// served here does (eventStream.flush), and a client that stops reading
// is still cut off after it. (The read timeout does not end a stream:
// net/http clears the read deadline once the request is read.)
func (s *Server) streamWriter(w http.ResponseWriter, r *http.Request) http.ResponseWriter {
	if !transport.Streaming(r) {
		return w
	}
	return &deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), timeout: s.bounds.WriteTimeout}
}

// deadlineWriter moves the write deadline on before each write.
type deadlineWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (d *deadlineWriter) Write(b []byte) (int, error) {
	d.rc.SetWriteDeadline(time.Now().Add(d.timeout))
	return d.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController (the reverse proxy's flushes)
// reach the real writer.
func (d *deadlineWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }
