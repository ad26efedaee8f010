package server

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/ring"
	"github.com/ringfront/ringfront/appnode/store"
)

// usersFor picks per users owned by each member, interleaved, so that
// a test touches every member whatever ports the cluster got.
func usersFor(ms []*member, per int) []string {
	count := map[string]int{}
	var out []string
	for i := 0; len(out) < per*len(ms); i++ {
		u := fmt.Sprintf("user%d", i)
		if o := owner(ms, u).addr; count[o] < per {
			count[o]++
			out = append(out, u)
		}
	}
	return out
}

// TestClusterForward sends every request to a member that does not own
// the request's user; each must still get the owner's answer, and the
// data must live on the owner only.
func TestClusterForward(t *testing.T) {
	t.Run("links", func(t *testing.T) { testClusterForward(t, false) })
	t.Run("http", func(t *testing.T) { testClusterForward(t, true) })
}

func testClusterForward(t *testing.T, httpForward bool) {
	ms := newCluster(t, clusterOpts{n: 3, routing: Forward, httpForward: httpForward})
	clusterUsers := usersFor(ms, 3)
	first, last := clusterUsers[0], clusterUsers[len(clusterUsers)-1]
	tokens := map[string]string{}
	for _, u := range clusterUsers {
		a := do(t, nil, "POST", notOwner(ms, u).url("/v1/users"), "", api.CreateUserRequest{Name: u})
		if a.code != 201 || a.header.Get(api.HeaderOwner) != owner(ms, u).addr {
			t.Fatalf("create %s via a non-owner = %d %s (owner header %q)", u, a.code, a.body, a.header.Get(api.HeaderOwner))
		}
		var ans api.CreateUserAnswer
		a.decode(t, &ans)
		tokens[u] = ans.Token
		if vs := a.header.Values(api.HeaderOwner); len(vs) != 1 {
			t.Errorf("%s sent %d times: %v", api.HeaderOwner, len(vs), vs)
		}
	}
	// A taken name is refused by the owner, through the forwarder.
	if a := do(t, nil, "POST", notOwner(ms, first).url("/v1/users"), "", api.CreateUserRequest{Name: first}); a.code != 409 {
		t.Errorf("duplicate via non-owner = %d %s", a.code, a.body)
	}
	posts := map[string][]feed.Post{}
	for i := range 3 {
		for _, u := range clusterUsers {
			a := do(t, nil, "POST", notOwner(ms, u).url("/v1/users/"+u+"/posts"), tokens[u], api.PostRequest{Text: fmt.Sprintf("%s says %d", u, i)})
			if a.code != 201 {
				t.Fatalf("post as %s via a non-owner = %d %s", u, a.code, a.body)
			}
			var p feed.Post
			a.decode(t, &p)
			posts[u] = append([]feed.Post{p}, posts[u]...)
		}
	}
	// Wrong tokens are refused through the forwarder too.
	if a := do(t, nil, "POST", notOwner(ms, first).url("/v1/users/"+first+"/posts"), tokens[clusterUsers[1]], api.PostRequest{Text: "x"}); a.code != 403 {
		t.Errorf("post with wrong token via non-owner = %d %s", a.code, a.body)
	}
	for _, u := range clusterUsers {
		for _, m := range ms {
			stored, _, err := m.store.Posts(u, feed.ID{}, 100)
			if err != nil {
				t.Fatal(err)
			}
			if m.srv.Ring().InPreference(u, m.addr) {
				// The owner and its replica hold every acknowledged post.
				if diff := cmp.Diff(posts[u], stored); diff != "" {
					t.Errorf("%s's posts on %s, in its preference list (-want +got):\n%s", u, m.addr, diff)
				}
			} else if len(stored) != 0 {
				t.Errorf("%s's posts stored on %s, outside its preference list", u, m.addr)
			}
		}
		var page api.PostsAnswer
		a := do(t, nil, "GET", notOwner(ms, u).url("/v1/users/"+u+"/posts"), "", nil)
		a.decode(t, &page)
		if diff := cmp.Diff(posts[u], page.Posts); a.code != 200 || diff != "" {
			t.Errorf("%s's feed via non-owner = %d (-want +got):\n%s", u, a.code, diff)
		}
	}
	// joe follows everyone else; every edge crosses members for some.
	for _, u := range clusterUsers[1:] {
		if a := do(t, nil, "PUT", notOwner(ms, first).url("/v1/users/"+first+"/following/"+u), tokens[first], nil); a.code != 204 {
			t.Fatalf("joe follows %s via non-owner = %d %s", u, a.code, a.body)
		}
	}
	if a := do(t, nil, "DELETE", notOwner(ms, first).url("/v1/users/"+first+"/following/"+last), tokens[first], nil); a.code != 204 {
		t.Fatalf("unfollow via non-owner = %d %s", a.code, a.body)
	}
	var fing api.FollowingAnswer
	do(t, nil, "GET", notOwner(ms, first).url("/v1/users/"+first+"/following"), "", nil).decode(t, &fing)
	if diff := cmp.Diff(clusterUsers[1:len(clusterUsers)-1], fing.Following, sortStrings); diff != "" {
		t.Errorf("%s follows (-want +got):\n%s", first, diff)
	}
	for _, u := range clusterUsers[1:] {
		var fers api.FollowersAnswer
		do(t, nil, "GET", notOwner(ms, u).url("/v1/users/"+u+"/followers"), "", nil).decode(t, &fers)
		want := []string{first}
		if u == last {
			want = []string{}
		}
		if diff := cmp.Diff(want, fers.Followers); diff != "" {
			t.Errorf("%s's followers (-want +got):\n%s", u, diff)
		}
		// The followee's side lives on the followee's owner.
		edges, _ := owner(ms, u).store.Edges(store.Followers, u)
		if len(edges) != 1 || edges[0].Follower != first {
			t.Errorf("%s's owner holds follower edges %v", u, edges)
		}
	}
	// joe's timeline, merged from all three members, read via a non-owner.
	var want []feed.Post
	for _, u := range clusterUsers[:len(clusterUsers)-1] {
		want = append(want, posts[u]...)
	}
	sortNewestFirst(want)
	var got []feed.Post
	url := notOwner(ms, first).url("/v1/users/" + first + "/timeline?limit=7")
	for range 10 {
		a := do(t, nil, "GET", url, tokens[first], nil)
		if a.code != 200 {
			t.Fatalf("timeline = %d %s", a.code, a.body)
		}
		var page api.PostsAnswer
		a.decode(t, &page)
		got = append(got, page.Posts...)
		if page.Next == "" {
			break
		}
		url = notOwner(ms, first).url("/v1/users/" + first + "/timeline?limit=7&before=" + page.Next)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
}

func sortNewestFirst(ps []feed.Post) {
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && ps[j].ID.Compare(ps[j-1].ID) > 0; j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
}

// TestClusterRedirect: with routing: redirect every request to a
// non-owner is a 307 to the same URI on the owner, and repeating it
// there works.
func TestClusterRedirect(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 3, routing: Redirect})
	clusterUsers := usersFor(ms, 3)
	first := clusterUsers[0]
	follow := func(a answer, method, token string, body any) answer {
		t.Helper()
		return do(t, noRedirects, method, a.header.Get("Location"), token, body)
	}
	check307 := func(a answer, u, uri string) {
		t.Helper()
		o := owner(ms, u)
		if a.code != http.StatusTemporaryRedirect || a.header.Get("Location") != "http://"+o.addr+uri || a.header.Get(api.HeaderOwner) != o.addr {
			t.Fatalf("%s via non-owner = %d Location %q owner %q, want 307 to %s", uri, a.code, a.header.Get("Location"), a.header.Get(api.HeaderOwner), o.addr)
		}
	}
	tokens := map[string]string{}
	for _, u := range clusterUsers {
		body := api.CreateUserRequest{Name: u}
		a := do(t, noRedirects, "POST", notOwner(ms, u).url("/v1/users"), "", body)
		check307(a, u, "/v1/users")
		a = follow(a, "POST", "", body)
		if a.code != 201 {
			t.Fatalf("create %s at the owner = %d %s", u, a.code, a.body)
		}
		var ans api.CreateUserAnswer
		a.decode(t, &ans)
		tokens[u] = ans.Token
		// Nothing was created on members outside the preference list.
		for _, m := range ms {
			if _, err := m.store.User(u); err == nil && !m.srv.Ring().InPreference(u, m.addr) {
				t.Errorf("%s stored on %s, outside its preference list", u, m.addr)
			}
		}
	}
	for _, u := range clusterUsers {
		uri := "/v1/users/" + u + "/posts"
		a := do(t, noRedirects, "POST", notOwner(ms, u).url(uri), tokens[u], api.PostRequest{Text: "hi from " + u})
		check307(a, u, uri)
		if a = follow(a, "POST", tokens[u], api.PostRequest{Text: "hi from " + u}); a.code != 201 {
			t.Fatalf("post at owner = %d %s", a.code, a.body)
		}
		uri += "?limit=5"
		a = do(t, noRedirects, "GET", notOwner(ms, u).url(uri), "", nil)
		check307(a, u, uri)
		var page api.PostsAnswer
		follow(a, "GET", "", nil).decode(t, &page)
		if len(page.Posts) != 1 || page.Posts[0].Text != "hi from "+u {
			t.Errorf("%s's feed after the redirect = %+v", u, page)
		}
		uri = "/v1/users/" + u + "/following/" + clusterUsers[0]
		if u != clusterUsers[0] {
			a = do(t, noRedirects, "PUT", notOwner(ms, u).url(uri), tokens[u], nil)
			check307(a, u, uri)
			if a = follow(a, "PUT", tokens[u], nil); a.code != 204 {
				t.Errorf("follow at owner = %d %s", a.code, a.body)
			}
		}
	}
	// The followee's side of a follow is acknowledged by two copies;
	// when the followee's owner was slow to answer (a loaded machine),
	// one of them is elsewhere (another replica, a hint) and the owner
	// has the edge once it is handed over or repaired: wait for that,
	// boundedly.
	uri := "/v1/users/" + first + "/followers"
	var fers api.FollowersAnswer
	err := waitUntil(5*time.Second, func() bool {
		a := do(t, noRedirects, "GET", notOwner(ms, first).url(uri), "", nil)
		check307(a, first, uri)
		fers = api.FollowersAnswer{}
		follow(a, "GET", "", nil).decode(t, &fers)
		return cmp.Diff(clusterUsers[1:], fers.Followers, sortStrings) == ""
	})
	if err != nil {
		t.Errorf("%s's followers %v, want %v: %v", first, fers.Followers, clusterUsers[1:], err)
	}
	// The Go client follows the 307 by itself, body and all.
	a := do(t, nil, "POST", notOwner(ms, "zoe").url("/v1/users"), "", api.CreateUserRequest{Name: "zoe"})
	if a.code != 201 {
		t.Errorf("create via redirect-following client = %d %s", a.code, a.body)
	}
	// Ring routes are answered by any member.
	if a := do(t, noRedirects, "GET", ms[0].url("/v1/ring"), "", nil); a.code != 200 {
		t.Errorf("GET /v1/ring = %d", a.code)
	}
}

var sortStrings = cmpSortStrings()

// TestRingDisagreement: a request that reaches a member with another
// ring is routed by that member's ring; when two rings send it back and
// forth, the hop limit ends it with 508.
func TestRingDisagreement(t *testing.T) {
	var old, loop *ring.Ring
	ms := newCluster(t, clusterOpts{n: 3, ring: func(i int, addrs []string) *ring.Ring {
		var err error
		cur, _ := ring.New(ring.Config{Members: addrs, VNodes: 16, Replicas: 2})
		switch i {
		case 0:
			// Member 0 still has the ring from before member 2 joined.
			old, err = ring.New(ring.Config{Members: addrs[:2], VNodes: 16, Replicas: 2})
			if err != nil {
				t.Fatal(err)
			}
			return old
		}
		loop = cur
		return cur
	}})
	// A user that member 0 thinks member 1 owns, but member 1 (and the
	// current ring) says member 2 owns.
	var user string
	for i := range 1000 {
		u := fmt.Sprintf("u%d", i)
		if old.Owner(u) == ms[1].addr && loop.Owner(u) == ms[2].addr {
			user = u
			break
		}
	}
	if user == "" {
		t.Fatal("no user moved from member 1 to member 2")
	}
	a := do(t, nil, "POST", ms[0].url("/v1/users"), "", api.CreateUserRequest{Name: user})
	if a.code != 201 {
		t.Fatalf("create %s via the stale member = %d %s", user, a.code, a.body)
	}
	if _, err := ms[2].store.User(user); err != nil {
		t.Errorf("%s is not on its owner by the current ring: %v", user, err)
	}

	// Now two members that each think the other owns a user.
	ms = newCluster(t, clusterOpts{n: 2, ring: func(i int, addrs []string) *ring.Ring {
		r, _ := ring.New(ring.Config{Members: addrs, VNodes: 4 + 60*i})
		return r
	}})
	r0, r1 := ms[0].srv.Ring(), ms[1].srv.Ring()
	user = ""
	for i := range 10000 {
		u := fmt.Sprintf("u%d", i)
		if r0.Owner(u) == ms[1].addr && r1.Owner(u) == ms[0].addr {
			user = u
			break
		}
	}
	if user == "" {
		t.Fatal("no user that the two rings disagree about")
	}
	a = do(t, nil, "GET", ms[0].url("/v1/users/"+user+"/posts"), "", nil)
	if a.code != http.StatusLoopDetected || !strings.Contains(a.errorText(t), "forwarded 2 times") {
		t.Errorf("request bouncing between rings = %d %s, want 508", a.code, a.body)
	}
	// A client cannot fake a hop count without the cluster secret: the
	// request still goes around from hop 0, as the error text shows.
	req, _ := http.NewRequest("GET", ms[0].url("/v1/users/"+user+"/posts"), nil)
	req.Header.Set(api.HeaderHops, "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusLoopDetected || !strings.Contains(string(b), "forwarded 2 times") {
		t.Errorf("request with a faked hop count = %d %s", resp.StatusCode, b)
	}
}

// TestForwardToDeadOwner: an owner that died before the failure
// detector noticed (it still says alive) cannot be connected to, so
// forwards go on to the replica, which serves reads and takes writes
// (with a hinted copy for the owner on the third member). With the
// whole preference list down the answer is 503 naming each member tried
// and why.
func TestForwardToDeadOwner(t *testing.T) {
	t.Run("links", func(t *testing.T) { testForwardToDeadOwner(t, false) })
	t.Run("http", func(t *testing.T) { testForwardToDeadOwner(t, true) })
}

func testForwardToDeadOwner(t *testing.T, httpForward bool) {
	ms := newCluster(t, clusterOpts{n: 3, httpForward: httpForward})
	pref := ms[0].srv.Ring().Preference(nil, "joe")
	o, replica := byAddr(ms, pref[0]), byAddr(ms, pref[1])
	var other *member
	for _, m := range ms {
		if m != o && m != replica {
			other = m
		}
	}
	token := createUser(t, other, "joe")
	o.kill()
	a := do(t, nil, "GET", other.url("/v1/users/joe"), "", nil)
	if a.code != http.StatusOK || a.header.Get(api.HeaderOwner) != replica.addr {
		t.Errorf("read with a dead owner = %d %s (answered by %s), want 200 from the replica %s", a.code, a.body, a.header.Get(api.HeaderOwner), replica.addr)
	}
	a = do(t, nil, "POST", other.url("/v1/users/joe/posts"), token, api.PostRequest{Text: "while the owner is down"})
	if a.code != http.StatusCreated {
		t.Errorf("write with a dead owner = %d %s, want 201 from the replica", a.code, a.body)
	}
	if st := other.srv.Status(); st.HintsByMember[o.addr] != 1 {
		t.Errorf("hints on the third member = %v, want 1 for the owner %s", st.HintsByMember, o.addr)
	}
	replica.kill()
	a = do(t, nil, "GET", other.url("/v1/users/joe/posts"), "", nil)
	if a.code != http.StatusServiceUnavailable || !strings.HasPrefix(a.errorText(t), "no member of joe's preference list could be reached (") ||
		!strings.Contains(a.errorText(t), o.addr+": refused the connection (not running)") ||
		!strings.Contains(a.errorText(t), replica.addr+": refused the connection (not running)") {
		t.Errorf("forward with the preference list down = %d %s, want 503 naming both members and why", a.code, a.body)
	}
}

// TestRestartKeepsData restarts a member on the same address and data
// directory: everything acknowledged before is served after.
func TestRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	rg, _ := ring.New(ring.Config{Members: []string{addr}})
	start := func(ln net.Listener) (*httptest.Server, *store.Store) {
		st, err := store.Open(dir, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := New(Options{Self: addr, Ring: rg, Store: st, Secret: testSecret, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewUnstartedServer(srv)
		ts.Listener.Close()
		ts.Listener = ln
		ts.Start()
		return ts, st
	}
	ts, st := start(ln)
	m := &member{addr: addr, ts: ts}
	token := createUser(t, m, "joe")
	createUser(t, m, "ann")
	var want []feed.Post
	for i := range 3 {
		var p feed.Post
		do(t, nil, "POST", m.url("/v1/users/joe/posts"), token, api.PostRequest{Text: fmt.Sprint(i)}).decode(t, &p)
		want = append([]feed.Post{p}, want...)
	}
	if a := do(t, nil, "PUT", m.url("/v1/users/joe/following/ann"), token, nil); a.code != 204 {
		t.Fatal(a.code)
	}
	ts.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ts, st = start(ln)
	defer func() { ts.Close(); st.Close() }()
	m.ts = ts
	var page api.PostsAnswer
	do(t, nil, "GET", m.url("/v1/users/joe/timeline"), token, nil).decode(t, &page)
	if diff := cmp.Diff(want, page.Posts); diff != "" {
		t.Errorf("timeline after restart (-want +got):\n%s", diff)
	}
	var fing api.FollowingAnswer
	do(t, nil, "GET", m.url("/v1/users/joe/following"), "", nil).decode(t, &fing)
	if diff := cmp.Diff([]string{"ann"}, fing.Following); diff != "" {
		t.Errorf("following after restart (-want +got):\n%s", diff)
	}
	// A new post sorts after the old ones.
	var p feed.Post
	do(t, nil, "POST", m.url("/v1/users/joe/posts"), token, api.PostRequest{Text: "after"}).decode(t, &p)
	if p.ID.Compare(want[0].ID) <= 0 {
		t.Errorf("post after restart has id %s, not after %s", p.ID, want[0].ID)
	}
}
