package history

import (
	"fmt"
	"strconv"
	"strings"
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
		names[i] = MemberName(m)
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

// MemberName is member i's short name: m1 for index 0.
func MemberName(i int) string { return "m" + strconv.Itoa(i+1) }

// Outage is a time a member was not running or not reachable by the
// clients.
type Outage struct {
	Member   string
	From, To time.Time
}

// covers reports whether the outage includes t.
func (o Outage) covers(t time.Time) bool { return !t.Before(o.From) && t.Before(o.To) }
