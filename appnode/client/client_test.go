package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/ring"
	"github.com/ringfront/ringfront/appnode/server"
	"github.com/ringfront/ringfront/appnode/store"
)

type member struct {
	addr      string
	srv       *server.Server
	st        *store.Store
	ts        *httptest.Server
	forwarded atomic.Int64 // requests that arrived forwarded by another member
}

func cluster(t *testing.T, n int, routing server.Routing) []*member {
	t.Helper()
	lns := make([]net.Listener, n)
	addrs := make([]string, n)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i], addrs[i] = ln, ln.Addr().String()
	}
	rg, err := ring.New(ring.Config{Members: addrs, VNodes: 16, Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	ms := make([]*member, n)
	for i := range ms {
		st, err := store.Open(t.TempDir(), store.Options{Space: func(string) (store.Space, error) { return store.Space{Free: 1 << 40}, nil }})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := server.New(server.Options{Self: addrs[i], Ring: rg, Routing: routing, Store: st,
			Secret: []byte("s"), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		m := &member{addr: addrs[i], srv: srv, st: st}
		ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get(api.HeaderHops) != "" {
				m.forwarded.Add(1)
			}
			srv.ServeHTTP(w, r)
		}))
		ts.Listener.Close()
		ts.Listener = lns[i]
		ts.Start()
		m.ts = ts
		ms[i] = m
		t.Cleanup(func() { ts.Close(); st.Close() })
	}
	return ms
}

func TestClient(t *testing.T) {
	ms := cluster(t, 3, server.Forward)
	ctx := context.Background()
	c, err := New([]string{"http://" + ms[0].addr}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	users := []string{"joe", "ann", "bob", "cat", "dan", "eve"}
	tokens := map[string]string{}
	for _, u := range users {
		ans, err := c.CreateUser(ctx, u)
		if err != nil {
			t.Fatalf("CreateUser(%s): %v", u, err)
		}
		tokens[u] = ans.Token
	}
	if _, err := c.CreateUser(ctx, "joe"); !errors.Is(err, ErrConflict) {
		t.Errorf("CreateUser(joe) again = %v, want ErrConflict", err)
	}
	if _, err := c.CreateUser(ctx, "No"); !errors.Is(err, feed.ErrBadName) {
		t.Errorf("CreateUser(No) = %v, want ErrBadName", err)
	}
	if u, err := c.User(ctx, "ann"); err != nil || u.Name != "ann" {
		t.Errorf("User(ann) = %+v, %v", u, err)
	}
	if _, err := c.User(ctx, "zed"); !errors.Is(err, ErrNotFound) {
		t.Errorf("User(zed) = %v, want ErrNotFound", err)
	}
	var want []feed.Post
	for i := range 3 {
		for _, u := range users {
			p, err := c.Post(ctx, u, tokens[u], fmt.Sprintf("%s %d", u, i))
			if err != nil {
				t.Fatalf("Post as %s: %v", u, err)
			}
			if u != "eve" {
				want = append([]feed.Post{p}, want...)
			}
		}
	}
	if _, err := c.Post(ctx, "joe", tokens["ann"], "x"); !errors.Is(err, ErrForbidden) {
		t.Errorf("Post with ann's token = %v, want ErrForbidden", err)
	}
	if _, err := c.Post(ctx, "joe", "", "x"); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("Post without token = %v, want ErrUnauthorized", err)
	}
	var ce *Error
	if _, err := c.Post(ctx, "joe", tokens["joe"], strings.Repeat("x", 281)); !errors.As(err, &ce) || ce.Status != 400 || !errors.Is(err, ErrBadRequest) {
		t.Errorf("Post of 281 characters = %v, want a 400", err)
	}
	page, err := c.Posts(ctx, "joe", Page{Limit: 2})
	if err != nil || len(page.Posts) != 2 || page.Next == "" || page.Posts[0].Text != "joe 2" {
		t.Errorf("Posts(joe, 2) = %+v, %v", page, err)
	}
	page, err = c.Posts(ctx, "joe", Page{Limit: 2, Before: page.Next})
	if err != nil || len(page.Posts) != 1 || page.Next != "" || page.Posts[0].Text != "joe 0" {
		t.Errorf("Posts(joe, second page) = %+v, %v", page, err)
	}
	for _, u := range users[1:5] {
		if err := c.Follow(ctx, "joe", tokens["joe"], u); err != nil {
			t.Fatalf("Follow(%s): %v", u, err)
		}
	}
	if err := c.Follow(ctx, "joe", tokens["joe"], "eve"); err != nil {
		t.Fatal(err)
	}
	if err := c.Unfollow(ctx, "joe", tokens["joe"], "eve"); err != nil {
		t.Fatal(err)
	}
	if err := c.Follow(ctx, "joe", tokens["joe"], "zed"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Follow(zed) = %v, want ErrNotFound", err)
	}
	following, err := c.Following(ctx, "joe")
	if diff := cmp.Diff(users[1:5], following); err != nil || diff != "" {
		t.Errorf("Following(joe) = %v (-want +got):\n%s", err, diff)
	}
	followers, err := c.Followers(ctx, "ann")
	if err != nil || !cmp.Equal([]string{"joe"}, followers) {
		t.Errorf("Followers(ann) = %v, %v", followers, err)
	}
	var got []feed.Post
	before := ""
	for range 10 {
		page, err := c.Timeline(ctx, "joe", tokens["joe"], Page{Limit: 4, Before: before})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page.Posts...)
		if before = page.Next; before == "" {
			break
		}
	}
	// Ids order posts by time; two members' posts within the same
	// millisecond order by member, not by when this test made them.
	slices.SortFunc(want, func(a, b feed.Post) int { return b.ID.Compare(a.ID) })
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
	// Every request went straight to the owner.
	for _, m := range ms {
		if n := m.forwarded.Load(); n != 0 {
			t.Errorf("member %s got %d forwarded requests; the client should talk to owners", m.addr, n)
		}
	}
	pref, err := c.Lookup(ctx, "joe")
	if err != nil || !cmp.Equal(ms[0].srv.Ring().Preference(nil, "joe"), pref) {
		t.Errorf("Lookup(joe) = %v, %v", pref, err)
	}
}

// TestClientRingChange: when the members' ring changes, the client sees
// the new version on its next answer and refetches the ring; a member
// in redirect mode sends it on to the new owner, token and all.
func TestClientRingChange(t *testing.T) {
	ms := cluster(t, 3, server.Redirect)
	ctx := context.Background()
	c, _ := New([]string{ms[1].addr}, Options{})
	old, err := c.Ring(ctx)
	if err != nil {
		t.Fatal(err)
	}
	addrs := old.Members()
	next, err := ring.New(ring.Config{Members: addrs, VNodes: 64, Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	// A user whose owner moves with the new ring.
	var user string
	for i := range 1000 {
		if u := fmt.Sprintf("u%d", i); old.Owner(u) != next.Owner(u) {
			user = u
			break
		}
	}
	for _, m := range ms {
		if err := m.srv.SetRing(next); err != nil {
			t.Fatal(err)
		}
	}
	// The client still uses the old ring: the old owner redirects.
	ans, err := c.CreateUser(ctx, user)
	if err != nil {
		t.Fatalf("CreateUser(%s) through a redirect: %v", user, err)
	}
	if _, err := c.Post(ctx, user, ans.Token, "hello"); err != nil {
		t.Fatalf("Post through a redirect (token must follow it): %v", err)
	}
	r, err := c.Ring(ctx)
	if err != nil || r.Version() != next.Version() {
		t.Errorf("client ring after the change = %v, %v; want version %s", r, err, next.Version())
	}
	page, err := c.Posts(ctx, user, Page{})
	if err != nil || len(page.Posts) != 1 {
		t.Errorf("Posts = %+v, %v", page, err)
	}
}

// TestClientFailover: when the owner does not answer, the client tries
// the next member of the preference list.
func TestClientFailover(t *testing.T) {
	ms := cluster(t, 3, server.Forward)
	ctx := context.Background()
	c, _ := New([]string{ms[0].addr, ms[1].addr, ms[2].addr}, Options{})
	r, err := c.Ring(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pref := r.Preference(nil, "joe")
	if _, err := c.CreateUser(ctx, "joe"); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.addr == pref[0] {
			m.ts.Close()
		}
	}
	// The replica answers from its copy.
	if u, err := c.User(ctx, "joe"); err != nil || u.Name != "joe" {
		t.Errorf("User(joe) with the owner down = %+v, %v; want joe from the replica %s", u, err, pref[1])
	}
	// With every member down the error says so.
	for _, m := range ms {
		m.ts.Close()
	}
	if _, err := c.User(ctx, "joe"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("User(joe) with all down = %v, want ErrUnavailable", err)
	}
}

// farOwner returns a client seeded with ms[0] (200ms attempts), a user
// named prefix+N that ms[0] does not own, and its owner.
func farOwner(t *testing.T, ms []*member, prefix string) (*Client, string, *member) {
	t.Helper()
	c, _ := New([]string{ms[0].addr}, Options{AttemptTimeout: 200 * time.Millisecond})
	r, err := c.Ring(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if u := fmt.Sprintf("%s%d", prefix, i); r.Owner(u) != ms[0].addr {
			for _, m := range ms {
				if m.addr == r.Owner(u) {
					return c, u, m
				}
			}
		}
	}
}

// TestClientPausedOwner: an owner that takes requests and never answers
// (a paused process) is passed over after the attempt timeout, for the
// replica, and then asked last for a while; a post sent to both is one
// post, a user created through both is one user with the client's token.
func TestClientPausedOwner(t *testing.T) {
	ms := cluster(t, 3, server.Forward)
	ctx := context.Background()
	c, user, paused := farOwner(t, ms, "p")
	// The owner's copy of the user is made, then it stops answering.
	var stalled atomic.Bool
	var reached atomic.Int64
	inner := paused.ts.Config.Handler
	paused.ts.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if stalled.Load() && r.Header.Get(api.HeaderHops) == "" && !strings.HasPrefix(r.URL.Path, "/internal/") {
			reached.Add(1)
			// Take the request, store it, and never answer in time.
			inner.ServeHTTP(httptest.NewRecorder(), r)
			<-r.Context().Done()
			return
		}
		inner.ServeHTTP(w, r)
	})
	stalled.Store(true)
	start := time.Now()
	u, err := c.CreateUser(ctx, user)
	if err != nil {
		t.Fatalf("creating %s with its owner paused: %v", user, err)
	}
	p, err := c.Post(ctx, user, u.Token, "sent twice, stored once")
	if err != nil {
		t.Fatalf("posting with the owner paused: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("create and post with a paused owner took %v", took)
	}
	if n := reached.Load(); n != 1 {
		t.Errorf("the paused owner was asked %d times, want once (then asked last)", n)
	}
	stalled.Store(false)
	page, err := c.Posts(ctx, user, Page{})
	if err != nil || len(page.Posts) != 1 || page.Posts[0].ID != p.ID {
		t.Errorf("posts of %s = %+v, %v; want the one post %s", user, page.Posts, err, p.ID)
	}
	for _, m := range ms {
		if !m.srv.Ring().InPreference(user, m.addr) {
			continue
		}
		got, err := c.Timeline(ctx, user, u.Token, Page{})
		if err != nil || len(got.Posts) != 1 {
			t.Errorf("%s's token on the cluster: timeline %+v, %v", user, got.Posts, err)
		}
	}
}

func TestNewErrors(t *testing.T) {
	for _, tt := range []struct {
		seeds []string
		opts  Options
		want  string
	}{
		{nil, Options{}, "no seed members"},
		{[]string{"ftp://x:1"}, Options{}, `seed "ftp://x:1" is not http://host:port or https://host:port`},
		{[]string{"http://"}, Options{}, "is not http://host:port"},
		{[]string{"https://x:1", "http://y:1"}, Options{}, `seed "http://y:1" is http, another is https`},
		{[]string{"x:1"}, Options{CAFile: "/nonexistent/ca.crt"}, "reading CA file"},
	} {
		if _, err := New(tt.seeds, tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%v) = %v, want an error containing %q", tt.seeds, err, tt.want)
		}
	}
	for _, tt := range []struct {
		seeds []string
		opts  Options
		want  string
	}{
		{[]string{"x:1"}, Options{}, "http"},
		{[]string{"https://x:1", "y:1"}, Options{}, "https"},
		{[]string{"x:1"}, Options{TLS: &tls.Config{}}, "https"},
	} {
		c, err := New(tt.seeds, tt.opts)
		if err != nil || c.Scheme() != tt.want {
			t.Errorf("New(%v) scheme = %v, %v; want %s", tt.seeds, c, err, tt.want)
		}
	}
	c, _ := New([]string{"127.0.0.1:1"}, Options{})
	if _, err := c.Ring(context.Background()); err == nil || !strings.Contains(err.Error(), "fetching the ring") {
		t.Errorf("Ring from a dead seed = %v", err)
	}
}

// TestClientEdgeLateCopy: a follow the paused owner takes but does not
// answer is retried on another member and acknowledged; the client then
// unfollows; when the owner serves its copy of the follow late, that
// copy carries the clock the client pinned and is refused (409): nobody
// follows anybody, on any replica.
func TestClientEdgeLateCopy(t *testing.T) {
	ms := cluster(t, 3, server.Forward)
	ctx := context.Background()
	c, ann, paused := farOwner(t, ms, "ann")
	ua, err := c.CreateUser(ctx, ann)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	// The owner keeps the client's follow and does not answer it.
	var late atomic.Pointer[http.Request]
	inner := paused.ts.Config.Handler
	paused.ts.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.Header.Get(api.HeaderHops) == "" && late.Load() == nil {
			late.Store(r.Clone(context.Background()))
			<-r.Context().Done()
			return
		}
		inner.ServeHTTP(w, r)
	})
	if err := c.Follow(ctx, ann, ua.Token, "bob"); err != nil {
		t.Fatalf("follow with the owner paused: %v", err)
	}
	if late.Load() == nil {
		t.Fatal("the follow did not reach the owner first")
	}
	if err := c.Unfollow(ctx, ann, ua.Token, "bob"); err != nil {
		t.Fatalf("unfollow: %v", err)
	}
	// The owner resumes and serves the copy it read.
	rec := httptest.NewRecorder()
	inner.ServeHTTP(rec, late.Load())
	if rec.Code != http.StatusConflict {
		t.Errorf("the late copy of the follow = %d %s, want 409", rec.Code, rec.Body)
	}
	for _, m := range ms {
		if e, err := m.st.Edge(store.Following, ann, "bob"); err == nil && !e.Removed {
			t.Errorf("%s follows bob on %s after the late copy (clock %v)", ann, m.addr, e.Clock.Time())
		}
		if e, err := m.st.Edge(store.Followers, ann, "bob"); err == nil && !e.Removed {
			t.Errorf("bob's followers on %s include %s after the late copy", m.addr, ann)
		}
	}
}

// TestClientEdgeRepin: when a later change to an edge is stored (made
// elsewhere, by a member whose clock ran ahead of everything this
// client has seen), the client's unfollow is answered 409 with a clock
// past it, and the client pins a new one and sends it again: the
// unfollow is the latest change, as its caller meant.
func TestClientEdgeRepin(t *testing.T) {
	ms := cluster(t, 3, server.Forward)
	ctx := context.Background()
	c, _ := New([]string{ms[0].addr}, Options{})
	ua, err := c.CreateUser(ctx, "ann")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	ahead := feed.Timestamp(uint64(time.Now().Add(time.Minute).UnixMilli()) << 16)
	e := feed.Edge{Follower: "ann", Followee: "bob", Clock: ahead}
	for _, m := range ms {
		for _, side := range []store.Side{store.Following, store.Followers} {
			if _, _, err := m.st.MergeEdge(side, e, false, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := c.Unfollow(ctx, "ann", ua.Token, "bob"); err != nil {
		t.Fatalf("unfollow after a change with a clock ahead: %v", err)
	}
	fing, err := c.Following(ctx, "ann")
	if err != nil || len(fing) != 0 {
		t.Errorf("ann follows %v (%v) after the unfollow, want nobody", fing, err)
	}
}
