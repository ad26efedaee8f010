package link

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ringfront/ringfront/appnode/transport/frame"
)

var testSecret = []byte("test cluster secret")

// quiet discards what the links log.
var quiet = slog.New(slog.DiscardHandler)

// memberKey marks, in the tests, a request that came over a link.
type memberKey struct{}

// echo answers every request with what it saw: its method and URI,
// whether it came over a link, and its body.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "%s %s member=%v body=%s", r.Method, r.URL.RequestURI(), r.Context().Value(memberKey{}) != nil, body)
})

// serve starts a Server answering with h on loopback.
func serve(t *testing.T, secret []byte, h http.Handler) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{
		Self: ln.Addr().String(), Key: func() []byte { return secret }, Handler: h,
		Mark:    func(ctx context.Context) context.Context { return context.WithValue(ctx, memberKey{}, true) },
		Timeout: 10 * time.Second, Log: quiet,
		Refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "refused"}),
		Served:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "served"}),
	}
	mux := http.NewServeMux()
	mux.Handle(Route, s)
	mux.Handle("/", h)
	ts := httptest.NewUnstartedServer(mux)
	ts.Listener.Close()
	ts.Listener = ln
	ts.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Drain(ctx)
		ts.Close()
	})
	return s, ln.Addr().String()
}

// TestLinkHandshake speaks the link protocol by hand: a wrong answer to
// the challenge is refused and nothing is served; a right one is.
func TestLinkHandshake(t *testing.T) {
	s, addr := serve(t, testSecret, echo)
	dial := func(secret []byte) (net.Conn, *bufio.Reader, string) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", upgradePath, protocol)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade: %v %v", resp, err)
		}
		fw := frame.NewWriter(c)
		fw.Write(idAuth, answerMAC(secret, resp.Header.Get(HeaderChallenge)), nil)
		id, ans, err := frame.Read(br, nil)
		if err != nil || id != idAuth {
			t.Fatalf("handshake answer: %d %q %v", id, ans, err)
		}
		return c, br, string(ans)
	}
	c, br, ans := dial([]byte("wrong secret"))
	if ans != refused {
		t.Errorf("wrong secret answered %q", ans)
	}
	head := EncodeRequest("GET", "/v1/users/joe", "", http.Header{})
	frame.NewWriter(c).Write(1, head, nil)
	if _, _, err := frame.Read(br, nil); err == nil {
		t.Error("a refused link answered a request")
	}
	if got := testutil.ToFloat64(s.Refused); got != 1 {
		t.Errorf("refused links counted %v, want 1", got)
	}

	c, br, ans = dial(testSecret)
	if ans != accepted {
		t.Fatalf("right secret answered %q", ans)
	}
	frame.NewWriter(c).Write(1, head, nil)
	id, payload, err := frame.Read(br, nil)
	if err != nil || id != 1 {
		t.Fatalf("answer: %d %v", id, err)
	}
	code, _, body, err := DecodeAnswer(payload)
	if err != nil || code != 200 || string(body) != "GET /v1/users/joe member=true body=" {
		t.Errorf("answer over the link = %d %q %v", code, body, err)
	}
}

// TestLinkFallsBackToHTTP: a member that does not offer links (an older
// version) is called over HTTP, and remembered as such.
func TestLinkFallsBackToHTTP(t *testing.T) {
	old := httptest.NewServer(http.NotFoundHandler())
	defer old.Close()
	p := &Pool{Key: func() []byte { return testSecret }, Log: quiet}
	addr := strings.TrimPrefix(old.URL, "http://")
	if _, err := p.get(context.Background(), addr); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("link to a member without links: %v", err)
	}
	if _, err := p.get(context.Background(), addr); !errors.Is(err, ErrUnsupported) {
		t.Errorf("second try is not remembered: %v", err)
	}
	// Unreachable members are reported as such, for failover.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	var op *net.OpError
	if _, err := p.get(context.Background(), dead); !errors.As(err, &op) || op.Op != "dial" {
		t.Errorf("link to a closed port: %v, want a dial error", err)
	}
}

// FuzzRequestFrame feeds arbitrary request payloads to the decoder: it
// returns errors, never panics.
func FuzzRequestFrame(f *testing.F) {
	h := http.Header{"Authorization": {"Bearer x"}, "X-Ringfront-Hops": {"1"}}
	f.Add(append(EncodeRequest("POST", "/v1/users/joe/posts?limit=2", "198.51.100.7:1234", h), `{"text":"hi"}`...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, payload []byte) {
		if req, err := DecodeRequest(context.Background(), "127.0.0.1:1", payload); err == nil && req.Host != "127.0.0.1:1" {
			t.Fatalf("decoded request to %q, want the member itself", req.Host)
		}
	})
}
