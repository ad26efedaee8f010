package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringfront/ringfront/appnode/transport/frame"
	"github.com/ringfront/ringfront/appnode/transport/link"
)

var testSecret = []byte("test cluster secret")

// quiet discards what the transports log.
var quiet = slog.New(slog.DiscardHandler)

// member is a Transport serving links and HTTP on loopback, with h
// answering what arrives.
type member struct {
	addr string
	t    *Transport
	ts   *httptest.Server
}

func newMember(tb testing.TB, secret []byte, links bool, h http.Handler) *member {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	m := &member{addr: ln.Addr().String()}
	m.t = New(Options{Self: m.addr, Secret: secret, Links: links, Log: quiet})
	mux := http.NewServeMux()
	mux.HandleFunc(LinkRoute, m.t.ServeLink)
	mux.Handle("/", h)
	m.t.SetHandler(mux)
	m.ts = httptest.NewUnstartedServer(mux)
	m.ts.Listener.Close()
	m.ts.Listener = ln
	m.ts.Start()
	tb.Cleanup(func() {
		m.t.Close()
		m.ts.Close()
	})
	return m
}

// echo answers every request with what it saw: its method and URI,
// whether it came from a member, and its body.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "%s %s member=%v body=%s", r.Method, r.URL.RequestURI(), FromMember(r), body)
})

func TestLinkFrameCodec(t *testing.T) {
	r := httptest.NewRequest("POST", "http://127.0.0.1:1/v1/users/joe/posts?x=1", nil)
	r.RemoteAddr = "127.0.0.9:4242"
	r.Header.Set("Authorization", "Bearer tok")
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Connection", "close")         // hop-by-hop: dropped
	r.Header.Set(HeaderCluster, "forged")       // never passed on
	r.Header.Set(HeaderUnreachable, "forged")   // replaced by the plan's
	r.Header.Set(HeaderBudget, "999999")        // replaced by the plan's
	r.Header.Set("X-Forwarded-For", "10.0.0.1") // extended
	tr := New(Options{Secret: testSecret})
	if Budget(r) != 0 {
		t.Errorf("a client's own %s was believed", HeaderBudget)
	}
	plan := &Plan{To: "127.0.0.1:2", Hops: 1, Skip: []string{"127.0.0.1:3"}, Timeout: 450 * time.Millisecond}
	head := link.EncodeRequest(r.Method, r.URL.RequestURI(), r.RemoteAddr, tr.forwardHeader(r, plan))
	req, err := link.DecodeRequest(tr.served.Mark(context.Background()), "127.0.0.1:2", append(head, `{"text":"hi"}`...))
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != "POST" || req.RequestURI != "/v1/users/joe/posts?x=1" || req.URL.Path != "/v1/users/joe/posts" || req.URL.Query().Get("x") != "1" || req.RemoteAddr != "127.0.0.9:4242" {
		t.Errorf("decoded %s %s from %s", req.Method, req.RequestURI, req.RemoteAddr)
	}
	want := map[string]string{
		"Authorization":   "Bearer tok",
		"Content-Type":    "application/json",
		HeaderHops:        "1",
		HeaderUnreachable: "127.0.0.1:3",
		HeaderBudget:      "450",
		"X-Forwarded-For": "10.0.0.1, 127.0.0.9",
		"Connection":      "",
		HeaderCluster:     "",
		HeaderFallback:    "",
	}
	for k, v := range want {
		if got := req.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	var body bytes.Buffer
	body.ReadFrom(req.Body)
	if body.String() != `{"text":"hi"}` {
		t.Errorf("body = %q", body.String())
	}
	if !FromMember(req) {
		t.Error("a link request is not marked as coming from a member")
	}
	if b := Budget(req); b != 450*time.Millisecond {
		t.Errorf("Budget = %v, want the plan's 450ms", b)
	}

	// Malformed frames are errors, never panics or huge allocations.
	for _, bad := range [][]byte{
		{},
		{0x05, 'G', 'E'},                    // string longer than the frame
		{0x03, 'G', 'E', 'T', 0x01, '/', 0}, // missing the header count
		append(frame.AppendString(frame.AppendString(frame.AppendString(nil, "GET"), "/"), ""), 0xff, 0xff, 0xff, 0x0f), // absurd header count
		{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80},                                              // overlong uvarint
	} {
		if _, err := link.DecodeRequest(context.Background(), "x", bad); err == nil {
			t.Errorf("payload %x decoded without error", bad)
		}
	}
	if err := tr.writeAnswer(httptest.NewRecorder(), binaryAnswer(42, nil, "")); err == nil {
		t.Error("an answer with status 42 was accepted")
	}
}

// binaryAnswer encodes an answer frame's payload.
func binaryAnswer(code int, h http.Header, body string) []byte {
	b := frame.AppendHeader(binaryUvarint(code), h, link.HopByHop)
	return append(b, body...)
}

func binaryUvarint(v int) []byte {
	var b []byte
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// TestCallsAndForwards: a member's calls and forwards reach another
// over a link (or HTTP when links are off, or when the other refuses the
// secret), arrive as from a member, and keep their bodies; with another
// secret they are refused, and the caller shows why in its status.
func TestCallsAndForwards(t *testing.T) {
	for _, tc := range []struct {
		name        string
		links       bool
		theirSecret []byte
		wantOpen    int
		wantHTTP    bool
	}{
		{"links", true, testSecret, link.Conns, false},
		{"http", false, testSecret, 0, false},
		{"links, another secret", true, []byte("another secret"), 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			owner := newMember(t, tc.theirSecret, true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				auth := New(Options{Secret: tc.theirSecret})
				if strings.HasPrefix(r.URL.Path, "/internal/") {
					auth.Internal(echo, MaxBody)(w, r)
					return
				}
				r, _ = auth.Authenticate(w, r, MaxBody) // a forward: believed when signed
				echo(w, r)
			}))
			// The caller's clock, moved ahead to end its HTTP spell.
			var ahead atomic.Int64
			now := func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
			caller := New(Options{Secret: testSecret, Links: tc.links, Log: quiet, Now: now})
			defer caller.Close()
			err := caller.Call(context.Background(), "POST", owner.addr, "/internal/v1/x", map[string]int{"a": 1}, nil)
			var te *Error
			switch {
			case bytes.Equal(tc.theirSecret, testSecret) && err != nil:
				t.Errorf("call: %v", err)
			case !bytes.Equal(tc.theirSecret, testSecret) && !(errors.As(err, &te) && te.Status == http.StatusUnauthorized && strings.Contains(err.Error(), "cluster credentials")):
				t.Errorf("call with another secret: %v, want 401 missing or wrong cluster credentials", err)
			}
			r := httptest.NewRequest("POST", "/v1/users/joe/posts", nil)
			r.RemoteAddr = "198.51.100.7:1234"
			rec := httptest.NewRecorder()
			plan := &Plan{To: owner.addr, Hops: 1, Body: []byte("hello"), Timeout: 5 * time.Second}
			caller.Forward(rec, r, plan)
			wantMember := bytes.Equal(tc.theirSecret, testSecret)
			if want := fmt.Sprintf("POST /v1/users/joe/posts member=%v body=hello", wantMember); plan.Retry || rec.Body.String() != want {
				t.Errorf("forward = %d %q (retry %v %s), want %q", rec.Code, rec.Body.String(), plan.Retry, plan.Why, want)
			}
			st := caller.Status()
			if len(st) != 1 && tc.links || len(st) == 1 && (st[0].Open != tc.wantOpen || st[0].HTTPUntil.IsZero() == tc.wantHTTP) {
				t.Errorf("status = %+v, want %d open, over HTTP %v", st, tc.wantOpen, tc.wantHTTP)
			}
			if tc.links && !tc.wantHTTP && owner.t.LinksServed() != tc.wantOpen {
				t.Errorf("owner serves %d links, want %d", owner.t.LinksServed(), tc.wantOpen)
			}
			if !tc.wantHTTP {
				return
			}
			if !strings.Contains(st[0].Reason, "cluster secret") {
				t.Errorf("status says %q, want the cluster secret named", st[0].Reason)
			}
			// With the secret fixed (and the HTTP spell over), a forward
			// opens a link again.
			owner.t.SetSecret(testSecret)
			ahead.Store(int64(2 * time.Minute))
			rec = httptest.NewRecorder()
			plan = &Plan{To: owner.addr, Hops: 1, Body: []byte("hello"), Timeout: 5 * time.Second}
			caller.Forward(rec, r, plan)
			if want := "POST /v1/users/joe/posts member=true body=hello"; plan.Retry || rec.Body.String() != want {
				t.Errorf("forward with the secret fixed = %d %q, want %q", rec.Code, rec.Body.String(), want)
			}
			if st := caller.Status(); len(st) != 1 || st[0].Open != 1 || !st[0].HTTPUntil.IsZero() {
				t.Errorf("status after a forward with the secret fixed = %+v, want 1 link open", st)
			}
			if n := owner.t.LinksServed(); n != 1 {
				t.Errorf("owner serves %d links, want 1", n)
			}
		})
	}
}

// TestSignature: a signed HTTP request whose body was changed after it
// was signed is refused; the body it was signed for is accepted; a
// stale or missing signature is refused before the body is read.
func TestSignature(t *testing.T) {
	tr := New(Options{Secret: testSecret})
	h := tr.Internal(echo, 64)
	send := func(sig, body string) (int, string) {
		r := httptest.NewRequest("POST", "/internal/v1/replicate", strings.NewReader(body))
		if sig != "" {
			r.Header.Set(HeaderCluster, sig)
		}
		rec := httptest.NewRecorder()
		h(rec, r)
		return rec.Code, rec.Body.String()
	}
	good := Sign(testSecret, time.Now(), "POST", "/internal/v1/replicate", []byte("hello"))
	for _, tc := range []struct {
		name, sig, body string
		want            int
	}{
		{"as signed", good, "hello", 200},
		{"tampered body", good, "pwned", 401},
		{"no signature", "", "hello", 401},
		{"stale", Sign(testSecret, time.Now().Add(-ClockSkew-time.Minute), "POST", "/internal/v1/replicate", []byte("hello")), "hello", 401},
		{"another secret", Sign([]byte("x"), time.Now(), "POST", "/internal/v1/replicate", []byte("hello")), "hello", 401},
		{"too large", Sign(testSecret, time.Now(), "POST", "/internal/v1/replicate", bytes.Repeat([]byte("x"), 65)), strings.Repeat("x", 65), 413},
	} {
		if code, body := send(tc.sig, tc.body); code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.want)
		}
	}
}

// FuzzLinkFrame feeds arbitrary request and answer payloads to the
// decoders: they return errors, never panic, and what decodes is marked
// as from a member. (package link's FuzzRequestFrame fuzzes its request
// decoder alone.)
func FuzzLinkFrame(f *testing.F) {
	r := httptest.NewRequest("GET", "/v1/users/joe/posts?limit=2", nil)
	r.Header.Set("Authorization", "Bearer x")
	tr := New(Options{Secret: testSecret})
	f.Add(link.EncodeRequest(r.Method, r.URL.RequestURI(), r.RemoteAddr, tr.forwardHeader(r, &Plan{Hops: 1, Skip: []string{"a:1"}})))
	f.Add(binaryAnswer(200, http.Header{"Content-Type": {"application/json"}}, `{"posts":[]}`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, payload []byte) {
		if req, err := link.DecodeRequest(tr.served.Mark(context.Background()), "127.0.0.1:1", payload); err == nil {
			if !FromMember(req) {
				t.Fatal("decoded request not marked as from a member")
			}
		}
		tr.writeAnswer(httptest.NewRecorder(), payload)
	})
}
