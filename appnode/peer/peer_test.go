package peer

import (
	"context"
	"fmt"
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

// TestOnMembersBudget: a member asked by another that waits only so
// long (WithBudget) gives a candidate that does not answer at most half
// of what is left, so the next candidate still answers in time; without
// a budget the first waits its whole write timeout.
func TestOnMembersBudget(t *testing.T) {
	rg, err := ring.New(ring.Config{Members: []string{"a:1", "b:1", "c:1"}, VNodes: 4, Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	name := ""
	for i := 0; name == ""; i++ {
		if n := fmt.Sprintf("user%d", i); !rg.InPreference(n, "a:1") {
			name = n
		}
	}
	first := rg.Preference(nil, name)[0]
	for _, tc := range []struct {
		budget time.Duration // 0: none
		want   time.Duration // when the second candidate answers
	}{
		{0, WriteTimeouts * DefaultMemberTimeout},
		{450 * time.Millisecond, 225 * time.Millisecond},
		// Never below the member timeout, however little is left.
		{100 * time.Millisecond, DefaultMemberTimeout},
	} {
		synctest.Test(t, func(t *testing.T) {
			c, err := New(Options{Self: "a:1", Ring: rg, Log: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if tc.budget > 0 {
				ctx = WithBudget(ctx, time.Now().Add(tc.budget))
			}
			start := time.Now()
			var answered time.Duration
			err = c.OnMembers(ctx, name, true, func(ctx context.Context, m string) error {
				if m == first {
					<-ctx.Done() // cut off: never answers
					return ctx.Err()
				}
				answered = time.Since(start)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if answered != tc.want {
				t.Errorf("budget %v: the second candidate was asked after %v, want %v", tc.budget, answered, tc.want)
			}
		})
	}
}
