package history

import (
	"fmt"
	"slices"
	"time"
)

// ClockSeen checks that each clock fault moved its member's clock: the
// posts that member coordinated (those of users it owns) in the window
// carry times off by the offset. A member moved back keeps handing out
// ids after those it gave before (its hybrid logical clock never goes
// back), so only a move ahead can be confirmed; a move back is shown.
// Only plain clients' posts count: a smart client makes its posts' ids
// itself, from its own clock (appnode/client), so a member's clock never
// shows in them, and how many of them fell in the window decided the
// median.
func ClockSeen(ops []Op, windows []Window, addrs []string, owners map[string]string) (seen, errs []string) {
	for _, w := range windows {
		if w.Fault == nil || w.Fault.Kind != Clock {
			continue
		}
		m := addrs[w.Fault.Members[0]]
		var skews []time.Duration
		for _, o := range ops {
			// The member re-reads its clock file within 50 ms.
			if o.Kind != Post || o.Outcome != OK || o.Client != Plain || owners[o.User] != m ||
				o.Start.Before(w.Start.Add(200*time.Millisecond)) || !o.Start.Before(w.End) {
				continue
			}
			skews = append(skews, o.PostCreated.Sub(o.Start.Add(o.Latency()/2)))
		}
		if len(skews) == 0 {
			seen = append(seen, fmt.Sprintf("%s: no acknowledged post coordinated by %s in the window", w.Name, MemberName(w.Fault.Members[0])))
			continue
		}
		slices.Sort(skews)
		med := skews[len(skews)/2]
		line := fmt.Sprintf("%s: posts coordinated by %s were %+.1f s off (median of %d)", w.Name, MemberName(w.Fault.Members[0]), med.Seconds(), len(skews))
		seen = append(seen, line)
		if w.Fault.Offset > 0 && (med-w.Fault.Offset).Abs() > 5*time.Second {
			errs = append(errs, "the clock fault did not move the clock: "+line)
		}
	}
	return seen, errs
}
