package history

import (
	"strings"
	"testing"
	"time"
)

// TestClockSeen: a clock fault is confirmed by the times of the posts
// its member made the ids of (plain clients'), however many posts smart
// clients, which make their ids from their own clock, added in the
// window; a fault that moved nothing is an error.
func TestClockSeen(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 13, 0, 0, 0, time.UTC)
	addrs := []string{"198.51.100.11:8081", "198.51.100.12:8081"}
	owners := map[string]string{"u1": addrs[1]}
	w := Window{Name: "clock m2 +60s", Fault: &Fault{Kind: Clock, Members: []int{1}, Offset: time.Minute}, Start: t0, End: t0.Add(5 * time.Second)}
	post := func(client ClientKind, at, skew time.Duration) Op {
		start := t0.Add(at)
		return Op{Client: client, Kind: Post, User: "u1", Outcome: OK, Start: start, End: start.Add(10 * time.Millisecond),
			PostCreated: start.Add(5*time.Millisecond + skew)}
	}
	var moved, unmoved []Op
	for i := range 10 {
		at := time.Second + time.Duration(i)*100*time.Millisecond
		moved = append(moved, post(Plain, at, time.Minute), post(Smart, at, 0), post(Smart, at, 0))
		unmoved = append(unmoved, post(Plain, at, 0), post(Smart, at, 0))
	}
	seen, errs := ClockSeen(moved, []Window{w}, addrs, owners)
	if len(errs) != 0 || len(seen) != 1 || !strings.Contains(seen[0], "+60.0 s off (median of 10)") {
		t.Errorf("a moved clock: seen %q, errors %q", seen, errs)
	}
	if _, errs := ClockSeen(unmoved, []Window{w}, addrs, owners); len(errs) != 1 {
		t.Errorf("a clock that did not move: errors %q, want one", errs)
	}
}
