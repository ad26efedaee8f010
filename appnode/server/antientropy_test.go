package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/store"
)

// TestAntiEntropy: a replica that missed everything (no hints reached
// it) and holds writes of its own that the owner lacks (as after a
// partition) ends, after one anti-entropy round, with exactly the
// owner's records and the owner with its; a second round finds nothing
// to do.
func TestAntiEntropy(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 3})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Users whose preference list is exactly (ms[0], ms[1]) in some order.
	a, b := ms[0], ms[1]
	var users []string
	for i := 0; len(users) < 4 && i < 10000; i++ {
		u := fmt.Sprintf("ae%d", i)
		if p := a.srv.Ring().Preference(nil, u); (p[0] == a.addr || p[1] == a.addr) && (p[0] == b.addr || p[1] == b.addr) {
			users = append(users, u)
		}
	}
	if len(users) < 4 {
		t.Fatal("not enough users shared by two members")
	}
	ids := feed.NewIDSource(feed.NewClock(time.Now), "test")
	now := time.Now().UTC().Truncate(time.Millisecond)
	// The first user has 450 posts on a only: three pages.
	for i, u := range users {
		must(a.store.CreateUser(feed.User{Name: u, TokenHash: []byte("h"), Created: now}))
		n := 3
		if i == 0 {
			n = 450
		}
		for j := range n {
			must(a.store.AddPost(feed.Post{ID: ids.Next(), Author: u, Text: fmt.Sprint("on a ", j), Created: now}))
		}
	}
	// b has a post and edges of its own for users[1].
	must(b.store.CreateUser(feed.User{Name: users[1], TokenHash: []byte("h"), Created: now}))
	must(b.store.AddPost(feed.Post{ID: ids.Next(), Author: users[1], Text: "on b", Created: now}))
	if _, _, err := b.store.MergeEdge(store.Following, feed.Edge{Follower: users[1], Followee: users[2], Clock: 9}, false, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.store.MergeEdge(store.Followers, feed.Edge{Follower: users[3], Followee: users[1], Clock: 3}, false, 0); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	n, err := a.srv.Syncer().Compare(context.Background(), b.addr)
	if err != nil || n != len(users) {
		t.Fatalf("anti-entropy = %d users, %v; want %d", n, err, len(users))
	}
	t.Logf("anti-entropy reconciled %d users (%d posts) in %v", n, 450+3*3+1, time.Since(start).Round(time.Millisecond))
	for _, u := range users {
		pa, _, err := a.store.Posts(u, feed.ID{}, 1000)
		must(err)
		pb, _, err := b.store.Posts(u, feed.ID{}, 1000)
		must(err)
		if diff := cmp.Diff(pa, pb); diff != "" {
			t.Errorf("%s's posts differ after anti-entropy (-a +b):\n%s", u, diff)
		}
		for _, side := range []store.Side{store.Following, store.Followers} {
			ea, _ := a.store.Edges(side, u)
			eb, _ := b.store.Edges(side, u)
			if diff := cmp.Diff(ea, eb); diff != "" {
				t.Errorf("%s's %c edges differ (-a +b):\n%s", u, side, diff)
			}
		}
	}
	if got, _, _ := a.store.Posts(users[0], feed.ID{}, 1000); len(got) != 450 {
		t.Errorf("%s has %d posts, want 450", users[0], len(got))
	}
	if got, _, _ := a.store.Posts(users[1], feed.ID{}, 1000); len(got) != 4 {
		t.Errorf("%s has %d posts on a, want 4 (b's included)", users[1], len(got))
	}
	da, err := sharedDigests(a.srv, b.addr)
	must(err)
	db, err := sharedDigests(b.srv, a.addr)
	must(err)
	if diff := cmp.Diff(da, db); diff != "" {
		t.Errorf("digests differ after anti-entropy (-a +b):\n%s", diff)
	}
	if n, err := b.srv.Syncer().Compare(context.Background(), a.addr); n != 0 || err != nil {
		t.Errorf("second round = %d, %v; want nothing to do", n, err)
	}
	if got := b.metric(t, "appnode_anti_entropy_rounds_total", "same"); got != 1 {
		t.Errorf("rounds that found nothing = %v, want 1", got)
	}
	// The third member shares none of these users with a: nothing of
	// theirs is compared.
	dc, err := sharedDigests(a.srv, ms[2].addr)
	must(err)
	for _, u := range users {
		if _, ok := dc[u]; ok {
			t.Errorf("%s compared with %s, which does not hold it", u, ms[2].addr)
		}
	}
}

// TestRunAntiEntropy: the periodic loop, running on every member,
// repairs a post that only one replica has.
func TestRunAntiEntropy(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 2})
	createUser(t, ms[0], "joe")
	p := feed.Post{ID: feed.NewIDSource(feed.NewClock(time.Now), "t").Next(), Author: "joe", Text: "lost hint", Created: time.Now().UTC()}
	if err := ms[1].store.AddPost(p); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, len(ms))
	for _, m := range ms {
		m.srv.Syncer().SetInterval(20 * time.Millisecond)
		go func() {
			m.srv.Syncer().Run(ctx)
			done <- struct{}{}
		}()
	}
	waitUntil(5*time.Second, func() bool { got, _, _ := ms[0].store.Posts("joe", feed.ID{}, 10); return len(got) == 1 })
	cancel()
	for range ms {
		<-done
	}
	if got, _, _ := ms[0].store.Posts("joe", feed.ID{}, 10); len(got) != 1 || got[0].ID != p.ID {
		t.Errorf("posts on the other replica after anti-entropy rounds = %v", got)
	}
}

// sharedDigests returns the kept digests of the users s shares with
// peer.
func sharedDigests(s *Server, peer string) (map[string]store.Digest, error) {
	rg := s.Ring()
	return s.store.UserDigests(func(name string) bool { return s.sync.Shares(rg, name, peer) })
}
