package server

import (
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"
)

// FormatStatus writes st as `dnslb status` prints it: the zones'
// serials, every target's health and whether it is answered, and the
// drained targets with who drained them and why; ages are from now.
func FormatStatus(out io.Writer, st Status, now time.Time) {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "ZONE\tSERIAL")
	for _, z := range st.Zones {
		fmt.Fprintf(w, "%s\t%d\n", z.Origin, z.Serial)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "SERVICE\tTARGET\tSTATE\tANSWERED\tFOR\tOK/FAIL\tLAST CHECK\tRESULT")
	var drained []TargetStatus
	sort.SliceStable(st.Targets, func(i, j int) bool { return st.Targets[i].Service < st.Targets[j].Service })
	for _, t := range st.Targets {
		state := t.State
		if t.Drained {
			state += " (drained)"
			drained = append(drained, t)
		}
		ans := "no"
		if t.Answered {
			ans = "yes"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%s ago\t%s\n", t.Service, t.Address, state, ans,
			age(now, t.Since), t.Successes, t.Failures, age(now, t.LastCheck), t.LastResult)
	}
	if len(drained) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "DRAINED\tTARGET\tBY\tSINCE\tREASON")
		for _, t := range drained {
			since := "-"
			if !t.DrainedSince.IsZero() {
				since = t.DrainedSince.Local().Format(time.RFC3339) + " (" + age(now, t.DrainedSince) + " ago)"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", t.Service, t.Address, t.DrainedBy, since, t.DrainReason)
		}
	}
	w.Flush()
}

func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Round(100 * time.Millisecond).String()
}
