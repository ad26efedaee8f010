package store

import (
	"testing"
	"time"

	"github.com/ringfront/ringfront/appnode/feed"
)

// TestEdgeNoteDueOnMemberClock: an edge note is due delay after the
// member's wall clock (Options.Now, which a chaos build moves), the
// clock edge sync compares it with.
func TestEdgeNoteDueOnMemberClock(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	s := open(t, t.TempDir(), Options{Now: func() time.Time { return at }})
	defer s.Close()
	e := feed.Edge{Follower: "joe", Followee: "ann", Clock: 1}
	if _, _, err := s.MergeEdge(Following, e, true, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	notes, err := s.EdgeNotes(10)
	if err != nil || len(notes) != 1 {
		t.Fatalf("EdgeNotes = %v, %v; want one", notes, err)
	}
	if want := at.Add(2 * time.Second); !notes[0].Due.Equal(want) {
		t.Errorf("due %v, want %v", notes[0].Due, want)
	}
}
