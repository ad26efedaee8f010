package chaos

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ringfront/ringfront/appnode/chaos/history"
)

// Report is what one run found.
type Report struct {
	Config   Config
	Schedule []history.Fault
	Started  time.Time
	Duration time.Duration
	Ops      int
	Outcomes map[history.Outcome]int
	Windows  []history.WindowFigures
	Safety   *history.Safety
	// FanoutSettled says whether every outbox was empty within
	// FinalWait of the load stopping, FanoutWait how long that took.
	FanoutSettled bool
	FanoutWait    time.Duration
	// FinalAgreed says whether every member gave the same answers for
	// everything (posts, following, followers) within FinalWait of the
	// load stopping, FinalConverged after how long; FinalWhy is the
	// last difference seen otherwise. SinceLastHeal is the time from
	// the last heal to the load stopping.
	FinalAgreed    bool
	FinalConverged time.Duration
	FinalWhy       string
	SinceLastHeal  time.Duration
	// Clock says what each clock fault did to the post times;
	// ClockErrors the faults that did not move the clock (a harness
	// failure).
	Clock       []string
	ClockErrors []string
	HistoryFile string
}

// SafetyViolations lists what must never happen and did: the checker's
// findings, follow sets that did not agree within MaxConvergence of a
// heal, members that never agreed at the end, a clock that did not
// move.
func (r *Report) SafetyViolations() []string {
	out := r.Safety.Violations()
	for _, w := range r.Windows {
		switch {
		case w.Fault == nil || w.Agreed && w.Converged <= history.MaxConvergence:
		case strings.HasPrefix(w.Why, "still: "):
			out = append(out, fmt.Sprintf("after %s: members did not agree (%s)", w.Name, w.Why))
		default:
			out = append(out, fmt.Sprintf("after %s: members did not agree within %v of healing (%.1f s: %s)", w.Name, history.MaxConvergence, w.Converged.Seconds(), w.Why))
		}
	}
	if !r.FinalAgreed {
		out = append(out, fmt.Sprintf("at the end: members still disagree %.1f s after the load stopped: %s", r.FinalConverged.Seconds(), r.FinalWhy))
	}
	return append(out, r.ClockErrors...)
}

// AvailabilityMisses lists the windows whose availability misses the
// targets.
func (r *Report) AvailabilityMisses() []string {
	var out []string
	for _, w := range r.Windows {
		for _, s := range []struct {
			kind history.ClientKind
			st   history.Stat
		}{{history.Plain, w.Plain}, {history.Smart, w.Smart}} {
			if !s.st.Meets() {
				out = append(out, fmt.Sprintf("%s, %s clients: %.1f%% of %d ok, p99 %s", w.Name, s.kind, 100*s.st.Share(), s.st.Requests, ms(s.st.P99)))
			}
		}
	}
	return out
}

// ms formats a latency.
func ms(d time.Duration) string {
	if d >= time.Second {
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
	return fmt.Sprintf("%dms", d.Milliseconds())
}

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISS"
}

// Print writes the report for a person.
func (r *Report) Print(w io.Writer) {
	c := r.Config
	fmt.Fprintf(w, "chaos profile %s: %d members, replicas %d, seed %d; %d plain and %d smart clients, %v timeout; %v\n",
		c.Profile.Name, c.Members, c.Profile.Replicas, c.Seed, c.PlainWorkers, c.SmartWorkers, ClientTimeout, r.Duration.Round(time.Second))
	var sched []string
	for i, f := range r.Schedule {
		sched = append(sched, fmt.Sprintf("%d. %s", i+1, f))
	}
	fmt.Fprintf(w, "schedule: %s (each %v, healed, %v quiet)\n", strings.Join(sched, "; "), c.Window, c.Quiet)
	fmt.Fprintf(w, "operations: %d (ok %d, failed %d, unknown %d)", r.Ops, r.Outcomes[history.OK], r.Outcomes[history.Failed], r.Outcomes[history.Unknown])
	if r.HistoryFile != "" {
		fmt.Fprintf(w, "; history: %s", r.HistoryFile)
	}
	fmt.Fprintln(w)

	fmt.Fprintf(w, "\navailability per window (targets: ≥ %.0f%% ok and p99 < %v, per kind of client; plain counts requests to members up and reachable; neither counts requests about users with no replica reachable, shown apart)\n", 100*history.MinShare, history.MaxP99)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "window\tplain ok\tn\tp99\t(excl.)\tsmart ok\tn\tp99\tno replica\tagree after\tverdict")
	for _, f := range r.Windows {
		agree := "-"
		if f.Fault != nil {
			agree = fmt.Sprintf("%.1fs", f.Converged.Seconds())
			switch {
			case strings.HasPrefix(f.Why, "still: "):
				agree = "as before"
			case !f.Agreed:
				agree = ">" + agree
			}
		}
		fmt.Fprintf(tw, "%s\t%.1f%%\t%d\t%s\t(%d)\t%.1f%%\t%d\t%s\t(%d)\t%s\t%s\n", f.Name,
			100*f.Plain.Share(), f.Plain.Requests, ms(f.Plain.P99), f.Plain.Excluded,
			100*f.Smart.Share(), f.Smart.Requests, ms(f.Smart.P99), f.Plain.NoReplica+f.Smart.NoReplica, agree, verdict(f.Plain.Meets() && f.Smart.Meets()))
	}
	tw.Flush()

	s := r.Safety
	fmt.Fprintf(w, "\nsafety (targets: lost = phantom = 0, follow sets agree ≤ %v after healing, edges and timelines complete)\n", history.MaxConvergence)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	line := func(what string, f history.Finding, detail string) {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", what, f.N, verdict(f.N == 0), detail)
	}
	line("lost (acknowledged posts missing through a member)", s.Lost, fmt.Sprintf("of %d acknowledged, %d attempted", s.Acked, s.Attempted))
	line("phantom (posts never sent)", s.Phantom, fmt.Sprintf("stored though failed: %d, stored without answer: %d", s.FailedPresent, s.UnknownPresent))
	line("duplicated (a text stored twice)", s.Duplicated, "")
	line("follow sets differing between members", s.Divergent, fmt.Sprintf("of %d users", s.Users))
	line("edges on one side only", s.OneSided, "")
	line("edges contrary to the last acknowledged follow/unfollow", s.EdgesWrong, fmt.Sprintf("of %d edges the history settles", s.EdgePairs))
	line("timeline posts missing", s.TimelineMissing, fmt.Sprintf("of %d posts required by %d settled follows", s.TimelinePosts, s.TimelinePairs))
	line("final reads failed", s.ReadErrors, "")
	tw.Flush()
	for _, f := range []struct {
		name string
		f    history.Finding
	}{{"lost", s.Lost}, {"phantom", s.Phantom}, {"duplicated", s.Duplicated}, {"divergent", s.Divergent}, {"one-sided", s.OneSided},
		{"contrary", s.EdgesWrong}, {"timeline", s.TimelineMissing}, {"read failed", s.ReadErrors}} {
		for _, e := range f.f.Examples {
			fmt.Fprintf(w, "  %s: %s\n", f.name, e)
		}
	}
	slowest, agreed := time.Duration(0), true
	for _, f := range r.Windows {
		if f.Fault != nil {
			slowest = max(slowest, f.Converged)
			agreed = agreed && f.Agreed
		}
	}
	fmt.Fprintf(w, "convergence: slowest window %.1f s after healing (target ≤ %v) %s; at the end (%.1f s after the last heal) ",
		slowest.Seconds(), history.MaxConvergence, verdict(agreed && slowest <= history.MaxConvergence), r.SinceLastHeal.Seconds())
	if r.FinalAgreed {
		fmt.Fprintf(w, "all members agree on everything %.1f s after the load stopped\n", r.FinalConverged.Seconds())
	} else {
		fmt.Fprintf(w, "members still disagree %.1f s after the load stopped: %s\n", r.FinalConverged.Seconds(), r.FinalWhy)
	}
	if r.FanoutSettled {
		fmt.Fprintf(w, "fan-out: every outbox empty %.1f s after the load stopped\n", r.FanoutWait.Seconds())
	} else {
		fmt.Fprintf(w, "fan-out: outboxes not empty %.1f s after the load stopped (timelines checked anyway)\n", r.FanoutWait.Seconds())
	}
	for _, l := range r.Clock {
		fmt.Fprintf(w, "clock: %s\n", l)
	}
	safety := r.SafetyViolations()
	avail := r.AvailabilityMisses()
	fmt.Fprintf(w, "verdict: safety %s", map[bool]string{true: "PASS", false: fmt.Sprintf("FAIL (%d)", len(safety))}[len(safety) == 0])
	if len(avail) == 0 {
		fmt.Fprintln(w, "; availability PASS")
	} else {
		fmt.Fprintf(w, "; availability MISS in %d window×client figures\n", len(avail))
	}
}
