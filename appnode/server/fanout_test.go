package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/store"
)

// members returns the cluster's members holding name, in preference
// order.
func holders(ms []*member, name string) []*member {
	var out []*member
	for _, addr := range ms[0].srv.Ring().Preference(nil, name) {
		for _, m := range ms {
			if m.addr == addr {
				out = append(out, m)
			}
		}
	}
	return out
}

func mustPost(t testing.TB, m *member, name, token, text string) feed.Post {
	t.Helper()
	a := do(t, nil, "POST", m.url("/v1/users/"+name+"/posts"), token, api.PostRequest{Text: text})
	if a.code != 201 {
		t.Fatalf("post as %s = %d %s", name, a.code, a.body)
	}
	var p feed.Post
	a.decode(t, &p)
	return p
}

func mustFollow(t testing.TB, m *member, method, name, token, other string) {
	t.Helper()
	if a := do(t, nil, method, m.url("/v1/users/"+name+"/following/"+other), token, nil); a.code != 204 {
		t.Fatalf("%s %s following %s = %d %s", method, name, other, a.code, a.body)
	}
}

// readTimeline pages through name's whole timeline, limit per page.
func readTimeline(t testing.TB, m *member, name, token string, limit int) []feed.Post {
	t.Helper()
	var got []feed.Post
	url := m.url(fmt.Sprintf("/v1/users/%s/timeline?limit=%d", name, limit))
	for range 100 {
		a := do(t, nil, "GET", url, token, nil)
		if a.code != 200 {
			t.Fatalf("timeline of %s = %d %s", name, a.code, a.body)
		}
		var page api.PostsAnswer
		a.decode(t, &page)
		got = append(got, page.Posts...)
		if page.Next == "" {
			return got
		}
		url = m.url(fmt.Sprintf("/v1/users/%s/timeline?limit=%d&before=%s", name, limit, page.Next))
	}
	t.Fatal("timeline paging did not end after 100 pages")
	return nil
}

// inboxIDs lists the post ids in name's inbox on m, newest first.
func inboxIDs(t testing.TB, m *member, name string) []feed.ID {
	t.Helper()
	es, _, err := m.store.Inbox(name, feed.ID{}, feed.ID{}, 100_000, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := []feed.ID{}
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

func ids(ps []feed.Post) []feed.ID {
	out := []feed.ID{}
	for _, p := range ps {
		out = append(out, p.ID)
	}
	return out
}

// TestFanoutPushes: a post lands in every follower's inbox on each
// member of the follower's preference list before the post is
// acknowledged, and the timeline is read from there.
func TestFanoutPushes(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 3})
	users := usersFor(ms, 2)
	tokens := map[string]string{}
	for _, u := range users {
		tokens[u] = createUser(t, ms[0], u)
	}
	reader, authors := users[0], users[1:]
	for _, a := range authors {
		mustFollow(t, notOwner(ms, reader), "PUT", reader, tokens[reader], a)
	}
	var want []feed.Post
	for i := range 3 {
		for _, a := range authors {
			want = append([]feed.Post{mustPost(t, notOwner(ms, a), a, tokens[a], fmt.Sprintf("%s %d", a, i))}, want...)
		}
	}
	for _, m := range holders(ms, reader) {
		if diff := cmp.Diff(ids(want), inboxIDs(t, m, reader)); diff != "" {
			t.Errorf("%s's inbox on %s (-want +got):\n%s", reader, m.addr, diff)
		}
	}
	for _, m := range ms {
		if n, _ := m.store.Outbox().Count(0); n != 0 {
			t.Errorf("%s has %d undelivered outbox entries", m.addr, n)
		}
	}
	if diff := cmp.Diff(want, readTimeline(t, notOwner(ms, reader), reader, tokens[reader], 4)); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
	// The author's own post is in its own timeline at once.
	own := readTimeline(t, owner(ms, authors[0]), authors[0], tokens[authors[0]], 20)
	if len(own) != 3 || own[0].Author != authors[0] {
		t.Errorf("%s's own timeline = %v", authors[0], own)
	}
	// A delivery made twice changes nothing (at-least-once is safe).
	h := holders(ms, reader)[0]
	d := store.InboxDelivery{Users: []string{reader}, Posts: want[:2]}
	for range 2 {
		if err := h.srv.Fanout().DeliverHere(d); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(ids(want), inboxIDs(t, h, reader)); diff != "" {
		t.Errorf("inbox after a repeated delivery (-want +got):\n%s", diff)
	}
}

// TestFanoutMemberDown: while a member holding the follower's inbox is
// down, the post is acknowledged and its delivery waits in the durable
// outbox, retried with backoff until the member is back.
func TestFanoutMemberDown(t *testing.T) {
	var down atomic.Value
	down.Store("")
	ms := newCluster(t, clusterOpts{n: 3, alive: func(m string) bool { return m != down.Load().(string) }})
	users := usersFor(ms, 1)
	reader := users[0]
	// An author owned by another member than the reader's holders, so
	// the reader's second holder is remote for the author's coordinator.
	hs := holders(ms, reader)
	var author string
	for _, u := range users[1:] {
		if owner(ms, u) != hs[1] {
			author = u
		}
	}
	tr, ta := createUser(t, ms[0], reader), createUser(t, ms[0], author)
	mustFollow(t, ms[0], "PUT", reader, tr, author)
	victim := hs[1]
	down.Store(victim.addr)
	victim.ts.Listener.Close() // refuses connections like a dead machine
	victim.ts.CloseClientConnections()
	p := mustPost(t, owner(ms, author), author, ta, "while you were out")
	coord := owner(ms, author)
	if n, _ := coord.store.Outbox().Count(0); n == 0 {
		t.Fatal("no outbox entry kept for the dead member")
	}
	if got := coord.srv.Fanout().DeliverOutbox(context.Background()); got != 0 {
		t.Errorf("delivered %d entries to a dead member", got)
	}
	// Back up (same store, same address).
	restart(t, victim)
	down.Store("")
	waitUntil(10*time.Second, func() bool {
		coord.srv.Fanout().DeliverOutbox(context.Background())
		return len(inboxIDs(t, victim, reader)) > 0
	})
	if diff := cmp.Diff([]feed.ID{p.ID}, inboxIDs(t, victim, reader)); diff != "" {
		t.Errorf("inbox on the returned member (-want +got):\n%s", diff)
	}
	if n, _ := coord.store.Outbox().Count(0); n != 0 {
		t.Errorf("%d outbox entries left after delivery", n)
	}
}

// TestFanoutCelebrity: an author above fanout_limit is not pushed; the
// followers' reads merge its posts in.
func TestFanoutCelebrity(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 3})
	for _, m := range ms {
		m.srv.SetFanout(2, 0)
	}
	tokens := map[string]string{}
	for _, u := range []string{"star", "f1", "f2", "f3", "plain"} {
		tokens[u] = createUser(t, ms[0], u)
	}
	for _, f := range []string{"f1", "f2", "f3"} {
		mustFollow(t, ms[0], "PUT", f, tokens[f], "star")
	}
	mustFollow(t, ms[0], "PUT", "f1", tokens["f1"], "plain")
	s1 := mustPost(t, ms[0], "star", tokens["star"], "to my many fans")
	p1 := mustPost(t, ms[0], "plain", tokens["plain"], "to my one fan")
	for _, m := range holders(ms, "f1") {
		if diff := cmp.Diff([]feed.ID{p1.ID}, inboxIDs(t, m, "f1")); diff != "" {
			t.Errorf("f1's inbox on %s holds (-want +got):\n%s", m.addr, diff)
		}
	}
	if diff := cmp.Diff([]feed.Post{p1, s1}, readTimeline(t, ms[1], "f1", tokens["f1"], 1)); diff != "" {
		t.Errorf("f1's timeline (-want +got):\n%s", diff)
	}
	// The celebrity's own timeline still has its post.
	if diff := cmp.Diff([]feed.Post{s1}, readTimeline(t, ms[2], "star", tokens["star"], 5)); diff != "" {
		t.Errorf("star's timeline (-want +got):\n%s", diff)
	}
}

// TestFanoutInboxCapAndPaging: inboxes keep about inbox_max entries;
// older pages are merged at read time, so paging reaches the first
// post.
func TestFanoutInboxCapAndPaging(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 3})
	for _, m := range ms {
		m.srv.SetFanout(0, 5)
	}
	tr, ta, tb := createUser(t, ms[0], "reader"), createUser(t, ms[0], "ann"), createUser(t, ms[0], "bob")
	mustFollow(t, ms[0], "PUT", "reader", tr, "ann")
	mustFollow(t, ms[0], "PUT", "reader", tr, "bob")
	var want []feed.Post
	for i := range 15 {
		want = append([]feed.Post{mustPost(t, ms[i%3], "ann", ta, fmt.Sprint("ann ", i))}, want...)
		want = append([]feed.Post{mustPost(t, ms[i%3], "bob", tb, fmt.Sprint("bob ", i))}, want...)
	}
	for _, m := range holders(ms, "reader") {
		if n := len(inboxIDs(t, m, "reader")); n > 5 {
			t.Errorf("reader's inbox on %s has %d entries, inbox_max is 5", m.addr, n)
		}
	}
	for _, limit := range []int{1, 4, 7, 200} {
		if diff := cmp.Diff(want, readTimeline(t, ms[limit%3], "reader", tr, limit)); diff != "" {
			t.Errorf("timeline in pages of %d (-want +got):\n%s", limit, diff)
		}
	}
}

// TestFanoutFollowUnfollow: a follow back-fills the author's recent
// posts; an unfollow hides the author's entries at once (filtered on
// read) while they stay in the inbox.
func TestFanoutFollowUnfollow(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 3})
	tr, ta, tb := createUser(t, ms[0], "reader"), createUser(t, ms[0], "ann"), createUser(t, ms[0], "bob")
	var annPosts, bobPosts []feed.Post
	for i := range 3 {
		annPosts = append([]feed.Post{mustPost(t, ms[i], "ann", ta, fmt.Sprint("ann ", i))}, annPosts...)
		bobPosts = append([]feed.Post{mustPost(t, ms[i], "bob", tb, fmt.Sprint("bob ", i))}, bobPosts...)
	}
	mustFollow(t, ms[1], "PUT", "reader", tr, "ann")
	for _, m := range holders(ms, "reader") {
		if diff := cmp.Diff(ids(annPosts), inboxIDs(t, m, "reader")); diff != "" {
			t.Errorf("back-filled inbox on %s (-want +got):\n%s", m.addr, diff)
		}
	}
	if diff := cmp.Diff(annPosts, readTimeline(t, ms[2], "reader", tr, 2)); diff != "" {
		t.Errorf("timeline after following ann (-want +got):\n%s", diff)
	}
	mustFollow(t, ms[2], "PUT", "reader", tr, "bob")
	both := append(append([]feed.Post{}, bobPosts...), annPosts...)
	sortNewestFirst(both)
	if diff := cmp.Diff(both, readTimeline(t, ms[0], "reader", tr, 4)); diff != "" {
		t.Errorf("timeline after following bob (-want +got):\n%s", diff)
	}
	mustFollow(t, ms[0], "DELETE", "reader", tr, "ann")
	if diff := cmp.Diff(bobPosts, readTimeline(t, ms[1], "reader", tr, 2)); diff != "" {
		t.Errorf("timeline after unfollowing ann (-want +got):\n%s", diff)
	}
	h := holders(ms, "reader")[0]
	if n := len(inboxIDs(t, h, "reader")); n != 6 {
		t.Errorf("inbox holds %d entries after the unfollow, want 6 (removed lazily)", n)
	}
}

// restart serves m again on its address after its listener was closed,
// with the same server and store.
func restart(t testing.TB, m *member) {
	t.Helper()
	var ln net.Listener
	var err error
	waitUntil(time.Second, func() bool { // the port was just released; retry briefly
		ln, err = net.Listen("tcp", m.addr)
		return err == nil
	})
	if err != nil {
		t.Fatalf("listening on %s again: %v", m.addr, err)
	}
	ts := httptest.NewUnstartedServer(m.srv)
	ts.Listener.Close()
	ts.Listener = ln
	ts.Start()
	m.ts = ts
	t.Cleanup(ts.Close)
}

// TestFanoutRemovedMember: deliveries queued for a member that has left
// the ring go to the members that hold the users' inboxes now.
func TestFanoutRemovedMember(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 3})
	createUser(t, ms[0], "reader")
	p := feed.Post{ID: ms[0].srv.ids.Next(), Author: "ann", Text: "queued under an old ring", Created: time.Now().UTC()}
	v, err := json.Marshal(store.InboxDelivery{Users: []string{"reader"}, Posts: []feed.Post{p}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ms[0].store.Outbox().Add("127.0.0.1:1", v); err != nil {
		t.Fatal(err)
	}
	waitUntil(5*time.Second, func() bool {
		ms[0].srv.Fanout().DeliverOutbox(context.Background())
		n, _ := ms[0].store.Outbox().Count(0)
		return n == 0
	})
	for _, m := range holders(ms, "reader") {
		if diff := cmp.Diff([]feed.ID{p.ID}, inboxIDs(t, m, "reader")); diff != "" {
			t.Errorf("reader's inbox on %s (-want +got):\n%s", m.addr, diff)
		}
	}
	if n, _ := ms[0].store.Outbox().Count(0); n != 0 {
		t.Errorf("%d entries left for the removed member", n)
	}
}

// TestFanoutLarge: a fan-out above the inline limit is acknowledged with
// only the author's own entry written; the followers' entries, here and
// on the other members, come from the outbox.
func TestFanoutLarge(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 3})
	for _, m := range ms {
		m.srv.fan.SetInline(1)
	}
	ta := createUser(t, ms[0], "ann")
	followers := usersFor(ms, 2)
	for _, f := range followers {
		mustFollow(t, ms[0], "PUT", f, createUser(t, ms[0], f), "ann")
	}
	p := mustPost(t, ms[0], "ann", ta, "to everyone, eventually")
	coord := owner(ms, "ann")
	if diff := cmp.Diff([]feed.ID{p.ID}, inboxIDs(t, coord, "ann")); diff != "" {
		t.Errorf("ann's own inbox at once (-want +got):\n%s", diff)
	}
	if n, _ := coord.store.Outbox().Count(0); n == 0 {
		t.Fatal("nothing queued for a fan-out above the inline limit")
	}
	waitUntil(5*time.Second, func() bool {
		coord.srv.Fanout().DeliverOutbox(context.Background())
		n, _ := coord.store.Outbox().Count(0)
		return n == 0
	})
	for _, f := range followers {
		for _, m := range holders(ms, f) {
			if diff := cmp.Diff([]feed.ID{p.ID}, inboxIDs(t, m, f)); diff != "" {
				t.Errorf("%s's inbox on %s (-want +got):\n%s", f, m.addr, diff)
			}
		}
	}
}

// TestFanoutMetrics: /metrics counts inbox entries, deliveries, posts
// not pushed, back-fills and live streams.
func TestFanoutMetrics(t *testing.T) {
	regs := make([]*prometheus.Registry, 3)
	ms := newCluster(t, clusterOpts{n: 3, registry: func(i int) prometheus.Registerer {
		regs[i] = prometheus.NewRegistry()
		return regs[i]
	}})
	for _, m := range ms {
		m.srv.SetFanout(1, 0)
	}
	ta := createUser(t, ms[0], "ann")
	mustPost(t, ms[0], "ann", ta, "before the follow")
	tj := createUser(t, ms[0], "joe")
	mustFollow(t, ms[0], "PUT", "joe", tj, "ann")
	mustPost(t, ms[0], "ann", ta, "pushed")
	mustFollow(t, ms[0], "PUT", "cat", createUser(t, ms[0], "cat"), "ann")
	mustPost(t, ms[0], "ann", ta, "not pushed: two followers, limit 1")
	st := openStream(t, owner(ms, "joe"), "joe", tj, "")
	st.comment(t, "timeline of joe", time.Second)
	sum := func(name string) float64 {
		total := 0.0
		for _, reg := range regs {
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			for _, mf := range mfs {
				if mf.GetName() == name {
					for _, m := range mf.GetMetric() {
						total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
					}
				}
			}
		}
		return total
	}
	for _, tt := range []struct {
		name string
		want float64
	}{
		// ann's own entry on 2 replicas for 3 posts, joe's entry for
		// the back-filled post and the pushed one on 2 replicas each;
		// cat's back-fill (the 2 posts then) on 2 replicas.
		{"appnode_inbox_entries_written_total", 6 + 4 + 4},
		{"appnode_fanout_backfilled_posts_total", 2 + 4},
		{"appnode_fanout_not_pushed_total", 1},
		{"appnode_live_streams", 1},
		{"appnode_fanout_outbox_entries", 0},
	} {
		if got := sum(tt.name); got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, got, tt.want)
		}
	}
	if got := sum("appnode_fanout_deliveries_total"); got < 3 {
		t.Errorf("appnode_fanout_deliveries_total = %v, want at least 3", got)
	}
}

// TestFanoutConcurrentPosts: posts made at once leave their deliveries
// to a member that is already being delivered to in the outbox, and
// RunFanout sends them in batches; every post still reaches every
// inbox, and nothing stays queued.
func TestFanoutConcurrentPosts(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 3})
	users := usersFor(ms, 3)
	tokens := map[string]string{}
	for _, u := range users {
		tokens[u] = createUser(t, ms[0], u)
	}
	reader, authors := users[0], users[1:]
	for _, a := range authors {
		mustFollow(t, ms[0], "PUT", reader, tokens[reader], a)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, m := range ms {
		go m.srv.Fanout().Run(ctx)
	}
	const writers, each = 8, 10
	posted := make(chan feed.ID, writers*each)
	errs := make(chan string, writers*each)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			a := authors[w%len(authors)]
			for i := range each {
				ans := do(t, nil, "POST", owner(ms, a).url("/v1/users/"+a+"/posts"), tokens[a], api.PostRequest{Text: fmt.Sprintf("%d.%d", w, i)})
				if ans.code != 201 {
					errs <- fmt.Sprintf("post = %d %s", ans.code, ans.body)
					continue
				}
				var p feed.Post
				ans.decode(t, &p)
				posted <- p.ID
			}
		})
	}
	wg.Wait()
	close(posted)
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	want := map[feed.ID]bool{}
	for id := range posted {
		want[id] = true
	}
	for _, m := range holders(ms, reader) {
		n := 0
		if err := waitUntil(10*time.Second, func() bool {
			n = 0
			for _, id := range inboxIDs(t, m, reader) {
				if want[id] {
					n++
				}
			}
			return n == len(want)
		}); err != nil {
			t.Fatalf("%s's inbox on %s has %d of %d posts: %v", reader, m.addr, n, len(want), err)
		}
	}
	for _, m := range ms {
		if err := waitUntil(5*time.Second, func() bool { n, _ := m.store.Outbox().Count(0); return n == 0 }); err != nil {
			n, _ := m.store.Outbox().Count(0)
			t.Errorf("%s has %d undelivered outbox entries", m.addr, n)
		}
	}
}
