package server

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/ring"
)

// TestRebalanceAddMember: three members hold users and posts; a fourth
// joins the ring; the streaming that follows puts every user's records
// on every member of its new preference list, and reads through any
// member then find them all.
func TestRebalanceAddMember(t *testing.T) {
	ring3 := func(addrs []string) *ring.Ring {
		r, err := ring.New(ring.Config{Members: addrs[:3], VNodes: 16, Replicas: 2})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	var ring4 *ring.Ring
	ms := newCluster(t, clusterOpts{n: 4, ring: func(i int, addrs []string) *ring.Ring {
		if ring4 == nil {
			ring4, _ = ring.New(ring.Config{Members: addrs, VNodes: 16, Replicas: 2})
		}
		if i == 3 {
			return ring4
		}
		return ring3(addrs)
	}})
	var users []string
	want := map[string]int{}
	tokens := map[string]string{}
	for i := range 30 {
		u := fmt.Sprintf("reb%d", i)
		users = append(users, u)
		tokens[u] = createUser(t, ms[i%3], u)
		for j := range 3 {
			a := do(t, nil, "POST", ms[j].url("/v1/users/"+u+"/posts"), tokens[u], api.PostRequest{Text: fmt.Sprint("post ", j)})
			if a.code != 201 {
				t.Fatalf("post = %d %s", a.code, a.body)
			}
			want[u]++
		}
	}
	moving := 0
	for _, u := range users {
		if ring4.InPreference(u, ms[3].addr) {
			moving++
		}
	}
	if moving == 0 {
		t.Fatal("no user moves to the new member")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, len(ms))
	for _, m := range ms {
		go func() {
			// Slow, so that the requests below meet users on the way.
			m.srv.Syncer().RunRebalance(ctx, 20)
			done <- struct{}{}
		}()
	}
	start := time.Now()
	// The new member starts first, as an operator would, and learns the
	// ring the data is placed by from the others.
	ms[3].srv.Syncer().LearnPreviousRing(ctx)
	for _, m := range ms[:3] {
		if err := m.srv.SetRing(ring4); err != nil {
			t.Fatal(err)
		}
	}
	settled := func() bool {
		for _, m := range ms[:3] {
			if st := m.srv.Syncer().RebalanceStatus(); st.To != ring4.Version() || st.Pending != 0 {
				return false
			}
		}
		return true
	}
	// While users stream, clients read and write through every member,
	// the new one most: nothing may fail and no acknowledged post may be
	// missing from a read.
	requests, failed := 0, 0
	for i, deadline := 0, time.Now().Add(20*time.Second); !settled() && time.Now().Before(deadline); i++ {
		u := users[i%len(users)]
		via := ms[3]
		if i%2 == 1 {
			via = ms[(i/2)%3]
		}
		var page api.PostsAnswer
		a := do(t, nil, "GET", via.url("/v1/users/"+u+"/posts?limit=200"), "", nil)
		requests++
		if a.code != 200 {
			failed++
			t.Errorf("read %s via %s during rebalance = %d %s", u, via.addr, a.code, a.body)
		} else if a.decode(t, &page); len(page.Posts) < want[u] {
			failed++
			t.Errorf("read %s via %s during rebalance: %d posts, %d acknowledged", u, via.addr, len(page.Posts), want[u])
		}
		a = do(t, nil, "POST", via.url("/v1/users/"+u+"/posts"), tokens[u], api.PostRequest{Text: "during rebalance"})
		requests++
		if a.code != 201 {
			failed++
			t.Errorf("post %s via %s during rebalance = %d %s", u, via.addr, a.code, a.body)
		} else {
			want[u]++
		}
	}
	took := time.Since(start)
	cancel()
	for range ms {
		<-done
	}
	if !settled() {
		t.Fatalf("rebalance did not finish: %+v", ms[0].srv.Syncer().RebalanceStatus())
	}
	fallbacks := ms[3].metric(t, "appnode_routed_total", "fallback")
	if fallbacks == 0 {
		t.Error("the new member never sent a request for a user not there yet to its previous holder")
	}
	pushes := 0
	for _, m := range ms[:3] {
		pushes += m.srv.Syncer().RebalanceStatus().Done
	}
	lost := 0
	for _, u := range users {
		for _, m := range ms {
			if !ring4.InPreference(u, m.addr) {
				continue
			}
			posts, _, err := m.store.Posts(u, feed.ID{}, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.store.User(u); err != nil || len(posts) != want[u] {
				lost++
				t.Errorf("%s on %s after rebalance: user %v, %d posts, want %d", u, m.addr, err, len(posts), want[u])
			}
		}
		var page api.PostsAnswer
		a := do(t, nil, "GET", ms[3].url("/v1/users/"+u+"/posts?limit=200"), "", nil)
		a.decode(t, &page)
		if a.code != 200 || len(page.Posts) != want[u] {
			t.Errorf("%s's feed via the new member = %d, %d posts", u, a.code, len(page.Posts))
		}
	}
	t.Logf("member added: %d of %d users gained it as a replica; %d pushes in %v; %d requests during the change (%v sent on to a previous holder), %d failed; records missing after: %d",
		moving, len(users), pushes, took.Round(time.Millisecond), requests, fallbacks, failed, lost)
}

// TestRebalanceRemoveMember: one of four members is stopped for good
// and removed from the ring; the remaining replicas stream its users to
// their new preference lists while clients read and write through the
// three that stay: nothing fails and nothing is lost.
func TestRebalanceRemoveMember(t *testing.T) {
	var gone atomic.Value
	gone.Store("")
	ms := newCluster(t, clusterOpts{n: 4, vnodes: 16, alive: func(m string) bool { return m != gone.Load().(string) }})
	addrs := []string{ms[0].addr, ms[1].addr, ms[2].addr}
	ring3, err := ring.New(ring.Config{Members: addrs, VNodes: 16, Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	var users []string
	want := map[string]int{}
	tokens := map[string]string{}
	for i := range 30 {
		u := fmt.Sprintf("rm%d", i)
		users = append(users, u)
		tokens[u] = createUser(t, ms[i%4], u)
		for j := range 2 {
			a := do(t, nil, "POST", ms[j].url("/v1/users/"+u+"/posts"), tokens[u], api.PostRequest{Text: fmt.Sprint("post ", j)})
			if a.code != 201 {
				t.Fatalf("post = %d %s", a.code, a.body)
			}
			want[u]++
		}
	}
	// The member dies, the failure detector says so, and the operator
	// removes it from every remaining member's config.
	ms[3].kill()
	gone.Store(ms[3].addr)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 3)
	for _, m := range ms[:3] {
		go func() {
			m.srv.Syncer().RunRebalance(ctx, 20)
			done <- struct{}{}
		}()
	}
	start := time.Now()
	for _, m := range ms[:3] {
		if err := m.srv.SetRing(ring3); err != nil {
			t.Fatal(err)
		}
	}
	settled := func() bool {
		for _, m := range ms[:3] {
			if st := m.srv.Syncer().RebalanceStatus(); st.To != ring3.Version() || st.Pending != 0 {
				return false
			}
		}
		return true
	}
	requests, failed := 0, 0
	for i, deadline := 0, time.Now().Add(20*time.Second); !settled() && time.Now().Before(deadline); i++ {
		u, via := users[i%len(users)], ms[i%3]
		var page api.PostsAnswer
		a := do(t, nil, "GET", via.url("/v1/users/"+u+"/posts?limit=200"), "", nil)
		requests++
		if a.code != 200 {
			failed++
			t.Errorf("read %s via %s during rebalance = %d %s", u, via.addr, a.code, a.body)
		} else if a.decode(t, &page); len(page.Posts) < want[u] {
			failed++
			t.Errorf("read %s via %s during rebalance: %d posts, %d acknowledged", u, via.addr, len(page.Posts), want[u])
		}
		a = do(t, nil, "POST", via.url("/v1/users/"+u+"/posts"), tokens[u], api.PostRequest{Text: "during rebalance"})
		requests++
		if a.code != 201 {
			failed++
			t.Errorf("post %s via %s during rebalance = %d %s", u, via.addr, a.code, a.body)
		} else {
			want[u]++
		}
	}
	took := time.Since(start)
	cancel()
	for range 3 {
		<-done
	}
	if !settled() {
		t.Fatalf("rebalance did not finish: %+v", ms[0].srv.Syncer().RebalanceStatus())
	}
	lost := 0
	for _, u := range users {
		for _, m := range ms[:3] {
			if !ring3.InPreference(u, m.addr) {
				continue
			}
			posts, _, err := m.store.Posts(u, feed.ID{}, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.store.User(u); err != nil || len(posts) != want[u] {
				lost++
				t.Errorf("%s on %s after rebalance: user %v, %d posts, want %d", u, m.addr, err, len(posts), want[u])
			}
		}
	}
	t.Logf("member removed: streaming took %v; %d requests during the change, %d failed; records missing after: %d",
		took.Round(time.Millisecond), requests, failed, lost)
}
