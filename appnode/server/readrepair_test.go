package server

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/store"
)

// TestReadRepair: the owner and its replica disagree (each has a post,
// an edge and a user record the other lacks, and an edge both have at
// different clocks); reads at the owner repair both, in the background,
// to the union.
func TestReadRepair(t *testing.T) {
	regs := []*prometheus.Registry{prometheus.NewRegistry(), prometheus.NewRegistry(), prometheus.NewRegistry()}
	ms := newCluster(t, clusterOpts{n: 3, readRepair: true, registry: func(i int) prometheus.Registerer { return regs[i] }})
	pref := ms[0].srv.Ring().Preference(nil, "joe")
	o, replica := byAddr(ms, pref[0]), byAddr(ms, pref[1])
	var oreg *prometheus.Registry
	for i, m := range ms {
		if m == o {
			oreg = regs[i]
		}
	}
	createUser(t, o, "joe")
	now := time.Now().UTC().Truncate(time.Millisecond)
	ids := feed.NewIDSource(feed.NewClock(time.Now), "test")
	p1 := feed.Post{ID: ids.Next(), Author: "joe", Text: "only on the owner", Created: now}
	p2 := feed.Post{ID: ids.Next(), Author: "joe", Text: "only on the replica", Created: now}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(o.store.AddPost(p1))
	must(replica.store.AddPost(p2))
	addAnn := feed.Edge{Follower: "joe", Followee: "ann", Clock: 5}
	removeAnn := feed.Edge{Follower: "joe", Followee: "ann", Clock: 7, Removed: true}
	bob := feed.Edge{Follower: "joe", Followee: "bob", Clock: 3}
	fan := feed.Edge{Follower: "fan", Followee: "joe", Clock: 4}
	mergeEdge := func(st *store.Store, side store.Side, e feed.Edge) {
		t.Helper()
		_, _, err := st.MergeEdge(side, e, false, 0)
		must(err)
	}
	mergeEdge(o.store, store.Following, addAnn)
	mergeEdge(replica.store, store.Following, removeAnn)
	mergeEdge(replica.store, store.Following, bob)
	mergeEdge(o.store, store.Followers, fan)

	if a := do(t, nil, "GET", o.url("/v1/users/joe/posts"), "", nil); a.code != 200 {
		t.Fatalf("read = %d %s", a.code, a.body)
	}
	wantPosts := []feed.Post{p2, p1}
	wantFollowing := []feed.Edge{removeAnn, bob}
	wantFollowers := []feed.Edge{fan}
	state := func(m *member) string {
		posts, _, _ := m.store.Posts("joe", feed.ID{}, 10)
		following, _ := m.store.Edges(store.Following, "joe")
		followers, _ := m.store.Edges(store.Followers, "joe")
		return cmp.Diff(wantPosts, posts) + cmp.Diff(wantFollowing, following) + cmp.Diff(wantFollowers, followers)
	}
	waitUntil(5*time.Second, func() bool { return state(o) == "" && state(replica) == "" })
	if d := state(o); d != "" {
		t.Errorf("owner after read repair (-want +got):\n%s", d)
	}
	if d := state(replica); d != "" {
		t.Errorf("replica after read repair (-want +got):\n%s", d)
	}
	o.srv.Replica().Wait() // the read's repair has counted itself
	if n, err := o.srv.Replica().Repair(context.Background(), "joe", feed.ID{}, feed.DefaultPage); n != 0 || err != nil {
		t.Errorf("second repair copied %d, %v; want nothing to do", n, err)
	}
	if got := o.metric(t, "appnode_read_repairs_total", "repaired"); got != 1 {
		t.Errorf("repaired count = %v, want 1", got)
	}
	if n, _ := testutil.GatherAndCount(oreg, "appnode_read_repairs_total"); n < 2 {
		t.Errorf("read repair series on /metrics: %d", n)
	}

	// A user record that only the replica has: a read at the owner
	// answers 404, and repairs.
	sue := feed.User{Name: "sue", TokenHash: []byte("h"), Created: now}
	p := ms[0].srv.Ring().Preference(nil, "sue")
	owner2, replica2 := byAddr(ms, p[0]), byAddr(ms, p[1])
	must(replica2.store.CreateUser(sue))
	if a := do(t, nil, "GET", owner2.url("/v1/users/sue"), "", nil); a.code != 404 {
		t.Errorf("read of a user only the replica has = %d %s", a.code, a.body)
	}
	waitUntil(5*time.Second, func() bool { _, err := owner2.store.User("sue"); return err == nil })
	if u, err := owner2.store.User("sue"); err != nil || !cmp.Equal(u, sue) {
		t.Errorf("sue on the owner after read repair = %+v, %v", u, err)
	}
}
