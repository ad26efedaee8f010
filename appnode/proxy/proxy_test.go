package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/apptest"
	"github.com/ringfront/ringfront/appnode/ring"
	"github.com/ringfront/ringfront/internal/boundstest"
	"github.com/ringfront/ringfront/internal/daemon"
)

// cluster starts n members, counting in hits[i] the requests that
// reach member i from outside the cluster.
func cluster(t *testing.T, n int) ([]*apptest.Member, []*atomic.Int64) {
	t.Helper()
	hits := make([]*atomic.Int64, n)
	for i := range hits {
		hits[i] = new(atomic.Int64)
	}
	ms := apptest.Cluster(t, n, apptest.Options{Wrap: func(i int, h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get(api.HeaderCluster) == "" {
				hits[i].Add(1)
			}
			h.ServeHTTP(w, r)
		})
	}})
	return ms, hits
}

func startProxy(t *testing.T, seed string) string {
	t.Helper()
	return startProxyWith(t, seed, Options{})
}

func startProxyWith(t *testing.T, seed string, opts Options) string {
	t.Helper()
	opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := New([]string{"http://" + seed}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("proxy: %v", err)
		}
	})
	return "http://" + p.Addr().String()
}

type answer struct {
	code int
	body []byte
}

func call(t *testing.T, method, url, token string, body any) answer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, b}
}

// TestProxyKilledOwner: the proxy sends requests straight to the
// user's owner; once the owner is killed, requests through the proxy
// keep succeeding, answered by the replica.
func TestProxyKilledOwner(t *testing.T) {
	ms, hits := cluster(t, 3)
	px := startProxy(t, ms[1].Addr)
	// joe is owned by another member than ann.
	joe, ann := "", ""
	for i := 0; joe == "" || ann == ""; i++ {
		u := fmt.Sprintf("user%d", i)
		switch {
		case joe == "":
			joe = u
		case apptest.Owner(ms, u) != apptest.Owner(ms, joe):
			ann = u
		}
	}
	tokens := map[string]string{}
	for _, u := range []string{joe, ann} {
		a := call(t, "POST", px+"/v1/users", "", api.CreateUserRequest{Name: u})
		if a.code != 201 {
			t.Fatalf("creating %s through the proxy = %d %s", u, a.code, a.body)
		}
		var ans api.CreateUserAnswer
		json.Unmarshal(a.body, &ans)
		tokens[u] = ans.Token
	}
	if a := call(t, "PUT", px+"/v1/users/"+ann+"/following/"+joe, tokens[ann], nil); a.code != 204 {
		t.Fatalf("follow = %d %s", a.code, a.body)
	}
	// Straight to the owner: only joe's owner sees joe's requests.
	joeOwner := apptest.Owner(ms, joe)
	before := make([]int64, len(ms))
	for i := range ms {
		before[i] = hits[i].Load()
	}
	var want []string
	for i := range 3 {
		a := call(t, "POST", px+"/v1/users/"+joe+"/posts", tokens[joe], api.PostRequest{Text: fmt.Sprint("before ", i)})
		if a.code != 201 {
			t.Fatalf("post = %d %s", a.code, a.body)
		}
		want = append([]string{fmt.Sprint("before ", i)}, want...)
	}
	for i, m := range ms {
		wantHits := int64(0)
		if m == joeOwner {
			wantHits = 3
		}
		if got := hits[i].Load() - before[i]; got != wantHits {
			t.Errorf("member %s got %d of joe's requests, want %d", m.Addr, got, wantHits)
		}
	}

	// Kill joe's owner: its port refuses connections from now on. Its
	// open connections close at once, as a dying process's do, and the
	// proxy's connection pool sees that within microseconds; a POST
	// written on such a connection before that is not resent (the
	// member may have stored it), so give the pool that moment.
	joeOwner.Kill()
	time.Sleep(50 * time.Millisecond)
	deadline := time.Now().Add(20 * time.Second)
	failed := 0
	for i := range 10 {
		if time.Now().After(deadline) {
			t.Fatal("requests took longer than 20s")
		}
		text := fmt.Sprint("after ", i)
		if a := call(t, "POST", px+"/v1/users/"+joe+"/posts", tokens[joe], api.PostRequest{Text: text}); a.code != 201 {
			failed++
			t.Errorf("post %d with the owner dead = %d %s", i, a.code, a.body)
			continue
		}
		want = append([]string{text}, want...)
		a := call(t, "GET", px+"/v1/users/"+joe+"/posts?limit=50", "", nil)
		var page api.PostsAnswer
		json.Unmarshal(a.body, &page)
		if a.code != 200 || len(page.Posts) != len(want) || page.Posts[0].Text != text {
			failed++
			t.Errorf("read %d with the owner dead = %d, %d posts, want %d", i, a.code, len(page.Posts), len(want))
		}
	}
	a := call(t, "GET", px+"/v1/users/"+ann+"/timeline?limit=50", tokens[ann], nil)
	var page api.PostsAnswer
	json.Unmarshal(a.body, &page)
	var got []string
	for _, p := range page.Posts {
		got = append(got, p.Text)
	}
	if a.code != 200 || strings.Join(got, "|") != strings.Join(want, "|") {
		failed++
		t.Errorf("ann's timeline with joe's owner dead = %d %v, want %v", a.code, got, want)
	}
	t.Logf("requests through the proxy with the owner dead: 21, failed: %d", failed)
}

// TestProxyErrors: the proxy passes members' error answers through, and
// answers 502 in JSON when no member answers.
func TestProxyErrors(t *testing.T) {
	ms, _ := cluster(t, 2)
	px := startProxy(t, ms[0].Addr)
	if a := call(t, "POST", px+"/v1/users", "", map[string]string{"name": "Bad Name"}); a.code != 400 || !strings.Contains(string(a.body), `"error"`) {
		t.Errorf("bad name through the proxy = %d %s", a.code, a.body)
	}
	if a := call(t, "GET", px+"/v1/users/nobody/posts", "", nil); a.code != 404 {
		t.Errorf("unknown user through the proxy = %d %s", a.code, a.body)
	}
	if a := call(t, "GET", px+"/v1/ring", "", nil); a.code != 200 {
		t.Errorf("ring through the proxy = %d %s", a.code, a.body)
	}
	for _, m := range ms {
		m.Kill()
	}
	a := call(t, "GET", px+"/v1/users/joe/posts", "", nil)
	var e map[string]string
	if err := json.Unmarshal(a.body, &e); a.code != 502 || err != nil || !strings.Contains(e["error"], "no member answered") {
		t.Errorf("with every member dead = %d %s", a.code, a.body)
	}
}

// TestProxyStream: a live timeline stream passes through the proxy
// unbuffered: a post shows up on it at once.
func TestProxyStream(t *testing.T) {
	for _, tc := range []struct {
		name   string
		bounds daemon.HTTPBounds
		quiet  time.Duration // between the stream's first bytes and the post
	}{
		{"defaults", daemon.HTTPBounds{}, 0},
		// The stream outlives the listener's timeouts: nothing is sent
		// for three of them.
		{"past the timeouts", daemon.HTTPBounds{ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond}, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) { testProxyStream(t, tc.bounds, tc.quiet) })
	}
}

func testProxyStream(t *testing.T, bounds daemon.HTTPBounds, quiet time.Duration) {
	ms, _ := cluster(t, 3)
	px := startProxyWith(t, ms[0].Addr, Options{Bounds: bounds})
	tokens := map[string]string{}
	for _, u := range []string{"reader", "ann"} {
		a := call(t, "POST", px+"/v1/users", "", api.CreateUserRequest{Name: u})
		var ans api.CreateUserAnswer
		json.Unmarshal(a.body, &ans)
		tokens[u] = ans.Token
	}
	if a := call(t, "PUT", px+"/v1/users/reader/following/ann", tokens["reader"], nil); a.code != 204 {
		t.Fatalf("follow = %d %s", a.code, a.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", px+"/v1/users/reader/timeline/stream", nil)
	req.Header.Set("Authorization", "Bearer "+tokens["reader"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream through the proxy = %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	ids := make(chan string, 10)
	go func() {
		defer close(ids)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if id, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
				ids <- id
			}
		}
	}()
	time.Sleep(quiet)
	a := call(t, "POST", px+"/v1/users/ann/posts", tokens["ann"], api.PostRequest{Text: "through the proxy"})
	var p struct{ ID string }
	json.Unmarshal(a.body, &p)
	select {
	case id := <-ids:
		if id != p.ID {
			t.Errorf("event %s, want %s", id, p.ID)
		}
	case <-time.After(time.Second):
		t.Fatal("no event through the proxy within 1s")
	}
}

// TestProxyPinsAndGoesOn: a member that takes a request and never
// answers is passed over after the attempt timeout, and the request
// goes to the next member with the same post id (or user token), so the
// two members store one post, never two.
func TestProxyPinsAndGoesOn(t *testing.T) {
	var mu sync.Mutex // guards bodies
	bodies := map[string][]string{}
	var rg *ring.Ring
	member := func(hang bool) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v1/ring" {
				json.NewEncoder(w).Encode(api.RingAnswer{Info: rg.Info()})
				return
			}
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			bodies[r.URL.Path] = append(bodies[r.URL.Path], string(b))
			mu.Unlock()
			if hang {
				<-r.Context().Done()
				return
			}
			w.WriteHeader(http.StatusCreated)
			w.Write(b)
		}))
	}
	a, b := member(true), member(false)
	defer a.Close()
	defer b.Close()
	var addrs []string
	var user string
	rg, addrs, user = hangingOwner(t, a, b) // a user whose owner is the member that hangs
	px := startProxy(t, addrs[1])
	start := time.Now()
	ans := call(t, "POST", px+"/v1/users/"+user+"/posts", "tok", api.PostRequest{Text: "once"})
	took := time.Since(start)
	call(t, "POST", px+"/v1/users", "", api.CreateUserRequest{Name: user})
	if ans.code != http.StatusCreated || took < attemptTimeout || took > 3*attemptTimeout {
		t.Errorf("post with a hanging owner = %d %s after %v, want 201 from the next member after about %v", ans.code, ans.body, took, attemptTimeout)
	}
	mu.Lock()
	defer mu.Unlock()
	for path, sent := range bodies {
		if len(sent) != 2 || sent[0] != sent[1] {
			t.Errorf("%s: bodies sent %q, want the same body twice", path, sent)
			continue
		}
		var req map[string]string
		json.Unmarshal([]byte(sent[0]), &req)
		if req["id"] == "" && req["token"] == "" {
			t.Errorf("%s: body %s has no id or token pinned", path, sent[0])
		}
	}
}

// TestProxyRotationOnce: a token rotation that reached a member is not
// sent to a second one (it would issue a second token): with the owner
// taking it and never answering, the proxy answers 502 and the next
// member never sees it. An owner that refuses connections never got it,
// so the rotation goes on to the next member.
func TestProxyRotationOnce(t *testing.T) {
	var rg *ring.Ring
	var seen [2]atomic.Int64
	member := func(i int, hang bool) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v1/ring" {
				json.NewEncoder(w).Encode(api.RingAnswer{Info: rg.Info()})
				return
			}
			io.ReadAll(r.Body) // then the server notices the client leaving
			seen[i].Add(1)
			if hang {
				select {
				case <-r.Context().Done():
				case <-time.After(10 * time.Second):
				}
				return
			}
			w.WriteHeader(http.StatusCreated)
			json.NewEncoder(w).Encode(api.RotateTokenAnswer{Name: "u", Token: "new"})
		}))
	}
	a, b := member(0, true), member(1, false)
	defer b.Close()
	var addrs []string
	var user string
	rg, addrs, user = hangingOwner(t, a, b) // a user whose owner is the member that hangs
	px := startProxy(t, addrs[1])
	ans := call(t, "POST", px+"/v1/users/"+user+"/tokens", "tok", api.RotateTokenRequest{RevokeCurrent: true})
	if ans.code != http.StatusBadGateway || !strings.Contains(string(ans.body), "not sent to a second member") || seen[1].Load() != 0 {
		t.Errorf("rotation with a hanging owner = %d %s, next member saw %d requests; want 502 and none", ans.code, ans.body, seen[1].Load())
	}
	a.Close() // now it refuses connections
	ans = call(t, "POST", px+"/v1/users/"+user+"/tokens", "tok", api.RotateTokenRequest{RevokeCurrent: true})
	if ans.code != http.StatusCreated || seen[1].Load() != 1 {
		t.Errorf("rotation with a stopped owner = %d %s, next member saw %d requests; want 201 from it", ans.code, ans.body, seen[1].Load())
	}
}

// TestProxyBounds: the proxy's listener refuses oversize headers and
// disconnects a client that trickles them.
func TestProxyBounds(t *testing.T) {
	ms, _ := cluster(t, 1)
	bounds := daemon.HTTPBounds{MaxHeaderBytes: 1 << 10, ReadHeaderTimeout: 300 * time.Millisecond}
	px := startProxyWith(t, ms[0].Addr, Options{Bounds: bounds})
	boundstest.HeaderTooLarge(t, px+"/healthz", 32<<10)
	boundstest.SlowHeaders(t, strings.TrimPrefix(px, "http://"), bounds.ReadHeaderTimeout)
}

// hangingOwner returns the ring of members a and b and a user that a
// owns.
func hangingOwner(t *testing.T, a, b *httptest.Server) (*ring.Ring, []string, string) {
	t.Helper()
	addrs := []string{strings.TrimPrefix(a.URL, "http://"), strings.TrimPrefix(b.URL, "http://")}
	rg, err := ring.New(ring.Config{Members: addrs, VNodes: 16, Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if u := fmt.Sprintf("u%d", i); rg.Owner(u) == addrs[0] {
			return rg, addrs, u
		}
	}
}
