package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// FaultKind is a kind of fault the nemesis injects.
type FaultKind string

// Fault kinds.
const (
	// Partition cuts the members into a majority and a minority that do
	// not reach each other; the clients stay with the majority.
	Partition FaultKind = "partition"
	// Isolate cuts one member off from the other members and the
	// clients.
	Isolate FaultKind = "isolate"
	// Pause stops one member with SIGSTOP; healing sends SIGCONT.
	Pause FaultKind = "pause"
	// Kill kills one member with SIGKILL; healing starts it again on
	// the same data.
	Kill FaultKind = "kill"
	// Wipe kills one member, removes its data dir and starts it again
	// at once: the window is an empty member serving under load.
	Wipe FaultKind = "wipe"
	// Clock moves one member's clock by ClockOffset, ahead or behind;
	// healing moves it back.
	Clock FaultKind = "clock"
)

// FaultKinds are every kind, in the order a schedule's rounds start
// from before they are shuffled.
var FaultKinds = []FaultKind{Partition, Isolate, Pause, Kill, Wipe, Clock}

// ClockOffset is how far a clock fault moves a member's clock: far
// beyond any NTP error, well inside the cluster's 5-minute signature
// window (so it tests the data's clocks, not authentication).
const ClockOffset = 60 * time.Second

// Fault is one fault of a schedule. Members are indices into the
// cluster's members.
type Fault struct {
	Kind FaultKind
	// Members are those it hits: a partition's minority, else one.
	Members []int
	// Offset is a clock fault's shift.
	Offset time.Duration
}

// String names the fault with members m1, m2, ...
func (f Fault) String() string {
	names := make([]string, len(f.Members))
	for i, m := range f.Members {
		names[i] = memberName(m)
	}
	s := string(f.Kind) + " " + strings.Join(names, ",")
	switch f.Kind {
	case Partition:
		s += " | rest"
	case Clock:
		s += fmt.Sprintf(" %+ds", int(f.Offset.Seconds()))
	}
	return s
}

// memberName is member i's short name: m1 for index 0.
func memberName(i int) string { return "m" + strconv.Itoa(i+1) }

// Schedule returns a run's faults: each kind rounds times, each round
// in an order, members and clock directions drawn from seed. The same
// seed gives the same schedule.
func Schedule(seed uint64, rounds, members int) []Fault {
	rnd := rand.New(rand.NewPCG(seed, 0x6e656d65736973)) // "nemesis"
	var out []Fault
	for range rounds {
		kinds := slices.Clone(FaultKinds)
		rnd.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
		for _, k := range kinds {
			f := Fault{Kind: k}
			if k == Partition {
				// The largest minority: 2 of 5.
				f.Members = rnd.Perm(members)[:(members-1)/2]
				slices.Sort(f.Members)
			} else {
				f.Members = []int{rnd.IntN(members)}
			}
			if k == Clock {
				f.Offset = ClockOffset
				if rnd.IntN(2) == 0 {
					f.Offset = -ClockOffset
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

// Outage is a time a member was not running or not reachable by the
// clients.
type Outage struct {
	Member   string
	From, To time.Time
}

// covers reports whether the outage includes t.
func (o Outage) covers(t time.Time) bool { return !t.Before(o.From) && t.Before(o.To) }

// nemesis applies and heals faults and records the outages they cause.
// It is safe for concurrent use.
type nemesis struct {
	t     target
	names []string // member addresses, by index
	now   func() time.Time

	mu      sync.Mutex // guards open and outages
	open    map[int]time.Time
	outages []Outage
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
			ne.outages = append(ne.outages, Outage{Member: ne.names[m], From: from, To: at})
			delete(ne.open, m)
		}
	}
	ne.mu.Unlock()
}

// Outages returns the outages so far, an open one ending now.
func (ne *nemesis) Outages() []Outage {
	at := ne.now()
	ne.mu.Lock()
	defer ne.mu.Unlock()
	out := slices.Clone(ne.outages)
	for m, from := range ne.open {
		out = append(out, Outage{Member: ne.names[m], From: from, To: at})
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
func (ne *nemesis) Apply(ctx context.Context, f Fault) error {
	m := f.Members[0]
	switch f.Kind {
	case Partition, Isolate:
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
	case Pause:
		ne.down(m)
		return ne.t.Signal(m, syscall.SIGSTOP)
	case Kill:
		ne.down(m)
		return ne.t.Kill(m)
	case Wipe:
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
	case Clock:
		return ne.t.SetClock(m, f.Offset)
	}
	return fmt.Errorf("unknown fault kind %q", f.Kind)
}

// Heal undoes f: after it every member runs, reaches every other and
// keeps the wall clock.
func (ne *nemesis) Heal(ctx context.Context, f Fault) error {
	m := f.Members[0]
	switch f.Kind {
	case Partition, Isolate:
		for i := range ne.names {
			if err := ne.t.Heal(i); err != nil {
				return err
			}
		}
		ne.up(f.Members...)
		return nil
	case Pause:
		err := ne.t.Signal(m, syscall.SIGCONT)
		ne.up(m)
		return err
	case Kill:
		if err := ne.t.Start(ctx, m); err != nil {
			return err
		}
		ne.up(m)
		return nil
	case Wipe:
		return nil // started again when applied
	case Clock:
		return ne.t.SetClock(m, 0)
	}
	return fmt.Errorf("unknown fault kind %q", f.Kind)
}
