package server

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/limits"
	"github.com/ringfront/ringfront/internal/boundstest"
	"github.com/ringfront/ringfront/internal/daemon"
)

// fromAddr is a client whose connections come from ip, a loopback
// address (127.0.0.0/8 all reach the loopback listeners).
func fromAddr(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

func configureLimits(ms []*member, cfg limits.Config) {
	for _, m := range ms {
		m.srv.Limits().Configure(cfg)
	}
}

// limitedTotal sums appnode_rate_limited_total{kind, by} over ms.
func limitedTotal(t testing.TB, ms []*member, kind, by string) float64 {
	n := 0.0
	for _, m := range ms {
		n += m.metric(t, "appnode_rate_limited_total", by, kind) // labels sorted by name
	}
	return n
}

// check429 checks a limited request's answer: 429, Retry-After in
// whole seconds, a JSON error saying what was limited.
func check429(t testing.TB, a answer, want string) {
	t.Helper()
	if a.code != http.StatusTooManyRequests {
		t.Fatalf("status %d (%s), want 429", a.code, a.body)
	}
	if s, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q, want whole seconds", a.header.Get("Retry-After"))
	}
	if e := a.errorText(t); !strings.Contains(e, want) {
		t.Errorf("error %q does not say %q", e, want)
	}
}

// TestRateLimitAcrossMembers: a client that spreads its posts over the
// 3 members of a cluster is held to the cluster's burst (each member
// enforces a third), refused posts are not stored, another address is
// served normally, and a client's own forwarding headers change
// nothing.
func TestRateLimitAcrossMembers(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 3})
	var cfg limits.Config
	// Rates far below one token per test: only the bursts count.
	cfg.Address[limits.Post] = limits.Rule{Rate: 0.001, Burst: 9}
	cfg.Address[limits.Signup] = limits.Rule{Rate: 0.001, Burst: 3}
	configureLimits(ms, cfg)
	if got, want := ms[0].srv.Limits().Share(limits.Post), (limits.Rule{Rate: 0.001 / 3, Burst: 3}); got != want {
		t.Errorf("a member's share: %+v, want %+v", got, want)
	}
	token := createUser(t, ms[0], "alice")
	posted := 0
	for i := range 30 {
		// A client's own forwarding headers are not believed.
		spoof := map[string]string{
			"X-Forwarded-For": fmt.Sprintf("198.51.100.%d", i), api.HeaderClient: fmt.Sprintf("198.51.100.%d", i),
		}
		a := doHeader(t, http.DefaultClient, "POST", ms[i%3].url("/v1/users/alice/posts"), token, api.PostRequest{Text: fmt.Sprint("post ", i)}, spoof)
		if a.code == http.StatusCreated {
			posted++
			continue
		}
		check429(t, a, "too many posts from address 127.0.0.1/32")
	}
	if posted != 9 {
		t.Errorf("%d of 30 posts spread over 3 members stored, want the cluster's burst, 9", posted)
	}
	var page api.PostsAnswer
	do(t, nil, "GET", ms[1].url("/v1/users/alice/posts"), "", nil).decode(t, &page)
	if len(page.Posts) != posted {
		t.Errorf("alice has %d posts, want the %d admitted", len(page.Posts), posted)
	}
	if got := limitedTotal(t, ms, "post", "address"); got != float64(30-posted) {
		t.Errorf("appnode_rate_limited_total{kind=post,by=address} = %v over the members, want %d", got, 30-posted)
	}

	other := fromAddr("127.0.0.2")
	if a := do(t, other, "POST", ms[0].url("/v1/users/alice/posts"), token, api.PostRequest{Text: "from elsewhere"}); a.code != http.StatusCreated {
		t.Errorf("a post from another address: %d %s, want 201", a.code, a.body)
	}

	// Sign-ups: alice took one of 127.0.0.1's three.
	created := 1
	for i := range 9 {
		a := do(t, nil, "POST", ms[i%3].url("/v1/users"), "", api.CreateUserRequest{Name: fmt.Sprint("user", i)})
		if a.code == http.StatusCreated {
			created++
			continue
		}
		check429(t, a, "too many sign-ups")
	}
	if created != 3 {
		t.Errorf("%d users created from one address, want 3", created)
	}
	if a := do(t, other, "POST", ms[2].url("/v1/users"), "", api.CreateUserRequest{Name: "elsewhere"}); a.code != http.StatusCreated {
		t.Errorf("a sign-up from another address: %d %s, want 201", a.code, a.body)
	}
	for _, m := range ms {
		if _, err := m.store.User("user8"); err == nil {
			t.Errorf("%s stored a refused sign-up", m.addr)
		}
	}
}

// TestRateLimitPerUser: a user's posts are limited wherever they enter
// (the member answering for the user counts them), only once the
// token is right, and not for an exempt client, whose address the
// forwarding member passes on; a client cannot claim that address.
func TestRateLimitPerUser(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 3})
	var cfg limits.Config
	cfg.User[limits.Post] = limits.Rule{Rate: 0.001, Burst: 3}
	cfg.Exempt = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
	configureLimits(ms, cfg)
	alice := createUser(t, ms[0], "alice")
	bob := createUser(t, ms[0], "bob")
	entry, own := notOwner(ms, "alice"), owner(ms, "alice")
	post := func(c *http.Client, m *member, token string, h map[string]string) answer {
		return doHeader(t, c, "POST", m.url("/v1/users/alice/posts"), token, api.PostRequest{Text: "hi"}, h)
	}
	for range 5 {
		if a := post(http.DefaultClient, entry, bob, nil); a.code != http.StatusForbidden {
			t.Fatalf("a post with the wrong token: %d, want 403", a.code)
		}
	}
	for i := range 3 {
		if a := post(http.DefaultClient, ms[i], alice, nil); a.code != http.StatusCreated {
			t.Fatalf("alice's post %d: %d %s", i, a.code, a.body)
		}
	}
	check429(t, post(http.DefaultClient, entry, alice, nil), "too many posts from user alice")
	check429(t, post(http.DefaultClient, own, alice, nil), "too many posts from user alice")
	if a := do(t, nil, "POST", entry.url("/v1/users/bob/posts"), bob, api.PostRequest{Text: "bob's"}); a.code != http.StatusCreated {
		t.Errorf("bob's post after alice's limit: %d %s", a.code, a.body)
	}
	// From the exempt address, forwarded: the owner believes the
	// forwarder's word for the client's address.
	exempt := fromAddr("127.0.0.2")
	if a := post(exempt, entry, alice, nil); a.code != http.StatusCreated {
		t.Errorf("alice's post from an exempt address through %s: %d %s", entry.addr, a.code, a.body)
	}
	// Claiming the exempt address does not help, directly or forwarded.
	claim := map[string]string{api.HeaderClient: "127.0.0.2", "X-Forwarded-For": "127.0.0.2"}
	check429(t, post(http.DefaultClient, entry, alice, claim), "from user alice")
	check429(t, post(http.DefaultClient, own, alice, claim), "from user alice")
	if got := limitedTotal(t, ms, "post", "user"); got != 4 {
		t.Errorf("appnode_rate_limited_total{kind=post,by=user} = %v, want 4", got)
	}
}

// testBounds are short enough that a test waits for them, long enough
// that a loaded machine never trips them on an ordinary request.
var testBounds = daemon.HTTPBounds{
	MaxHeaderBytes:    1 << 10,
	ReadHeaderTimeout: 300 * time.Millisecond,
	ReadTimeout:       300 * time.Millisecond,
	WriteTimeout:      300 * time.Millisecond,
	IdleTimeout:       time.Second,
}

// TestListenerBounds: the API listener refuses an oversize body (413,
// JSON, nothing stored) and oversize headers (431), and a live stream,
// served here or forwarded, outlives its read and write timeouts.
func TestListenerBounds(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 3, bounds: &testBounds})
	for _, m := range ms {
		m.srv.SetStreamHeartbeat(50 * time.Millisecond)
	}
	token := createUser(t, ms[0], "alice")
	big := `{"text": "` + strings.Repeat("a", 20<<10) + `"}`
	for _, m := range ms {
		for _, chunked := range []bool{false, true} {
			var body io.Reader = strings.NewReader(big)
			if chunked {
				body = io.MultiReader(body) // no length: read up to the bound
			}
			req, _ := http.NewRequest("POST", m.url("/v1/users/alice/posts"), body)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			a := answer{resp.StatusCode, resp.Header, b}
			if a.code != http.StatusRequestEntityTooLarge {
				t.Fatalf("%s, chunked %v: oversize post answered %d %s, want 413", m.addr, chunked, a.code, b)
			}
			if e := a.errorText(t); !strings.Contains(e, "16384 bytes") {
				t.Errorf("413 error %q", e)
			}
		}
	}
	for _, m := range ms {
		if ps, _, err := m.store.Posts("alice", feed.ID{}, 10); err == nil && len(ps) > 0 {
			t.Errorf("%s stored %d posts from oversize bodies", m.addr, len(ps))
		}
	}
	// Well over the bound and net/http's slack.
	boundstest.HeaderTooLarge(t, ms[0].url("/v1/ring"), 32<<10)

	for _, tc := range []struct {
		name string
		at   *member
	}{{"served here", owner(ms, "alice")}, {"forwarded", notOwner(ms, "alice")}} {
		t.Run(tc.name, func(t *testing.T) {
			st := openStream(t, tc.at, "alice", token, "")
			// Four times the timeouts of heartbeats, then an event.
			deadline := time.Now().Add(4 * testBounds.WriteTimeout)
			for time.Now().Before(deadline) {
				st.comment(t, "heartbeat", 2*time.Second)
			}
			p := mustPost(t, ms[0], "alice", token, "still there: "+tc.name)
			if ev := st.next(t, 2*time.Second); ev.ID != p.ID.String() {
				t.Errorf("event %s, want %s", ev.ID, p.ID)
			}
		})
	}
}

// TestListenDefaults: a member's listener without configured bounds
// gets DefaultBounds, every timeout set.
func TestListenDefaults(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 1})
	s := ms[0].srv
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer s.ln.Close()
	got := daemon.HTTPBounds{MaxHeaderBytes: s.srv.MaxHeaderBytes, ReadHeaderTimeout: s.srv.ReadHeaderTimeout,
		ReadTimeout: s.srv.ReadTimeout, WriteTimeout: s.srv.WriteTimeout, IdleTimeout: s.srv.IdleTimeout}
	if got != DefaultBounds {
		t.Errorf("listener bounds %+v, want %+v", got, DefaultBounds)
	}
}

// TestListenerSlowClient: a client that trickles its headers to a
// member is disconnected after the read header timeout.
func TestListenerSlowClient(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 1, bounds: &testBounds})
	boundstest.SlowHeaders(t, ms[0].addr, testBounds.ReadHeaderTimeout)
}

// TestRateLimitTokenRotations: a rotation is a new credential, charged
// to the client's network as a sign-up; a refused rotation issues no
// token and leaves the current one working, and another address still
// rotates.
func TestRateLimitTokenRotations(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 3})
	var cfg limits.Config
	cfg.Address[limits.Signup] = limits.Rule{Rate: 0.001, Burst: 6} // two a member
	configureLimits(ms, cfg)
	token := createUser(t, ms[0], "alice") // one of ms[0]'s two
	issued := 0
	for i := range 9 {
		a := do(t, nil, "POST", ms[i%3].url("/v1/users/alice/tokens"), token, api.RotateTokenRequest{})
		if a.code == http.StatusCreated {
			issued++
			continue
		}
		check429(t, a, "too many sign-ups from address 127.0.0.1/32")
	}
	if issued != 5 {
		t.Errorf("%d of 9 rotations from one address issued a token, want 5 (the burst of 6 less the sign-up)", issued)
	}
	for _, m := range ms {
		m.srv.Replica().Wait()
	}
	var u feed.User
	for _, m := range ms {
		if r, err := m.store.User("alice"); err == nil && len(r.Tokens) > len(u.Tokens) {
			u = r
		}
	}
	if len(u.Tokens) != issued {
		t.Errorf("alice's record holds %d issued tokens, want %d: a refused rotation issued one", len(u.Tokens), issued)
	}
	if a := do(t, nil, "POST", ms[1].url("/v1/users/alice/posts"), token, api.PostRequest{Text: "still mine"}); a.code != http.StatusCreated {
		t.Errorf("the current token after refused rotations: %d %s", a.code, a.body)
	}
	if a := do(t, fromAddr("127.0.0.2"), "POST", ms[2].url("/v1/users/alice/tokens"), token, api.RotateTokenRequest{}); a.code != http.StatusCreated {
		t.Errorf("a rotation from another address: %d %s, want 201", a.code, a.body)
	}
}
