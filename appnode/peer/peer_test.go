package peer

import (
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ringfront/ringfront/appnode/ring"
)

func newTestCluster(t *testing.T) *Cluster {
	t.Helper()
	rg, err := ring.New(ring.Config{Members: []string{"a:1", "b:1"}, VNodes: 4, Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{Self: "a:1", Ring: rg, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSuspicion: a member that failed a request is passed over for 1s;
// failing again soon after the suspicion ended doubles it, up to 8s; a
// failure while it is passed over starts it again, as long; an answer
// clears it, and a failure long after starts again at 1s.
func TestSuspicion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t)
		const m = "b:1"
		// suspectedFor fails m now and reports how long it is then
		// passed over, to the millisecond.
		suspectedFor := func() time.Duration {
			c.Failed(m, "refused")
			start := time.Now()
			for c.Suspect(m) != "" {
				if c.Alive(m) {
					t.Fatal("a suspected member is alive")
				}
				time.Sleep(time.Millisecond)
			}
			return time.Since(start).Round(time.Millisecond)
		}
		for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
			if got := suspectedFor(); got != want+time.Millisecond {
				t.Errorf("failure %d: passed over for %v, want %v", i+1, got, want)
			}
		}

		c.Answered(m)
		if why := c.Suspect(m); why != "" || !c.Alive(m) {
			t.Fatalf("an answer did not clear the suspicion: %q", why)
		}
		c.Failed(m, "refused")
		time.Sleep(500 * time.Millisecond)
		// A request that was on its way fails: the suspicion starts
		// again, as long (not doubled).
		if got := suspectedFor(); got != time.Second+time.Millisecond {
			t.Errorf("failed while passed over: passed over for %v more, want 1s", got)
		}
		if got := suspectedFor(); got != 2*time.Second+time.Millisecond {
			t.Errorf("failed again soon after: passed over for %v, want 2s", got)
		}
		time.Sleep(time.Minute)
		if got := suspectedFor(); got != time.Second+time.Millisecond {
			t.Errorf("a minute later: passed over for %v, want 1s", got)
		}
		if c.Suspect("a:1") != "" || !c.Alive("a:1") {
			t.Error("this member is suspected")
		}
	})
}
