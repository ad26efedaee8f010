package server

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringfront/ringfront/appnode/account"
	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/feed"
)

// TestPartitionSameUserBothSides: the same name is created on both
// sides of a partition, each side with its own token, and each side
// posts with its token. After healing, anti-entropy leaves every replica
// with one user record — the one created first — and both sides' posts;
// the winner's token still posts, the loser's gets 403. Hints delivered
// afterwards (the losing record among them) change nothing.
func TestPartitionSameUserBothSides(t *testing.T) {
	p := &partition{group: map[string]int{}}
	var addrs []string
	var ahead atomic.Int64 // how far the members' clock is ahead of time.Now
	// write_acks 1, so the lone side takes writes at all.
	ms := newCluster(t, clusterOpts{n: 3, writeAcks: 1, now: func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) },
		memberTransport: func(i int) http.RoundTripper { return p.transport(func() string { return addrs[i] }) },
		memberAlive: func(i int) func(string) bool {
			return func(m string) bool { return !p.split(addrs[i], m) }
		},
	})
	for i, m := range ms {
		addrs = append(addrs, m.addr)
		p.group[m.addr] = min(i, 1)
	}
	u := ""
	for i := 0; u == "" && i < 10000; i++ {
		if c := fmt.Sprintf("twin%d", i); ms[0].srv.Ring().InPreference(c, ms[0].addr) {
			u = c
		}
	}
	var holders []*member // u's preference list
	for _, m := range ms {
		if m.srv.Ring().InPreference(u, m.addr) {
			holders = append(holders, m)
		}
	}
	p.on.Store(true)
	sides := []*member{ms[0], ms[1]}
	tokens := make([]string, 2)
	var posts []feed.ID
	for i, side := range sides {
		tokens[i] = createUser(t, side, u)     // each side sees the other dead
		ahead.Add(int64(2 * time.Millisecond)) // distinct creation times
		a := do(t, nil, "POST", side.url("/v1/users/"+u+"/posts"), tokens[i], api.PostRequest{Text: fmt.Sprint("side ", i)})
		if a.code != 201 {
			t.Fatalf("post on side %d = %d %s", i, a.code, a.body)
		}
		var post feed.Post
		a.decode(t, &post)
		posts = append(posts, post.ID)
	}
	recs := make([]feed.User, 2)
	for i, h := range holders {
		var err error
		if recs[i], err = h.store.User(u); err != nil {
			t.Fatal(err)
		}
	}
	if cmp.Equal(recs[0], recs[1]) {
		t.Fatal("both sides hold the same user record: the partition did not split the creation")
	}
	winner := recs[0]
	if feed.Wins(recs[1], recs[0]) {
		winner = recs[1]
	}
	win, lose := 0, 1 // side 0 created first
	if !cmp.Equal(winner.TokenHash, account.HashToken(tokens[0])) {
		win, lose = 1, 0
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
	check := func(when string) {
		t.Helper()
		for _, h := range holders {
			got, err := h.store.User(u)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(winner, got); diff != "" {
				t.Errorf("%s: %s's user record on %s (-want +got):\n%s", when, u, h.addr, diff)
			}
			stored, _, _ := h.store.Posts(u, feed.ID{}, 100)
			if len(stored) != len(posts) {
				t.Errorf("%s: %s has %d posts of %s, want both sides' %d", when, h.addr, len(stored), u, len(posts))
			}
		}
	}
	check("after anti-entropy")
	for _, m := range ms {
		m.srv.Replica().Handoff(context.Background())
	}
	check("after hints")
	for _, m := range ms {
		if a := do(t, nil, "POST", m.url("/v1/users/"+u+"/posts"), tokens[win], api.PostRequest{Text: "winner"}); a.code != 201 {
			t.Errorf("winner's token via %s = %d %s, want 201", m.addr, a.code, a.body)
		}
		if a := do(t, nil, "POST", m.url("/v1/users/"+u+"/posts"), tokens[lose], api.PostRequest{Text: "loser"}); a.code != http.StatusForbidden {
			t.Errorf("loser's token via %s = %d %s, want 403", m.addr, a.code, a.body)
		}
	}
	t.Logf("same user created on both sides: converged on side %d's record in %v (one anti-entropy round per pair); the other side's token gets 403",
		win, converged.Round(time.Millisecond))
}

// TestReadRepairSameUser: read repair, too, leaves both replicas with
// the winning user record.
func TestReadRepairSameUser(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 2})
	now := time.Now().UTC()
	early := feed.User{Name: "joe", TokenHash: account.HashToken("early"), Created: now}
	late := feed.User{Name: "joe", TokenHash: account.HashToken("late"), Created: now.Add(time.Second)}
	if err := ms[0].store.CreateUser(late); err != nil {
		t.Fatal(err)
	}
	if err := ms[1].store.CreateUser(early); err != nil {
		t.Fatal(err)
	}
	if _, err := ms[0].srv.Replica().Repair(context.Background(), "joe", feed.ID{}, feed.DefaultPage); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		got, err := m.store.User("joe")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(early, got); diff != "" {
			t.Errorf("joe on %s after read repair (-want +got):\n%s", m.addr, diff)
		}
	}
}
