package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/store"
)

// loadSame stores the same users (each with posts posts and an edge)
// on every member, as replication leaves them, straight into the
// stores.
func loadSame(t testing.TB, ms []*member, users, posts int) int {
	t.Helper()
	ids := feed.NewIDSource(feed.NewClock(time.Now), "load")
	now := time.Unix(1_700_000_000, 0).UTC()
	records := 0
	for i := range users {
		name := fmt.Sprintf("user%d", i)
		u := feed.User{Name: name, TokenHash: []byte{byte(i)}, Created: now}
		var ps []feed.Post
		for j := range posts {
			ps = append(ps, feed.Post{ID: ids.Next(), Author: name, Text: fmt.Sprint("post ", j), Created: now})
		}
		e := feed.Edge{Follower: name, Followee: fmt.Sprintf("user%d", (i+1)%users), Clock: 7}
		for _, m := range ms {
			if err := m.store.CreateUser(u); err != nil {
				t.Fatal(err)
			}
			for _, p := range ps {
				if err := m.store.AddPost(p); err != nil {
					t.Fatal(err)
				}
			}
			if _, _, err := m.store.MergeEdge(store.Following, e, false, 0); err != nil {
				t.Fatal(err)
			}
		}
		records += 2 + posts
	}
	return records
}

// mixedUsers counts the users of a (shared with b) that sit in leaves
// a ring position cuts: the only per-user entries a round between two
// members that agree reads.
func mixedUsers(t testing.TB, a, b *member) int {
	t.Helper()
	// A leaf is cut when a ring position falls in it (antientropy's
	// leaf classes).
	cut := map[int]bool{}
	for _, p := range a.srv.Ring().Positions() {
		cut[int(p.Hash.Hi>>(64-store.LeafBits))] = true
	}
	n := 0
	for leaf := range cut {
		if err := a.store.LeafUsers(leaf, func(string, store.Digest) { n++ }); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// TestAntiEntropyRoundIsBounded: of three members that hold the same
// 24k records, a round between two reads no record and only the
// per-user digest entries of the leaves that ring positions cut (a
// handful), on both sides; one post added on one side costs one user's
// records, not the database's.
func TestAntiEntropyRoundIsBounded(t *testing.T) {
	// 128 vnodes, as in production: 384 ring positions cut about a
	// dozen of the 2000 users' leaves.
	ms := newCluster(t, clusterOpts{n: 3, memFS: true, vnodes: 128})
	a, b := ms[0], ms[1]
	const users, posts = 2000, 10
	records := loadSame(t, ms, users, posts)

	readsA, readsB := a.store.DigestReads(), b.store.DigestReads()
	start := time.Now()
	n, err := a.srv.Syncer().Compare(context.Background(), b.addr)
	took := time.Since(start)
	if err != nil || n != 0 {
		t.Fatalf("round between members that agree = %d users, %v; want 0", n, err)
	}
	gotA, gotB := a.store.DigestReads()-readsA, b.store.DigestReads()-readsB
	wantA, wantB := mixedUsers(t, a, b), mixedUsers(t, b, a)
	if wantA == 0 || wantB == 0 {
		t.Fatalf("no users in cut leaves (%d, %d): the test does not exercise them", wantA, wantB)
	}
	if gotA != uint64(wantA) || gotB != uint64(wantB) {
		t.Errorf("digest entries read: %d here, %d on the peer; want %d and %d (the users of cut leaves)", gotA, gotB, wantA, wantB)
	}
	if got := a.metric(t, "appnode_anti_entropy_records_total"); got != 0 {
		t.Errorf("records compared in a round that found nothing = %v, want 0", got)
	}
	if got := a.metric(t, "appnode_anti_entropy_rounds_total", "same"); got != 1 {
		t.Errorf("rounds that found nothing = %v, want 1", got)
	}
	t.Logf("in sync: %d records, %d users on each member; one round read %d + %d digest entries and 0 records, took %v",
		records, users, gotA, gotB, took.Round(time.Microsecond))

	// One new post on b only, for a user a and b share: the round opens
	// one group, one leaf, one user, and compares that user's records
	// only.
	who := ""
	for i := 0; i < users && who == ""; i++ {
		if u := fmt.Sprintf("user%d", i); a.srv.Syncer().Shares(a.srv.Ring(), u, b.addr) {
			who = u
		}
	}
	p := feed.Post{ID: feed.NewIDSource(feed.NewClock(time.Now), "x").Next(), Author: who, Text: "only on b", Created: time.Now().UTC()}
	if err := b.store.AddPost(p); err != nil {
		t.Fatal(err)
	}
	readsA = a.store.DigestReads()
	n, err = a.srv.Syncer().Compare(context.Background(), b.addr)
	if err != nil || n != 1 {
		t.Fatalf("round after one new post = %d users, %v; want 1", n, err)
	}
	if got, _, _ := a.store.Posts(who, feed.ID{}, 100); len(got) != posts+1 {
		t.Errorf("%s has %d posts here after the round, want %d", who, len(got), posts+1)
	}
	compared := a.metric(t, "appnode_anti_entropy_records_total")
	// Both sides' page of the user's posts and its edge on each side.
	if want := float64(2*posts + 1 + 2); compared != want {
		t.Errorf("records compared to repair one post = %v, want %v (one user's)", compared, want)
	}
	t.Logf("one post differs: the round read %d digest entries, compared %v records, repaired 1 user",
		a.store.DigestReads()-readsA, compared)
}

// TestAntiEntropyRate: repairs are paced at anti_entropy_rate records
// per second.
func TestAntiEntropyRate(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 2, memFS: true})
	a, b := ms[0], ms[1]
	const posts, rate = 600, 1000
	loadSame(t, ms[:1], 1, posts)
	a.srv.Syncer().SetRate(rate)
	start := time.Now()
	n, err := a.srv.Syncer().Compare(context.Background(), b.addr)
	took := time.Since(start)
	if err != nil || n != 1 {
		t.Fatalf("anti-entropy = %d users, %v; want 1", n, err)
	}
	compared := a.metric(t, "appnode_anti_entropy_records_total")
	if compared < posts {
		t.Fatalf("records compared = %v, want at least %d", compared, posts)
	}
	if min := time.Duration(compared / rate * float64(time.Second)); took < min*9/10 {
		t.Errorf("repairing %v records at %d/s took %v, want at least %v", compared, rate, took, min)
	}
	if got, _, _ := b.store.Posts("user0", feed.ID{}, feed.MaxPage); len(got) != feed.MaxPage {
		t.Errorf("the peer has %d of user0's posts on its first page, want %d", len(got), feed.MaxPage)
	}
	t.Logf("repaired %v records at %d records/s in %v", compared, rate, took.Round(time.Millisecond))
}

// BenchmarkAntiEntropyRound is one round between two members that hold
// the same 100k records (9,091 users with 10 posts and an edge each),
// against what the round cost before digests were kept: reading every
// record (ScanDigests).
func BenchmarkAntiEntropyRound(b *testing.B) {
	ms := newCluster(b, clusterOpts{n: 2, memFS: true})
	records := loadSame(b, ms, 9091, 9)
	b.Logf("%d records on each member", records)
	b.Run("kept-digests", func(b *testing.B) {
		for b.Loop() {
			if n, err := ms[0].srv.Syncer().Compare(context.Background(), ms[1].addr); err != nil || n != 0 {
				b.Fatalf("round = %d, %v", n, err)
			}
		}
	})
	b.Run("full-scan", func(b *testing.B) {
		for b.Loop() {
			for _, m := range ms {
				if _, err := m.store.ScanDigests(nil); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
