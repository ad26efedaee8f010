package store

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringfront/ringfront/appnode/feed"
)

func posts(n int, author string) []feed.Post {
	src := feed.NewIDSource(feed.NewClock(nil), "127.0.0.1:1")
	var out []feed.Post
	for i := range n {
		id := src.Next()
		out = append(out, feed.Post{ID: id, Author: author, Text: fmt.Sprint(i), Created: id.Time()})
	}
	return out
}

func entryIDs(es []InboxEntry) []feed.ID {
	out := []feed.ID{}
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

// TestInbox: deliveries are idempotent, reads page newest first between
// a cursor and a floor, filter authors, replay after an id, and a trim
// keeps the newest entries and raises the horizon.
func TestInbox(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	defer s.Close()
	ps := posts(11, "ann")
	bob := ps[10:]
	bob[0].Author = "bob"
	ps = ps[:10]
	for range 2 {
		if err := s.Deliver(InboxDelivery{Users: []string{"joe", "cat"}, Posts: ps}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Deliver(InboxDelivery{Users: []string{"joe"}, Posts: bob}); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.InboxLen("joe"); n != 11 {
		t.Errorf("joe's inbox has %d entries, want 11", n)
	}
	onlyAnn := func(a string) bool { return a == "ann" }
	got, more, err := s.Inbox("joe", ps[8].ID, ps[2].ID, 3, onlyAnn)
	if err != nil {
		t.Fatal(err)
	}
	want := []feed.ID{ps[7].ID, ps[6].ID, ps[5].ID}
	if diff := cmp.Diff(want, entryIDs(got)); diff != "" || !more {
		t.Errorf("page (more %v) (-want +got):\n%s", more, diff)
	}
	got, more, _ = s.Inbox("joe", ps[5].ID, ps[2].ID, 10, onlyAnn)
	if diff := cmp.Diff([]feed.ID{ps[4].ID, ps[3].ID, ps[2].ID}, entryIDs(got)); diff != "" || more {
		t.Errorf("last page above the floor (more %v) (-want +got):\n%s", more, diff)
	}
	if got, _, _ := s.Inbox("joe", ps[1].ID, ps[2].ID, 10, nil); len(got) != 0 {
		t.Errorf("a page below the floor = %v", entryIDs(got))
	}
	after, err := s.InboxAfter("joe", ps[7].ID, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]feed.ID{ps[8].ID, ps[9].ID, bob[0].ID}, entryIDs(after)); diff != "" {
		t.Errorf("after ps[7] (-want +got):\n%s", diff)
	}

	// Trimming raises the horizon only where there is a meta (a trusted
	// inbox).
	if err := s.SetHorizon("joe", feed.ID{}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.TrimInbox("joe", 4); err != nil || n != 7 {
		t.Errorf("trim = %d, %v; want 7 dropped", n, err)
	}
	got, _, _ = s.Inbox("joe", feed.ID{}, feed.ID{}, 100, nil)
	if diff := cmp.Diff([]feed.ID{bob[0].ID, ps[9].ID, ps[8].ID, ps[7].ID}, entryIDs(got)); diff != "" {
		t.Errorf("after the trim (-want +got):\n%s", diff)
	}
	m, ok, _ := s.Meta("joe")
	if !ok || m.Horizon != ps[7].ID {
		t.Errorf("joe's meta = %+v, %v; want horizon %s", m, ok, ps[7].ID)
	}
	if _, err := s.TrimInbox("cat", 4); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Meta("cat"); ok {
		t.Error("a trim made an untrusted inbox look trusted")
	}
	// A horizon never goes down.
	if err := s.SetHorizon("joe", ps[1].ID); err != nil {
		t.Fatal(err)
	}
	if m, _, _ := s.Meta("joe"); m.Horizon != ps[7].ID {
		t.Errorf("horizon went down to %s", m.Horizon)
	}
}

// TestOutbox: entries come back per member in the order queued, across
// a restart, until deleted.
func TestOutbox(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	ps := posts(3, "ann")
	var queued []Write
	for i, m := range []string{"b:1", "a:1", "b:1"} {
		v, err := json.Marshal(InboxDelivery{Users: []string{"joe"}, Posts: ps[i : i+1]})
		if err != nil {
			t.Fatal(err)
		}
		w, _ := s.Outbox().Write(m, v)
		queued = append(queued, w)
	}
	if err := s.AddPost(ps[0], queued[0]); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(queued[1:]...); err != nil {
		t.Fatal(err)
	}
	s.Close()
	time.Sleep(time.Millisecond) // the sequence restarts from the clock
	s = open(t, dir, Options{})
	defer s.Close()
	members, err := s.Outbox().Members()
	if err != nil || !cmp.Equal([]string{"a:1", "b:1"}, members) {
		t.Errorf("outbox members = %v, %v", members, err)
	}
	es, err := s.Outbox().Read("b:1", 10)
	first := func(e QueueEntry) feed.ID {
		var d InboxDelivery
		if err := json.Unmarshal(e.Value, &d); err != nil || len(d.Posts) == 0 {
			t.Fatalf("outbox entry %q: %v", e.Value, err)
		}
		return d.Posts[0].ID
	}
	if err != nil || len(es) != 2 || first(es[0]) != ps[0].ID || first(es[1]) != ps[2].ID {
		t.Fatalf("b:1's outbox = %+v, %v", es, err)
	}
	if err := s.Outbox().Delete(es[:1]); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Outbox().Count(0); n != 2 {
		t.Errorf("%d entries left, want 2", n)
	}
	if n, _ := s.Outbox().Count(1); n != 1 {
		t.Errorf("count up to 1 = %d", n)
	}
	if got, _, _ := s.Posts("ann", feed.ID{}, 10); len(got) != 1 {
		t.Errorf("the post written with its outbox entry: %v", got)
	}
}

// TestActiveFollowers: removed edges do not count, and the scan stops
// after max+1.
func TestActiveFollowers(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	defer s.Close()
	for i, f := range []string{"a", "b", "c", "d"} {
		e := feed.Edge{Follower: f, Followee: "star", Clock: feed.Timestamp(i + 1), Removed: f == "b"}
		if _, _, err := s.MergeEdge(Followers, e, false, 0); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := s.ActiveFollowers("star", 10)
	if diff := cmp.Diff([]string{"a", "c", "d"}, got); diff != "" {
		t.Errorf("followers (-want +got):\n%s", diff)
	}
	if got, _ := s.ActiveFollowers("star", 1); len(got) != 2 {
		t.Errorf("with max 1: %v, want 2 (max+1)", got)
	}
}
