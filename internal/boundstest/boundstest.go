// Package boundstest checks, from a client's side, that an HTTP
// listener keeps the bounds daemon.HTTPBounds sets: every daemon's
// listener tests call it on their own listener.
package boundstest

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// SlowHeaders sends a request's headers to addr a byte every 20ms (about
// 200 bytes: 4s) and fails t unless the listener disconnects it while it
// is still sending, no sooner than readHeaderTimeout, which must be a
// third of that at most.
func SlowHeaders(t testing.TB, addr string, readHeaderTimeout time.Duration) {
	t.Helper()
	const step = 20 * time.Millisecond
	start := time.Now() // the listener's clock starts at the connection
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The listener may answer (408) before it closes: read to the end.
	closed := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, c)
		closed <- err
	}()
	head := "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("s", 150) + "\r\n\r\n"
	if 3*readHeaderTimeout > time.Duration(len(head))*step {
		t.Fatalf("a read header timeout of %v is too long to check in %v", readHeaderTimeout, time.Duration(len(head))*step)
	}
	for i := 0; i < len(head); i++ {
		select {
		case err := <-closed:
			if took := time.Since(start); took < readHeaderTimeout {
				t.Errorf("disconnected after %v, before the timeout (%v): %v", took, readHeaderTimeout, err)
			}
			return
		case <-time.After(step):
		}
		if _, err := c.Write([]byte{head[i]}); err != nil {
			return // the listener closed the connection: what we want
		}
	}
	t.Errorf("%s read a whole slow header (%d bytes over %v) without disconnecting", addr, len(head), time.Since(start))
}

// HeaderTooLarge sends url a GET with a header of size bytes and fails
// t unless the answer is 431. size must be over the listener's
// MaxHeaderBytes plus net/http's slack: 4 KiB, and 4 KiB more on a
// kept-alive connection.
func HeaderTooLarge(t testing.TB, url string, size int) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Big", strings.Repeat("a", size))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a %d-byte header: status %d, want 431", size, resp.StatusCode)
	}
}
