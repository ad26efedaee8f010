package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/fanout"
	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/replica"
	"github.com/ringfront/ringfront/appnode/store"
	"github.com/ringfront/ringfront/appnode/transport"
)

// loseAnswers is a transport that delivers a request and then throws
// its answer away (as a timeout or a broken connection would) when
// lose says so.
func loseAnswers(lose func(*http.Request) bool) http.RoundTripper {
	next := transport.NewHTTP()
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		resp, err := next.RoundTrip(r)
		if err != nil || !lose(r) {
			return resp, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil, errors.New("answer lost (test fault)")
	})
}

// TestFollowAnswerLost: the followee's side stores a follow (then an
// unfollow) but its answer never reaches the follower's side, so the
// request fails and the follower's side never writes it. The edge notes
// the followee's side kept deliver it there: both sides agree on every
// member of both users.
func TestFollowAnswerLost(t *testing.T) {
	var lose atomic.Bool
	ms := newCluster(t, clusterOpts{n: 3, httpForward: true, transport: loseAnswers(func(r *http.Request) bool {
		return lose.Load() && strings.HasSuffix(r.URL.Path, "/followers")
	})})
	ta := createUser(t, ms[0], "ann")
	via := byAddr(ms, ms[0].srv.Ring().Owner("ann"))
	// bob: a followee none of whose members is ann's, so both of its
	// members lose their answer.
	bob := ""
	for i := 0; bob == ""; i++ {
		if u := fmt.Sprintf("bob%d", i); !ms[0].srv.Ring().InPreference(u, via.addr) {
			bob = u
		}
	}
	createUser(t, ms[0], bob)
	check := func(want bool) {
		t.Helper()
		for _, m := range ms {
			if m.srv.Ring().InPreference("ann", m.addr) {
				fing, _ := m.srv.follow.Active(store.Following, "ann")
				if got := slices.Contains(fing, bob); got != want {
					t.Errorf("ann follows bob on %s: %v, want %v", m.addr, got, want)
				}
			}
			if m.srv.Ring().InPreference(bob, m.addr) {
				fers, _ := m.srv.follow.Active(store.Followers, bob)
				if got := slices.Contains(fers, "ann"); got != want {
					t.Errorf("bob's followers on %s include ann: %v, want %v", m.addr, got, want)
				}
			}
		}
	}
	for _, tt := range []struct {
		method string
		want   bool
	}{{"PUT", true}, {"DELETE", false}} {
		lose.Store(true)
		a := do(t, nil, tt.method, via.url("/v1/users/ann/following/"+bob), ta, nil)
		lose.Store(false)
		if a.code != http.StatusServiceUnavailable {
			t.Fatalf("%s with the answers lost = %d %s, want 503", tt.method, a.code, a.body)
		}
		// The edge notes are due replica.EdgeNoteDelay after the change.
		later := time.Now().Add(replica.EdgeNoteDelay + time.Second)
		delivered := 0
		for _, m := range ms {
			delivered += m.srv.Replica().SyncEdges(context.Background(), later)
		}
		if delivered == 0 {
			t.Errorf("%s: no edge note delivered", tt.method)
		}
		check(tt.want)
		for _, m := range ms {
			if n := m.srv.Replica().EdgeNotes(); n != 0 {
				t.Errorf("%s: %d edge notes left on %s", tt.method, n, m.addr)
			}
		}
	}
}

// TestFollowGoesOnToReplica: a follow whose followee's owner refuses
// connections goes on to the followee's other replica, like any
// forward.
func TestFollowGoesOnToReplica(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 3})
	pref := ms[0].srv.Ring().Preference(nil, "bob")
	var follower string
	for i := 0; follower == ""; i++ {
		u := string(rune('a'+i%26)) + "f" + string(rune('a'+i/26))
		if !ms[0].srv.Ring().InPreference(u, pref[0]) {
			follower = u
		}
	}
	tf := createUser(t, ms[0], follower)
	createUser(t, ms[0], "bob")
	byAddr(ms, pref[0]).kill()
	via := byAddr(ms, ms[0].srv.Ring().Owner(follower))
	if a := do(t, nil, "PUT", via.url("/v1/users/"+follower+"/following/bob"), tf, nil); a.code != http.StatusNoContent {
		t.Fatalf("follow with bob's owner refusing connections = %d %s, want 204", a.code, a.body)
	}
	var ans api.FollowersAnswer
	do(t, nil, "GET", via.url("/v1/users/bob/followers"), "", nil).decode(t, &ans)
	if !slices.Contains(ans.Followers, follower) {
		t.Errorf("bob's followers = %v, want %s", ans.Followers, follower)
	}
}

// TestFanoutCopies: a post's replica keeps a copy of each of its outbox
// entries for other members; once the coordinator has delivered them it
// says so and the copies are deleted, so the replica never delivers
// them itself. A copy whose coordinator stays silent is delivered by the
// replica after fanout.CopyMaxAge.
func TestFanoutCopies(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 3})
	rg := ms[0].srv.Ring()
	pref := rg.Preference(nil, "author")
	coord, replica := byAddr(ms, pref[0]), byAddr(ms, pref[1])
	// A follower whose inbox is on a member other than the coordinator.
	follower := ""
	for i := 0; follower == ""; i++ {
		if u := fmt.Sprintf("f%d", i); !rg.InPreference(u, coord.addr) {
			follower = u
		}
	}
	ta := createUser(t, coord, "author")
	tf := createUser(t, coord, follower)
	if a := do(t, nil, "PUT", coord.url("/v1/users/"+follower+"/following/author"), tf, nil); a.code != 204 {
		t.Fatalf("follow = %d %s", a.code, a.body)
	}
	if a := do(t, nil, "POST", coord.url("/v1/users/author/posts"), ta, api.PostRequest{Text: "hello"}); a.code != 201 {
		t.Fatalf("post = %d %s", a.code, a.body)
	}
	if n, _ := replica.store.CountCopies(0); n == 0 {
		t.Fatal("the replica keeps no copy of the post's outbox entries")
	}
	coord.srv.Fanout().SendDone(context.Background())
	if n, _ := replica.store.CountCopies(0); n != 0 {
		t.Errorf("%d copies left on the replica after the coordinator said it delivered them", n)
	}
	// Without the coordinator's word, a copy is delivered after
	// fanout.CopyMaxAge (and then deleted).
	if a := do(t, nil, "POST", coord.url("/v1/users/author/posts"), ta, api.PostRequest{Text: "again"}); a.code != 201 {
		t.Fatalf("post = %d %s", a.code, a.body)
	}
	if n := replica.srv.Fanout().DeliverCopies(context.Background(), time.Now()); n != 0 {
		t.Errorf("copies of a live coordinator delivered before fanout.CopyMaxAge: %d", n)
	}
	if n := replica.srv.Fanout().DeliverCopies(context.Background(), time.Now().Add(fanout.CopyMaxAge+time.Minute)); n == 0 {
		t.Error("no copy delivered after fanout.CopyMaxAge")
	}
	if n, _ := replica.store.CountCopies(0); n != 0 {
		t.Errorf("%d copies left after they were delivered", n)
	}
}

// TestLateFollowPushesPosts: across a partition, a follow is made on one
// side while the author's member on the other side takes the author's
// post (write_acks 1) and pushes it to the followers it knows, without
// the new one. When the follow reaches that member after the heal, it
// pushes the posts made since: the follower's timeline has the post.
func TestLateFollowPushesPosts(t *testing.T) {
	p := &partition{group: map[string]int{}}
	var addrs []string
	ms := newCluster(t, clusterOpts{n: 3, writeAcks: 1,
		memberTransport: func(i int) http.RoundTripper { return p.transport(func() string { return addrs[i] }) },
		memberAlive: func(i int) func(string) bool {
			return func(m string) bool { return !p.split(addrs[i], m) }
		},
	})
	for _, m := range ms {
		addrs = append(addrs, m.addr)
	}
	rg := ms[0].srv.Ring()
	// The author's owner X is cut off from the other two; the follower
	// lives on the other side (neither of its members is X).
	var author, follower string
	var x *member
	for i := 0; author == ""; i++ {
		a := fmt.Sprintf("au%d", i)
		owner := byAddr(ms, rg.Owner(a))
		for j := 0; j < 1000; j++ {
			f := fmt.Sprintf("fo%d", j)
			if !rg.InPreference(f, owner.addr) {
				author, follower, x = a, f, owner
				break
			}
		}
	}
	for _, m := range ms {
		p.group[m.addr] = 1
	}
	p.group[x.addr] = 0
	ta := createUser(t, x, author)
	var other *member
	for _, m := range ms {
		if m != x {
			other = m
		}
	}
	tf := createUser(t, other, follower)
	p.on.Store(true)
	if a := do(t, nil, "PUT", other.url("/v1/users/"+follower+"/following/"+author), tf, nil); a.code != 204 {
		t.Fatalf("follow on the far side = %d %s", a.code, a.body)
	}
	var post feed.Post
	a := do(t, nil, "POST", x.url("/v1/users/"+author+"/posts"), ta, api.PostRequest{Text: "posted without the new follower"})
	if a.code != 201 {
		t.Fatalf("post on the author's side = %d %s", a.code, a.body)
	}
	a.decode(t, &post)
	p.on.Store(false)
	ctx := context.Background()
	for range 3 {
		for _, m := range ms {
			m.srv.Replica().Handoff(ctx)
			for _, o := range ms {
				if o != m {
					m.srv.Syncer().Compare(ctx, o.addr)
				}
			}
			m.srv.Fanout().DeliverOutbox(ctx)
		}
	}
	fo := byAddr(ms, rg.Owner(follower))
	var page api.PostsAnswer
	do(t, nil, "GET", fo.url("/v1/users/"+follower+"/timeline"), tf, nil).decode(t, &page)
	if !slices.ContainsFunc(page.Posts, func(q feed.Post) bool { return q.ID == post.ID }) {
		t.Errorf("%s's timeline after the heal lacks %s's post %s: %+v", follower, author, post.ID, page.Posts)
	}
}

// TestUnfollowAfterClockRanAhead: a follow served by a member whose
// clock runs a minute ahead is still undone by a later unfollow that
// another member forwards with its clock pinned: clocks travel with
// every request and answer, so the forwarding member's clock has moved
// past the follow's. And a late copy of the follow itself (as a paused
// member reads it after it resumes) does not undo the unfollow: it
// keeps the clock it was pinned with.
func TestUnfollowAfterClockRanAhead(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 3})
	rg := ms[0].srv.Ring()
	// Two users and a member holding neither: it learns clocks only
	// from what travels with requests and answers.
	var ann, bob string
	var via *member
	for i := 0; via == nil; i++ {
		a, b := fmt.Sprintf("ann%d", i), fmt.Sprintf("bob%d", i)
		for _, m := range ms {
			if !rg.InPreference(a, m.addr) && !rg.InPreference(b, m.addr) {
				ann, bob, via = a, b, m
			}
		}
	}
	owner := byAddr(ms, rg.Owner(ann))
	ta := createUser(t, owner, ann)
	createUser(t, owner, bob)
	owner.srv.Cluster().Clock().Observe(feed.Timestamp(uint64(time.Now().Add(time.Minute).UnixMilli()) << 16))
	if a := do(t, nil, "PUT", owner.url("/v1/users/"+ann+"/following/"+bob), ta, nil); a.code != 204 {
		t.Fatalf("follow = %d %s", a.code, a.body)
	}
	followed, err := owner.store.Edge(store.Following, ann, bob)
	if err != nil || followed.Clock.Time().Before(time.Now().Add(50*time.Second)) {
		t.Fatalf("follow stored with clock %v (%v), want one a minute ahead", followed.Clock.Time(), err)
	}
	// Any exchange with the owner carries its clock to via.
	do(t, nil, "GET", via.url("/v1/users/"+ann), "", nil)
	if a := do(t, nil, "DELETE", via.url("/v1/users/"+ann+"/following/"+bob), ta, nil); a.code != 204 {
		t.Fatalf("unfollow = %d %s", a.code, a.body)
	}
	check := func(when string) {
		t.Helper()
		for _, m := range ms {
			if rg.InPreference(ann, m.addr) {
				if fing, _ := m.srv.follow.Active(store.Following, ann); slices.Contains(fing, bob) {
					t.Errorf("%s: %s still follows %s on %s", when, ann, bob, m.addr)
				}
			}
			if rg.InPreference(bob, m.addr) {
				if fers, _ := m.srv.follow.Active(store.Followers, bob); slices.Contains(fers, ann) {
					t.Errorf("%s: %s's followers on %s still include %s", when, bob, m.addr, ann)
				}
			}
		}
	}
	check("after the unfollow")
	// A late copy of the follow, forwarded with the follow's clock.
	req, _ := http.NewRequest("PUT", owner.url("/v1/users/"+ann+"/following/"+bob), nil)
	req.Header.Set("Authorization", "Bearer "+ta)
	req.Header.Set(api.HeaderHops, "1")
	req.Header.Set(api.HeaderEdgeClock, fmt.Sprint(uint64(followed.Clock)))
	req.Header.Set(api.HeaderCluster, transport.Sign(testSecret, time.Now(), "PUT", "/v1/users/"+ann+"/following/"+bob, nil))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("a late copy of the follow = %s, want 409 (a later change is stored)", resp.Status)
	}
	check("after a late copy of the follow")
}

// TestClientPinnedEdgeClock: a follow or unfollow the client pinned
// (api.HeaderEdgeClock, as appnode/client does) is stored with that
// clock on whichever member serves it; the same request sent twice is
// accepted twice; a copy of the follow read late — after the client
// went on to another member and unfollowed — is refused with 409 and
// changes nothing, on the owner and through another member; a clock
// that is not one, or is far ahead, is refused with 400.
func TestClientPinnedEdgeClock(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 3})
	rg := ms[0].srv.Ring()
	owner := byAddr(ms, rg.Owner("ann"))
	via := notOwner(ms, "ann")
	ta := createUser(t, owner, "ann")
	createUser(t, owner, "bob")
	edge := func(m *member, method, pin string) answer {
		t.Helper()
		req, _ := http.NewRequest(method, m.url("/v1/users/ann/following/bob"), nil)
		req.Header.Set("Authorization", "Bearer "+ta)
		if pin != "" {
			req.Header.Set(api.HeaderEdgeClock, pin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return answer{resp.StatusCode, resp.Header, b}
	}
	follows := func() (on []string) {
		for _, m := range ms {
			fing, _ := m.srv.follow.Active(store.Following, "ann")
			fers, _ := m.srv.follow.Active(store.Followers, "bob")
			if rg.InPreference("ann", m.addr) && slices.Contains(fing, "bob") || rg.InPreference("bob", m.addr) && slices.Contains(fers, "ann") {
				on = append(on, m.addr)
			}
		}
		return on
	}
	t1 := feed.Timestamp(uint64(time.Now().UnixMilli()) << 16)
	t2 := t1 + 1000
	for _, try := range []string{"first", "sent again"} {
		if a := edge(via, "PUT", fmt.Sprint(uint64(t1))); a.code != http.StatusNoContent {
			t.Fatalf("pinned follow (%s) = %d %s", try, a.code, a.body)
		}
	}
	if e, err := owner.store.Edge(store.Following, "ann", "bob"); err != nil || e.Clock != t1 || e.Removed {
		t.Fatalf("the owner stored %+v (%v), want a follow with the client's clock %d", e, err, t1)
	}
	if a := edge(owner, "DELETE", fmt.Sprint(uint64(t2))); a.code != http.StatusNoContent {
		t.Fatalf("pinned unfollow = %d %s", a.code, a.body)
	}
	for _, m := range []*member{owner, via} {
		a := edge(m, "PUT", fmt.Sprint(uint64(t1)))
		if a.code != http.StatusConflict || !strings.Contains(string(a.body), "a later change is stored (an unfollow") {
			t.Errorf("a late copy of the follow via %s = %d %s, want 409 naming the unfollow", m.addr, a.code, a.body)
		}
		if c, _ := strconv.ParseUint(a.header.Get(api.HeaderClock), 10, 64); feed.Timestamp(c) < t2 {
			t.Errorf("the 409's %s is %d, want at least the stored unfollow's %d", api.HeaderClock, c, t2)
		}
	}
	if on := follows(); len(on) > 0 {
		t.Errorf("ann follows bob again on %v after a late copy of the follow", on)
	}
	ahead := feed.Timestamp(uint64(time.Now().Add(10*time.Minute).UnixMilli()) << 16)
	for _, tt := range []struct{ pin, want string }{
		{"abc", `X-Ringfront-Edge-Clock: \"abc\" is not a clock`},
		{"0", "is not a clock"},
		{fmt.Sprint(uint64(ahead)), "ahead of this member's clock (at most 5m0s)"},
	} {
		for _, m := range []*member{owner, via} {
			if a := edge(m, "PUT", tt.pin); a.code != http.StatusBadRequest || !strings.Contains(string(a.body), tt.want) {
				t.Errorf("pin %q via %s = %d %s, want 400 with %q", tt.pin, m.addr, a.code, a.body, tt.want)
			}
		}
	}
	if on := follows(); len(on) > 0 {
		t.Errorf("ann follows bob on %v after refused requests", on)
	}
	// Unpinned, the member that takes it pins a clock past the stored
	// unfollow.
	if a := edge(via, "PUT", ""); a.code != http.StatusNoContent {
		t.Fatalf("unpinned follow = %d %s", a.code, a.body)
	}
	if e, err := owner.store.Edge(store.Following, "ann", "bob"); err != nil || e.Clock <= t2 || e.Removed {
		t.Errorf("the owner stored %+v (%v) for an unpinned follow, want a follow later than %d", e, err, t2)
	}
}
