package server

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/ring"
)

// TestHintsOfRemovedMember: writes acknowledged while a replica was
// dead are hinted for it; the replica is then removed from the ring for
// good. Handoff re-addresses its hints to the records' new preference
// lists — kept as hints for a new replica that is itself down, delivered
// once it is up — and deletes them: no hint stays behind for the gone
// member, and every acknowledged record ends on every current replica.
func TestHintsOfRemovedMember(t *testing.T) {
	var mu sync.Mutex // guards down
	down := map[string]bool{}
	alive := func(m string) bool {
		mu.Lock()
		defer mu.Unlock()
		return !down[m]
	}
	setDown := func(m string, d bool) {
		mu.Lock()
		down[m] = d
		mu.Unlock()
	}
	// write_acks 1: the hints stay on the coordinator (with 2 they are
	// hinted copies on the third member; re-addressing works the same).
	ms := newCluster(t, clusterOpts{n: 3, writeAcks: 1, alive: alive})
	gone := ms[2]
	setDown(gone.addr, true)
	// Users held by ms[0] and the member that will be removed.
	var users []string
	for i := 0; len(users) < 3 && i < 10000; i++ {
		u := fmt.Sprintf("left%d", i)
		if p := ms[0].srv.Ring().Preference(nil, u); p[0] == ms[0].addr && p[1] == gone.addr {
			users = append(users, u)
		}
	}
	if len(users) < 3 {
		t.Fatal("not enough users held by ms[0] and ms[2]")
	}
	want := map[string]map[feed.ID]bool{}
	acked := 0
	for _, u := range users {
		token := createUser(t, ms[0], u)
		want[u] = map[feed.ID]bool{}
		for i := range 4 {
			a := do(t, nil, "POST", ms[0].url("/v1/users/"+u+"/posts"), token, api.PostRequest{Text: fmt.Sprint("while away ", i)})
			if a.code != 201 {
				t.Fatalf("post = %d %s", a.code, a.body)
			}
			var p feed.Post
			a.decode(t, &p)
			want[u][p.ID] = true
			acked++
		}
	}
	hinted := ms[0].srv.Status().HintsByMember[gone.addr]
	if hinted != len(users)*5 {
		t.Fatalf("hints for %s = %d, want %d", gone.addr, hinted, len(users)*5)
	}

	// gone leaves the ring for good; the new replica ms[1] is down too
	// at first.
	rg, err := ring.New(ring.Config{Members: []string{ms[0].addr, ms[1].addr}, VNodes: 16, Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[:2] {
		if err := m.srv.SetRing(rg); err != nil {
			t.Fatal(err)
		}
	}
	setDown(ms[1].addr, true)
	ms[0].srv.Replica().Handoff(context.Background())
	st := ms[0].srv.Status()
	if n := st.HintsByMember[gone.addr]; n != 0 {
		t.Errorf("hints left for the removed member: %d", n)
	}
	if n := st.HintsByMember[ms[1].addr]; n != hinted {
		t.Errorf("hints re-addressed to the new replica (down) = %d, want %d", n, hinted)
	}
	setDown(ms[1].addr, false)
	if n := ms[0].srv.Replica().Handoff(context.Background()); n != hinted {
		t.Errorf("handoff to the new replica delivered %d, want %d", n, hinted)
	}
	if st := ms[0].srv.Status(); st.Hints != 0 {
		t.Errorf("hints left: %v", st.HintsByMember)
	}
	lost := 0
	for _, u := range users {
		for _, m := range ms[:2] {
			if _, err := m.store.User(u); err != nil {
				t.Errorf("%s on %s: %v", u, m.addr, err)
			}
			got, _, _ := m.store.Posts(u, feed.ID{}, 100)
			have := map[feed.ID]bool{}
			for _, p := range got {
				have[p.ID] = true
			}
			for id := range want[u] {
				if !have[id] {
					lost++
				}
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d acknowledged posts missing from a current replica", lost)
	}
	t.Logf("removed member: %d hints re-addressed, %d acknowledged posts, %d lost, 0 hints left", hinted, acked, lost)
}

// TestHintsOfRemovedMemberDeliveredDirectly: with the new replica up,
// the hints of a removed member are delivered in the same round.
func TestHintsOfRemovedMemberDeliveredDirectly(t *testing.T) {
	var mu sync.Mutex // guards goneDown
	goneDown := ""
	ms := newCluster(t, clusterOpts{n: 3, writeAcks: 1, alive: func(m string) bool {
		mu.Lock()
		defer mu.Unlock()
		return m != goneDown
	}})
	u := ""
	for i := 0; u == "" && i < 10000; i++ {
		c := fmt.Sprintf("dd%d", i)
		if p := ms[0].srv.Ring().Preference(nil, c); p[0] == ms[0].addr && p[1] == ms[2].addr {
			u = c
		}
	}
	mu.Lock()
	goneDown = ms[2].addr
	mu.Unlock()
	token := createUser(t, ms[0], u)
	if a := do(t, nil, "POST", ms[0].url("/v1/users/"+u+"/posts"), token, api.PostRequest{Text: "x"}); a.code != 201 {
		t.Fatalf("post = %d %s", a.code, a.body)
	}
	rg, err := ring.New(ring.Config{Members: []string{ms[0].addr, ms[1].addr}, VNodes: 16, Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[:2] {
		if err := m.srv.SetRing(rg); err != nil {
			t.Fatal(err)
		}
	}
	ms[0].srv.Replica().Handoff(context.Background())
	if st := ms[0].srv.Status(); st.Hints != 0 {
		t.Errorf("hints left: %v", st.HintsByMember)
	}
	if got, _, _ := ms[1].store.Posts(u, feed.ID{}, 10); len(got) != 1 {
		t.Errorf("%s's posts on the new replica = %d, want 1", u, len(got))
	}
	if _, err := ms[1].store.User(u); err != nil {
		t.Errorf("%s on the new replica: %v", u, err)
	}
}
