package server

import (
	"context"
	"fmt"
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
	for i := range 30 {
		u := fmt.Sprintf("reb%d", i)
		users = append(users, u)
		token := createUser(t, ms[i%3], u)
		for j := range 3 {
			a := do(t, nil, "POST", ms[j].url("/v1/users/"+u+"/posts"), token, api.PostRequest{Text: fmt.Sprint("post ", j)})
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
			m.srv.RunRebalance(ctx, 10_000)
			done <- struct{}{}
		}()
	}
	start := time.Now()
	for _, m := range ms[:3] {
		if err := m.srv.SetRing(ring4); err != nil {
			t.Fatal(err)
		}
	}
	settled := func() bool {
		for _, m := range ms[:3] {
			if st := m.srv.RebalanceStatus(); st.To != ring4.Version() || st.Pending != 0 {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(10 * time.Second); !settled() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(start)
	cancel()
	for range ms {
		<-done
	}
	if !settled() {
		t.Fatalf("rebalance did not finish: %+v", ms[0].srv.RebalanceStatus())
	}
	pushes := 0
	for _, m := range ms[:3] {
		pushes += m.srv.RebalanceStatus().Done
	}
	lost := 0
	for _, u := range users {
		for _, m := range ms {
			if !ring4.InPreference(u, m.addr) {
				continue
			}
			posts, _, err := m.store.Posts(u, feed.ID{}, 100)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.store.User(u); err != nil || len(posts) != want[u] {
				lost++
				t.Errorf("%s on %s after rebalance: user %v, %d posts, want %d", u, m.addr, err, len(posts), want[u])
			}
		}
		var page api.PostsAnswer
		a := do(t, nil, "GET", ms[3].url("/v1/users/"+u+"/posts"), "", nil)
		a.decode(t, &page)
		if a.code != 200 || len(page.Posts) != want[u] {
			t.Errorf("%s's feed via the new member = %d, %d posts", u, a.code, len(page.Posts))
		}
	}
	t.Logf("member added: %d of %d users gained it as a replica; %d pushes in %v; records missing after: %d",
		moving, len(users), pushes, took.Round(time.Millisecond), lost)
}
