package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ringfront/ringfront/internal/boundstest"
)

// serveBounded serves h within b on a loopback port until the test
// ends, and returns the address.
func serveBounded(t *testing.T, b HTTPBounds, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := b.Server(h, log.New(io.Discard, "", 0))
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return ln.Addr().String()
}

// testBounds are short enough that a test waits for them, long enough
// that a loaded machine never trips them on an ordinary request.
var testBounds = HTTPBounds{
	MaxHeaderBytes:    1 << 10,
	ReadHeaderTimeout: 300 * time.Millisecond,
	ReadTimeout:       300 * time.Millisecond,
	WriteTimeout:      300 * time.Millisecond,
	IdleTimeout:       time.Second,
}

func TestBoundsHeaderTooLarge(t *testing.T) {
	addr := serveBounded(t, testBounds, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	boundstest.HeaderTooLarge(t, "http://"+addr+"/", 32<<10)
}

func TestLimitBody(t *testing.T) {
	served := 0
	var readErr error
	h := LimitBody(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served++
		_, readErr = io.ReadAll(r.Body)
		var mbe *http.MaxBytesError
		if errors.As(readErr, &mbe) {
			WriteError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("request body is larger than %d bytes", mbe.Limit))
		}
	}), 100)
	addr := serveBounded(t, testBounds, h)
	for _, tc := range []struct {
		name    string
		body    io.Reader
		want    int
		handler bool // whether the handler saw it
	}{
		{"announced, within", strings.NewReader(strings.Repeat("a", 100)), 200, true},
		{"announced, over", strings.NewReader(strings.Repeat("a", 101)), 413, false},
		{"chunked, over", io.MultiReader(strings.NewReader(strings.Repeat("a", 101))), 413, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			served, readErr = 0, nil
			resp, err := http.Post("http://"+addr+"/", "text/plain", tc.body)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.want)
			}
			if got := served == 1; got != tc.handler {
				t.Errorf("handler ran: %v, want %v", got, tc.handler)
			}
			if tc.want == 413 {
				var e struct{ Error string }
				if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || !strings.Contains(e.Error, "larger than 100 bytes") {
					t.Errorf("body: %q, %v; want a JSON error saying larger than 100 bytes", e.Error, err)
				}
			}
		})
	}
}

// TestBoundsSlowHeaders: a client that sends its headers a byte at a
// time, more slowly than ReadHeaderTimeout allows for all of them, is
// disconnected while it is still sending, and no handler runs.
func TestBoundsSlowHeaders(t *testing.T) {
	served := make(chan struct{}, 1)
	addr := serveBounded(t, testBounds, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served <- struct{}{} }))
	boundstest.SlowHeaders(t, addr, testBounds.ReadHeaderTimeout)
	select {
	case <-served:
		t.Error("the handler ran")
	default:
	}
}

// TestBoundsStalledReader: an answer the client stops reading is cut
// off once WriteTimeout has passed: the handler's write fails instead
// of blocking for ever.
func TestBoundsStalledReader(t *testing.T) {
	const chunk, total = 64 << 10, 1 << 30
	result := make(chan int64, 1)
	addr := serveBounded(t, testBounds, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, chunk)
		var n int64
		for n < total {
			m, err := w.Write(buf)
			n += int64(m)
			if err != nil {
				break
			}
		}
		result <- n
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetReadBuffer(4 << 10)
	}
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-result:
		if n >= total {
			t.Errorf("the handler wrote all %d bytes to a client that read none", n)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the handler was still writing to a stalled client 20s after its write timeout")
	}
}

// TestBoundsStreamOutlivesTimeouts: a stream that moves its write
// deadline on before each write lives well past WriteTimeout, and past
// ReadTimeout (net/http clears the read deadline once the request is
// read).
func TestBoundsStreamOutlivesTimeouts(t *testing.T) {
	const events = 12 // 50ms apart: twice the timeouts
	addr := serveBounded(t, testBounds, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		for i := range events {
			rc.SetWriteDeadline(time.Now().Add(testBounds.WriteTimeout))
			if _, err := io.WriteString(w, "event\n"); err != nil {
				return
			}
			rc.Flush()
			if i < events-1 {
				time.Sleep(50 * time.Millisecond)
			}
		}
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		got++
	}
	if got != events {
		t.Errorf("read %d events (%v), want %d", got, sc.Err(), events)
	}
}

func TestAdminBounds(t *testing.T) {
	a := NewAdmin(nil)
	a.Handle("POST /v1/echo", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		WriteJSON(w, http.StatusOK, "ok")
	})
	if err := a.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	base := "http://" + a.Addr().String()

	resp, err := http.Post(base+"/v1/echo", "application/json", strings.NewReader(strings.Repeat("a", AdminMaxBody+1)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversize body: status %d, want 413", resp.StatusCode)
	}
	boundstest.HeaderTooLarge(t, base+"/healthz", AdminBounds.MaxHeaderBytes+16<<10)
	if a.srv.ReadHeaderTimeout == 0 || a.srv.ReadTimeout == 0 || a.srv.WriteTimeout == 0 || a.srv.IdleTimeout == 0 {
		t.Errorf("admin listener without a timeout: %+v", AdminBounds)
	}
}
