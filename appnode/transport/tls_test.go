package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringfront/ringfront/internal/certs"
)

// logBuffer collects log lines, safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// tlsMember is a Transport with member TLS serving on a Listener, as
// a node does: apiCert (nil: plain HTTP) for the API.
type tlsMember struct {
	addr string
	t    *Transport
	log  *logBuffer
	ln   *Listener
}

func newTLSMember(tb testing.TB, secret []byte, links bool, apiCert *tls.Certificate) *tlsMember {
	tb.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	m := &tlsMember{addr: raw.Addr().String(), log: &logBuffer{}}
	log := slog.New(slog.NewTextHandler(m.log, nil))
	mt, err := NewMemberTLS(secret, m.addr, log, nil)
	if err != nil {
		tb.Fatal(err)
	}
	m.t = New(Options{Self: m.addr, Secret: secret, Links: links, Log: log, TLS: mt})
	var get func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	if apiCert != nil {
		get = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return apiCert, nil }
	}
	m.ln = NewListener(raw, mt, get, log)
	mux := http.NewServeMux()
	mux.HandleFunc(LinkRoute, m.t.ServeLink)
	mux.HandleFunc("GET /internal/v1/echo", m.t.Internal(echo, MaxBody))
	mux.Handle("/", echo)
	m.t.SetHandler(mux)
	srv := &http.Server{Handler: mux, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go srv.Serve(m.ln)
	tb.Cleanup(func() {
		m.t.Close()
		srv.Close()
	})
	return m
}

// TestMemberTLS: members with the same secret call and forward to each
// other over TLS, over links and over HTTP; a member with another secret
// is refused both ways, and both say so naming the other.
func TestMemberTLS(t *testing.T) {
	for _, links := range []bool{true, false} {
		name := map[bool]string{true: "links", false: "http"}[links]
		t.Run(name, func(t *testing.T) {
			a := newTLSMember(t, testSecret, links, nil)
			b := newTLSMember(t, testSecret, links, nil)
			ctx := context.Background()
			var out struct{}
			err := a.t.Call(ctx, "GET", b.addr, "/internal/v1/echo", nil, &out)
			// echo answers text, not JSON: the call got through when
			// only the decoding fails.
			if err == nil || !strings.Contains(err.Error(), "decoding answer") {
				t.Fatalf("call over member TLS: %v", err)
			}
			if links && b.t.LinksServed() == 0 {
				t.Errorf("no link was opened")
			}

			// A forward of a plain client request over TLS.
			w := &recorderWriter{h: http.Header{}}
			r, _ := http.NewRequest("GET", "http://"+a.addr+"/v1/users/joe/stream", nil)
			r.RemoteAddr = "127.0.0.9:1"
			plan := &Plan{To: b.addr, Hops: 1, Timeout: 5 * time.Second}
			a.t.Forward(w, r, plan)
			if plan.Retry || !strings.Contains(w.body.String(), "GET /v1/users/joe/stream") {
				t.Fatalf("forward over member TLS: retry=%v %s %q", plan.Retry, plan.Why, w.body.String())
			}

			other := newTLSMember(t, []byte("another cluster's secret"), links, nil)
			err = other.t.Call(ctx, "GET", a.addr, "/internal/v1/echo", nil, nil)
			if !errors.Is(err, ErrClusterMismatch) {
				t.Fatalf("call from a member with another secret = %v, want ErrClusterMismatch", err)
			}
			for _, m := range []*tlsMember{a, other} {
				waitLog(t, m.log, "the cluster secret differs")
			}
			if !strings.Contains(other.log.String(), "peer="+a.addr) {
				t.Errorf("the caller's log does not name the member it called:\n%s", other.log.String())
			}
			if !strings.Contains(a.log.String(), "peer=127.0.0.1:") {
				t.Errorf("the refusing member's log does not name the caller:\n%s", a.log.String())
			}
		})
	}
}

func waitLog(t *testing.T, l *logBuffer, want string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(l.String(), want); {
		if time.Now().After(deadline) {
			t.Fatalf("log never said %q:\n%s", want, l.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// recorderWriter is a minimal http.ResponseWriter.
type recorderWriter struct {
	h    http.Header
	code int
	body bytes.Buffer
}

func (w *recorderWriter) Header() http.Header { return w.h }
func (w *recorderWriter) WriteHeader(c int)   { w.code = c }
func (w *recorderWriter) Write(b []byte) (int, error) {
	return w.body.Write(b)
}

// TestMemberTLSRefusesPlain: a member with member TLS refuses member
// traffic that does not come over it (a plain link, a signed request
// over plain HTTP), while plain API clients are served on the same port.
func TestMemberTLSRefusesPlain(t *testing.T) {
	a := newTLSMember(t, testSecret, true, nil)
	plain := New(Options{Self: "127.0.0.1:1", Secret: testSecret, Links: true, Log: quiet})
	defer plain.Close()
	err := plain.Call(context.Background(), "GET", a.addr, "/internal/v1/echo", nil, nil)
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusUnauthorized || !strings.Contains(e.Msg, "must come over TLS") {
		t.Fatalf("a plain member call = %v, want 401 saying member traffic must come over TLS", err)
	}
	resp, err := http.Get("http://" + a.addr + "/v1/users/joe")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "GET /v1/users/joe member=false body=" {
		t.Errorf("a plain API request = %q", body)
	}
}

// TestAPITLS: with a certificate the API speaks TLS (HTTP/2 and
// HTTP/1.1) on the member port, members still reach it, and a plain
// HTTP request is told to use HTTPS.
func TestAPITLS(t *testing.T) {
	ca, err := certs.NewAuthority("test CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.TLSCertificate([]string{"127.0.0.1"}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	a := newTLSMember(t, testSecret, true, &cert)
	b := newTLSMember(t, testSecret, true, &cert)
	for _, h2 := range []bool{true, false} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, ForceAttemptHTTP2: h2}
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		resp, err := (&http.Client{Transport: tr}).Get("https://" + a.addr + "/v1/users/joe")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantProto := map[bool]int{true: 2, false: 1}[h2]
		if resp.ProtoMajor != wantProto || string(body) != "GET /v1/users/joe member=false body=" {
			t.Errorf("HTTPS request (HTTP/%d) = HTTP/%d %q", wantProto, resp.ProtoMajor, body)
		}
		tr.CloseIdleConnections()
	}
	var out struct{}
	if err := b.t.Call(context.Background(), "GET", a.addr, "/internal/v1/echo", nil, &out); err == nil || !strings.Contains(err.Error(), "decoding answer") {
		t.Errorf("member call to a member with an API certificate: %v", err)
	}
	resp, err := http.Get("http://" + a.addr + "/v1/users/joe")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "HTTP request to an HTTPS server") {
		t.Errorf("plain HTTP to the TLS API = %d %q", resp.StatusCode, body)
	}
}
