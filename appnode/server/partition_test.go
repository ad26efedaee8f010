package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/transport"
)

// partition is a fault-injecting network: while on, members in
// different groups can neither call nor see each other.
type partition struct {
	on    atomic.Bool
	group map[string]int // member address → group
}

var errPartitioned = errors.New("partitioned (test fault)")

func (p *partition) split(a, b string) bool { return p.on.Load() && p.group[a] != p.group[b] }

// transport is the network as the member named by self() sees it.
func (p *partition) transport(self func() string) http.RoundTripper {
	next := transport.NewHTTP()
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		if p.split(self(), r.URL.Host) {
			return nil, fmt.Errorf("calling %s: %w", r.URL.Host, errPartitioned)
		}
		return next.RoundTrip(r)
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestPartitionHeal: members {0} and {1, 2} are split (no node-to-node
// calls, each side sees the other dead); clients write on both sides to
// users whose replicas straddle the split; after healing, one round of
// anti-entropy (no hints delivered) leaves both sides' posts on every
// replica and readable through every member.
func TestPartitionHeal(t *testing.T) {
	p := &partition{group: map[string]int{}}
	var addrs []string
	// write_acks 1: the lone member 0 takes writes alone (with the
	// default 2 it refuses them: TestPartitionMinorityRefusesWrites).
	ms := newCluster(t, clusterOpts{n: 3, writeAcks: 1,
		// Addresses are known once the cluster is up, before any call.
		memberTransport: func(i int) http.RoundTripper { return p.transport(func() string { return addrs[i] }) },
		// Each side's failure detector sees the other side dead.
		memberAlive: func(i int) func(string) bool {
			return func(m string) bool { return !p.split(addrs[i], m) }
		},
	})
	for i, m := range ms {
		addrs = append(addrs, m.addr)
		p.group[m.addr] = min(i, 1)
	}
	// Users held by member 0 and one member of the other side.
	var users []string
	for i := 0; len(users) < 4 && i < 10000; i++ {
		u := fmt.Sprintf("split%d", i)
		if ms[0].srv.Ring().InPreference(u, ms[0].addr) {
			users = append(users, u)
		}
	}
	tokens := map[string]string{}
	for _, u := range users {
		tokens[u] = createUser(t, ms[1], u)
	}
	// With write_acks 1 a user's second copy may still be on its way
	// when the creation is acknowledged: split only once both replicas
	// hold every user, or a side serves a user it never got (404).
	for _, u := range users {
		for _, m := range ms {
			if !m.srv.Ring().InPreference(u, m.addr) {
				continue
			}
			if err := waitUntil(5*time.Second, func() bool { _, err := m.store.User(u); return err == nil }); err != nil {
				t.Fatalf("%s not on its replica %s after it was created: %v", u, m.addr, err)
			}
		}
	}
	p.on.Store(true)
	want := map[string][]feed.ID{}
	for i := range 5 {
		for _, u := range users {
			for _, side := range []*member{ms[0], ms[1]} {
				a := do(t, nil, "POST", side.url("/v1/users/"+u+"/posts"), tokens[u], api.PostRequest{Text: fmt.Sprintf("%d via %s", i, side.addr)})
				if a.code != 201 {
					t.Fatalf("post to %s via %s during the partition = %d %s", u, side.addr, a.code, a.body)
				}
				var post feed.Post
				a.decode(t, &post)
				want[u] = append(want[u], post.ID)
			}
		}
	}
	p.on.Store(false)
	healed := time.Now()
	for i, a := range ms {
		for _, b := range ms[i+1:] {
			if _, err := a.srv.Syncer().Compare(context.Background(), b.addr); err != nil {
				t.Fatalf("anti-entropy %s with %s: %v", a.addr, b.addr, err)
			}
		}
	}
	converged := time.Since(healed)
	total, lost := 0, 0
	for _, u := range users {
		for _, m := range ms {
			inPref := m.srv.Ring().InPreference(u, m.addr)
			stored, _, err := m.store.Posts(u, feed.ID{}, 1000)
			if err != nil {
				t.Fatal(err)
			}
			have := map[feed.ID]bool{}
			for _, p := range stored {
				have[p.ID] = true
			}
			for _, id := range want[u] {
				if inPref && !have[id] {
					lost++
				}
			}
			var page api.PostsAnswer
			a := do(t, nil, "GET", m.url("/v1/users/"+u+"/posts?limit=200"), "", nil)
			a.decode(t, &page)
			if len(page.Posts) != len(want[u]) {
				t.Errorf("%s's feed via %s has %d posts, want %d", u, m.addr, len(page.Posts), len(want[u]))
			}
		}
		total += len(want[u])
	}
	if lost > 0 {
		t.Errorf("%d acknowledged posts missing from a replica after healing", lost)
	}
	t.Logf("partition: %d posts acknowledged on both sides, %d missing from a replica after one anti-entropy round per pair, which took %v from the heal",
		total, lost, converged.Round(time.Millisecond))
}
