package store

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/store/digest"
	"github.com/ringfront/ringfront/appnode/store/kv"
)

// checkDigests compares the kept digests (per user and per leaf) with
// ones computed from the records.
func checkDigests(t *testing.T, s *Store) map[string]Digest {
	t.Helper()
	want, err := s.ScanDigests(nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.UserDigests(func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("kept user digests differ from the records' (-want +got):\n%s", diff)
	}
	wantLeaves := make([]Digest, NumLeaves)
	for name, d := range want {
		wantLeaves[LeafOf(name)].Xor(d)
	}
	// A loop, not cmp.Diff: 65536 leaves.
	for i, got := range s.Leaves() {
		if got != wantLeaves[i] {
			t.Errorf("leaf %d = %x, want %x (from the records)", i, got, wantLeaves[i])
		}
	}
	for name, d := range want {
		n := 0
		if err := s.LeafUsers(LeafOf(name), func(u string, ud Digest) {
			if u == name {
				n++
				if ud != d {
					t.Errorf("LeafUsers gives %s digest %x, want %x", name, ud, d)
				}
			}
		}); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("LeafUsers(%d) lists %s %d times, want once", LeafOf(name), name, n)
		}
	}
	return want
}

// TestDigestsFollowWrites: every kind of write (new records, an edge
// merged to a later clock, a user replaced by a winning copy, a post
// stored twice) keeps the per-user and per-leaf digests equal to the
// ones computed from the records, across a restart.
func TestDigestsFollowWrites(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	ids := feed.NewIDSource(feed.NewClock(time.Now), "d")
	now := time.Unix(1000, 0).UTC()
	for i := range 20 {
		u := fmt.Sprintf("u%d", i)
		if err := s.CreateUser(feed.User{Name: u, TokenHash: []byte{byte(i)}, Created: now}); err != nil {
			t.Fatal(err)
		}
		makePosts(t, s, u, i%4, ids)
	}
	before := checkDigests(t, s)
	p := feed.Post{ID: ids.Next(), Author: "u1", Text: "again", Created: now}
	if err := s.AddPost(p); err != nil {
		t.Fatal(err)
	}
	d1 := checkDigests(t, s)["u1"]
	if err := s.AddPost(p); err != nil {
		t.Fatal(err)
	}
	if got := checkDigests(t, s)["u1"]; got != d1 {
		t.Errorf("storing a post twice changed the digest: %x, want %x", got, d1)
	}
	for _, e := range []feed.Edge{
		{Follower: "u1", Followee: "u2", Clock: 5},
		{Follower: "u1", Followee: "u2", Clock: 9, Removed: true}, // replaces the first
		{Follower: "u1", Followee: "u2", Clock: 7},                // loses: no change
	} {
		for _, side := range []Side{Following, Followers} {
			if _, _, err := s.MergeEdge(side, e, false, 0); err != nil {
				t.Fatal(err)
			}
		}
		checkDigests(t, s)
	}
	// A copy of u3 created earlier elsewhere wins and replaces ours.
	if _, changed, err := s.MergeUser(feed.User{Name: "u3", TokenHash: []byte("other"), Created: now.Add(-time.Second)}); err != nil || !changed {
		t.Fatalf("MergeUser(earlier u3) = changed %v, %v; want a change", changed, err)
	}
	after := checkDigests(t, s)
	if after["u3"] == before["u3"] {
		t.Error("replacing u3's record left its digest as it was")
	}
	if after["u5"] != before["u5"] {
		t.Error("writes to other users changed u5's digest")
	}
	s.Close()
	s = open(t, dir, Options{})
	defer s.Close()
	if diff := cmp.Diff(after, checkDigests(t, s)); diff != "" {
		t.Errorf("digests changed across a restart (-before +after):\n%s", diff)
	}
}

// TestDigestBackfill: a database written before digests existed (records
// without dg/ entries or the mark, as an older appnode left it) gets
// every user's digest computed once at Open; the next Open does not
// compute them again.
func TestDigestBackfill(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	ids := feed.NewIDSource(feed.NewClock(time.Now), "b")
	for i := range 50 {
		u := fmt.Sprintf("old%d", i)
		if err := s.CreateUser(feed.User{Name: u, TokenHash: []byte{1}, Created: time.Unix(5, 0).UTC()}); err != nil {
			t.Fatal(err)
		}
		makePosts(t, s, u, 3, ids)
		if _, _, err := s.MergeEdge(Following, feed.Edge{Follower: u, Followee: "old0", Clock: feed.Timestamp(i + 1)}, false, 0); err != nil {
			t.Fatal(err)
		}
	}
	// More users than one backfill batch, written as an old appnode
	// wrote them (records only).
	b := s.db.NewBatch()
	for i := range digest.BackfillBatch + 100 {
		b.Set(userKey(fmt.Sprintf("bulk%d", i)), []byte(`{"name":"x","created":"2026-01-01T00:00:00Z"}`))
	}
	if err := s.db.Apply(b); err != nil {
		t.Fatal(err)
	}
	b.Close()
	want, err := s.ScanDigests(nil)
	if err != nil {
		t.Fatal(err)
	}
	// Turn it into an old database: no digests, no mark.
	b = s.db.NewBatch()
	b.DeleteRange([]byte(digestPrefix), kv.PrefixEnd([]byte(digestPrefix)))
	b.Delete([]byte(digest.MarkKey))
	if err := s.db.Apply(b); err != nil {
		t.Fatal(err)
	}
	b.Close()
	s.Close()

	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	s = open(t, dir, Options{Log: log})
	if diff := cmp.Diff(want, checkDigests(t, s)); diff != "" {
		t.Errorf("backfilled digests (-want +got):\n%s", diff)
	}
	if wantLog := fmt.Sprintf("users=%d", 50+digest.BackfillBatch+100); !strings.Contains(logs.String(), "digests backfilled") || !strings.Contains(logs.String(), wantLog) {
		t.Errorf("Open did not report the backfill (%s); log:\n%s", wantLog, logs.String())
	}
	s.Close()
	logs.Reset()
	s = open(t, dir, Options{Log: log})
	defer s.Close()
	if strings.Contains(logs.String(), "digests backfilled") {
		t.Errorf("second Open backfilled again; log:\n%s", logs.String())
	}
	checkDigests(t, s)
}

// TestMergeUser: of two records of one name, every store keeps the one
// created first (on a tie, the smaller token hash), whichever arrives
// first.
func TestMergeUser(t *testing.T) {
	t0 := time.Unix(100, 0).UTC()
	early := feed.User{Name: "joe", TokenHash: []byte("zz"), Created: t0}
	late := feed.User{Name: "joe", TokenHash: []byte("aa"), Created: t0.Add(time.Millisecond)}
	tieLow := feed.User{Name: "joe", TokenHash: []byte("aa"), Created: t0}
	for _, tc := range []struct {
		name       string
		first, alt feed.User
		want       feed.User
	}{
		{"earlier wins, arriving second", late, early, early},
		{"earlier wins, arriving first", early, late, early},
		{"tie: smaller token hash", early, tieLow, tieLow},
		{"tie: smaller token hash first", tieLow, early, tieLow},
		{"same record", early, early, early},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, t.TempDir(), Options{})
			defer s.Close()
			if err := s.CreateUser(tc.first); err != nil {
				t.Fatal(err)
			}
			got, _, err := s.MergeUser(tc.alt)
			if err != nil {
				t.Fatal(err)
			}
			stored, err := s.User("joe")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, stored); diff != "" {
				t.Errorf("stored user (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("MergeUser's answer (-want +got):\n%s", diff)
			}
			checkDigests(t, s)
		})
	}
}
