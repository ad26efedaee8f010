package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/feed"
)

func TestLinkFrameCodec(t *testing.T) {
	r := httptest.NewRequest("POST", "http://127.0.0.1:1/v1/users/joe/posts?x=1", nil)
	r.RemoteAddr = "127.0.0.9:4242"
	r.Header.Set("Authorization", "Bearer tok")
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Connection", "close")         // hop-by-hop: dropped
	r.Header.Set(HeaderCluster, "forged")       // never passed on
	r.Header.Set(HeaderUnreachable, "forged")   // replaced by the plan's
	r.Header.Set("X-Forwarded-For", "10.0.0.1") // extended
	s := &Server{clock: feed.NewClock(nil)}
	plan := &forwardPlan{owner: "127.0.0.1:2", hops: 1, skip: []string{"127.0.0.1:3"}}
	frame := s.linkRequest(r, plan)
	req, err := decodeLinkRequest(context.Background(), "127.0.0.1:2", append(frame, `{"text":"hi"}`...))
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
	if req.Context().Value(linkRequestKey{}) == nil {
		t.Error("a link request is not marked as coming from a member")
	}

	// Malformed frames are errors, never panics or huge allocations.
	for _, bad := range [][]byte{
		{},
		{0x05, 'G', 'E'},                    // string longer than the frame
		{0x03, 'G', 'E', 'T', 0x01, '/', 0}, // missing the header count
		append(appendString(appendString(appendString(nil, "GET"), "/"), ""), 0xff, 0xff, 0xff, 0x0f), // absurd header count
		{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80},                            // overlong uvarint
	} {
		if _, err := decodeLinkRequest(context.Background(), "x", bad); err == nil {
			t.Errorf("frame %x decoded without error", bad)
		}
	}
	if err := writeLinkAnswer(httptest.NewRecorder(), binaryAnswer(42, nil, ""), func(string) {}); err == nil {
		t.Error("an answer with status 42 was accepted")
	}
}

// binaryAnswer encodes an answer frame's payload.
func binaryAnswer(code int, h http.Header, body string) []byte {
	b := appendHeader(binaryUvarint(code), h, hopByHop)
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

func TestReadFrameLimits(t *testing.T) {
	var fw frameWriter
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	fw.c = c1
	go fw.write(7, []byte("ab"), []byte("cd"))
	br := bufio.NewReader(c2)
	id, p, err := readFrame(br, nil)
	if err != nil || id != 7 || string(p) != "abcd" {
		t.Fatalf("readFrame = %d %q %v", id, p, err)
	}
	// A length beyond the limit is refused before anything is allocated.
	go c1.Write([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 1})
	if _, _, err := readFrame(br, nil); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("oversized frame: %v", err)
	}
}

// TestLinkHandshake speaks the link protocol by hand: a wrong answer to
// the challenge is refused and nothing is served; a right one is.
func TestLinkHandshake(t *testing.T) {
	reg := prometheus.NewRegistry()
	ms := newCluster(t, clusterOpts{n: 2, registry: func(i int) prometheus.Registerer {
		if i == 0 {
			return reg
		}
		return nil
	}})
	createUser(t, ms[0], "joe")
	dial := func(secret []byte) (net.Conn, *bufio.Reader, string) {
		t.Helper()
		c, err := net.Dial("tcp", ms[0].addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", linkPath, linkProtocol)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade: %v %v", resp, err)
		}
		fw := &frameWriter{c: c}
		fw.write(idAuth, linkMAC(secret, resp.Header.Get(HeaderLinkChallenge)), nil)
		id, ans, err := readFrame(br, nil)
		if err != nil || id != idAuth {
			t.Fatalf("handshake answer: %d %q %v", id, ans, err)
		}
		return c, br, string(ans)
	}
	c, br, ans := dial([]byte("wrong secret"))
	if ans != linkRefused {
		t.Errorf("wrong secret answered %q", ans)
	}
	req := httptest.NewRequest("GET", "/v1/users/joe", nil)
	(&frameWriter{c: c}).write(1, (&Server{clock: feed.NewClock(nil)}).linkRequest(req, &forwardPlan{}), nil)
	if _, _, err := readFrame(br, nil); err == nil {
		t.Error("a refused link answered a request")
	}
	if got := testutil.ToFloat64(ms[0].srv.metrics.linkRefused); got != 1 {
		t.Errorf("refused links counted %v, want 1", got)
	}

	c, br, ans = dial(testSecret)
	if ans != linkAccepted {
		t.Fatalf("right secret answered %q", ans)
	}
	(&frameWriter{c: c}).write(1, (&Server{clock: feed.NewClock(nil)}).linkRequest(req, &forwardPlan{}), nil)
	id, payload, err := readFrame(br, nil)
	if err != nil || id != 1 {
		t.Fatalf("answer: %d %v", id, err)
	}
	rec := httptest.NewRecorder()
	if err := writeLinkAnswer(rec, payload, func(string) {}); err != nil || rec.Code != 200 || !strings.Contains(rec.Body.String(), `"name":"joe"`) {
		t.Errorf("answer over the link = %d %q %v", rec.Code, rec.Body.String(), err)
	}
}

// TestLinkFallsBackToHTTP: a member that does not offer links (an older
// version) is forwarded to over HTTP.
func TestLinkFallsBackToHTTP(t *testing.T) {
	old := httptest.NewServer(http.NotFoundHandler())
	defer old.Close()
	p := &linkPool{s: &Server{secret: testSecret, metrics: newMetrics(nil, nil, func() bool { return false }, nil)}}
	addr := strings.TrimPrefix(old.URL, "http://")
	if _, err := p.get(context.Background(), addr); !errors.Is(err, errLinkUnsupported) {
		t.Fatalf("link to a member without links: %v", err)
	}
	if _, err := p.get(context.Background(), addr); !errors.Is(err, errLinkUnsupported) {
		t.Errorf("second try is not remembered: %v", err)
	}
	// Unreachable members are reported as such, for failover.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	if _, err := p.get(context.Background(), dead); !unreachable(err) {
		t.Errorf("link to a closed port: %v, want a dial error", err)
	}
}

// TestLinkOwnerShutdown shuts an owner down (listener first, then its
// links drain, as Serve does) while another member forwards reads and
// writes to it without pause: no request fails, because what the owner
// never read goes to the replica (and writes get their second copy as a
// hinted copy on the third member).
func TestLinkOwnerShutdown(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 3})
	o := owner(ms, "joe")
	fwd := notOwner(ms, "joe")
	token := createUser(t, fwd, "joe")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var failed, reads, writes atomic.Int64
	var firstErr atomic.Value
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 5 * time.Second}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100_000; i++ {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				var a answer
				if g%2 == 0 {
					a = do(t, client, "GET", fwd.url("/v1/users/joe/posts?limit=5"), "", nil)
					reads.Add(1)
				} else {
					a = do(t, client, "POST", fwd.url("/v1/users/joe/posts"), token, api.PostRequest{Text: "during the owner's shutdown"})
					writes.Add(1)
				}
				if a.code != 200 && a.code != 201 {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %s", a.code, a.body))
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	if testutil.ToFloat64(o.srv.metrics.linksServed) == 0 {
		t.Error("the forwarder opened no link to the owner")
	}
	o.ts.Listener.Close() // redials are refused from now on
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	o.srv.served.drain(dctx)
	dcancel()
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d reads and %d writes failed during the owner's shutdown; first: %v", n, reads.Load(), writes.Load(), firstErr.Load())
	}
	t.Logf("%d reads and %d writes across the owner's shutdown, %d failed", reads.Load(), writes.Load(), failed.Load())
}

// FuzzLinkFrame feeds arbitrary request and answer payloads to the
// decoders: they return errors, never panic, and what decodes re-encodes
// to a request the owner can serve.
func FuzzLinkFrame(f *testing.F) {
	r := httptest.NewRequest("GET", "/v1/users/joe/posts?limit=2", nil)
	r.Header.Set("Authorization", "Bearer x")
	f.Add((&Server{clock: feed.NewClock(nil)}).linkRequest(r, &forwardPlan{hops: 1, skip: []string{"a:1"}}))
	f.Add(binaryAnswer(200, http.Header{"Content-Type": {"application/json"}}, `{"posts":[]}`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, payload []byte) {
		if req, err := decodeLinkRequest(context.Background(), "127.0.0.1:1", payload); err == nil {
			if req.Context().Value(linkRequestKey{}) == nil {
				t.Fatal("decoded request not marked as from a member")
			}
		}
		writeLinkAnswer(httptest.NewRecorder(), payload, func(string) {})
	})
}
