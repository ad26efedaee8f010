package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/ringfront/ringfront/appnode/chaos/history"
)

// Schedule returns a run's faults: each kind rounds times, each round
// in an order, members and clock directions drawn from seed. The same
// seed gives the same schedule.
func Schedule(seed uint64, rounds, members int) []history.Fault {
	rnd := rand.New(rand.NewPCG(seed, 0x6e656d65736973)) // "nemesis"
	var out []history.Fault
	for range rounds {
		kinds := slices.Clone(history.FaultKinds)
		rnd.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
		for _, k := range kinds {
			f := history.Fault{Kind: k}
			if k == history.Partition {
				// The largest minority: 2 of 5.
				f.Members = rnd.Perm(members)[:(members-1)/2]
				slices.Sort(f.Members)
			} else {
				f.Members = []int{rnd.IntN(members)}
			}
			if k == history.Clock {
				f.Offset = history.ClockOffset
				if rnd.IntN(2) == 0 {
					f.Offset = -history.ClockOffset
				}
			}
			out = append(out, f)
		}
	}
	return out
}

// target is what the nemesis acts on. Members are indices.
type target interface {
	// Cut makes member drop every packet to and from the peers, and to
	// and from the clients when clients is set.
	Cut(member int, peers []int, clients bool) error
	// Heal lets all of member's traffic through again.
	Heal(member int) error
	// Signal sends sig to member's process.
	Signal(member int, sig syscall.Signal) error
	// Kill sends SIGKILL to member's process and waits for it to exit.
	Kill(member int) error
	// Wipe removes member's data dir; the member is not running.
	Wipe(member int) error
	// Start starts member and waits until it serves.
	Start(ctx context.Context, member int) error
	// SetClock moves member's clock by offset (0: back to the wall
	// clock).
	SetClock(member int, offset time.Duration) error
}

// nemesis applies and heals faults and records the outages they cause.
// It is safe for concurrent use.
type nemesis struct {
	t     target
	names []string // member addresses, by index
	now   func() time.Time

	mu      sync.Mutex // guards open and outages
	open    map[int]time.Time
	outages []history.Outage
}

func newNemesis(t target, names []string, now func() time.Time) *nemesis {
	return &nemesis{t: t, names: names, now: now, open: map[int]time.Time{}}
}

// down marks members out of reach from now on.
func (ne *nemesis) down(members ...int) {
	at := ne.now()
	ne.mu.Lock()
	for _, m := range members {
		if _, ok := ne.open[m]; !ok {
			ne.open[m] = at
		}
	}
	ne.mu.Unlock()
}

// up ends the members' outages now.
func (ne *nemesis) up(members ...int) {
	at := ne.now()
	ne.mu.Lock()
	for _, m := range members {
		if from, ok := ne.open[m]; ok {
			ne.outages = append(ne.outages, history.Outage{Member: ne.names[m], From: from, To: at})
			delete(ne.open, m)
		}
	}
	ne.mu.Unlock()
}

// Outages returns the outages so far, an open one ending now.
func (ne *nemesis) Outages() []history.Outage {
	at := ne.now()
	ne.mu.Lock()
	defer ne.mu.Unlock()
	out := slices.Clone(ne.outages)
	for m, from := range ne.open {
		out = append(out, history.Outage{Member: ne.names[m], From: from, To: at})
	}
	return out
}

// others are the members not in ms.
func (ne *nemesis) others(ms []int) []int {
	var out []int
	for i := range ne.names {
		if !slices.Contains(ms, i) {
			out = append(out, i)
		}
	}
	return out
}

// Apply injects f.
func (ne *nemesis) Apply(ctx context.Context, f history.Fault) error {
	m := f.Members[0]
	switch f.Kind {
	case history.Partition, history.Isolate:
		// An isolated member is a minority of one.
		ne.down(f.Members...)
		rest := ne.others(f.Members)
		for _, i := range f.Members {
			if err := ne.t.Cut(i, rest, true); err != nil {
				return err
			}
		}
		for _, i := range rest {
			if err := ne.t.Cut(i, f.Members, false); err != nil {
				return err
			}
		}
		return nil
	case history.Pause:
		ne.down(m)
		return ne.t.Signal(m, syscall.SIGSTOP)
	case history.Kill:
		ne.down(m)
		return ne.t.Kill(m)
	case history.Wipe:
		ne.down(m)
		if err := ne.t.Kill(m); err != nil {
			return err
		}
		if err := ne.t.Wipe(m); err != nil {
			return err
		}
		if err := ne.t.Start(ctx, m); err != nil {
			return err
		}
		ne.up(m)
		return nil
	case history.Clock:
		return ne.t.SetClock(m, f.Offset)
	}
	return fmt.Errorf("unknown fault kind %q", f.Kind)
}

// Heal undoes f: after it every member runs, reaches every other and
// keeps the wall clock.
func (ne *nemesis) Heal(ctx context.Context, f history.Fault) error {
	m := f.Members[0]
	switch f.Kind {
	case history.Partition, history.Isolate:
		for i := range ne.names {
			if err := ne.t.Heal(i); err != nil {
				return err
			}
		}
		ne.up(f.Members...)
		return nil
	case history.Pause:
		err := ne.t.Signal(m, syscall.SIGCONT)
		ne.up(m)
		return err
	case history.Kill:
		if err := ne.t.Start(ctx, m); err != nil {
			return err
		}
		ne.up(m)
		return nil
	case history.Wipe:
		return nil // started again when applied
	case history.Clock:
		return ne.t.SetClock(m, 0)
	}
	return fmt.Errorf("unknown fault kind %q", f.Kind)
}
