package cli

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/ringfront/ringfront/appnode/gossip"
	"github.com/ringfront/ringfront/appnode/node"
)

// PrintStatus writes a member's status (`appnode status`) as a table.
func PrintStatus(w io.Writer, st node.Status) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "node\t%s\n", st.Node)
	fmt.Fprintf(tw, "advertise\t%s\n", st.Self)
	fmt.Fprintf(tw, "routing\t%s\n", st.Routing)
	fmt.Fprintf(tw, "ring\t%s (%d vnodes, %d replicas, %s)\n", st.Ring.Version, st.Ring.VNodes, st.Ring.Replicas, st.Ring.Placement)
	for i, m := range st.Ring.Members {
		label := ""
		if i == 0 {
			label = "members"
		}
		self := ""
		if m == st.Self {
			self = " (this member)"
		}
		fmt.Fprintf(tw, "%s\t%s%s\n", label, m, self)
	}
	if st.Members > 0 {
		fmt.Fprintf(tw, "members alive\t%d of %d\n", st.MembersAlive, st.Members)
	}
	if st.Isolated != "" {
		fmt.Fprintf(tw, "ISOLATED\tthis member %s\n", st.Isolated)
	}
	if st.CatchingUp {
		fmt.Fprintf(tw, "catching up\tyes: its users are answered by caught-up replicas meanwhile\n")
	}
	for i, l := range st.Liveness {
		label := ""
		if i == 0 {
			label = "liveness"
		}
		state := l.State.String()
		since := ""
		switch {
		case l.Member == st.Self:
			state = "alive (this member)"
		case !l.Since.IsZero():
			since = " since " + l.Since.UTC().Format(time.RFC3339)
		case l.State == gossip.Unknown:
			state = "not seen yet"
		}
		extra := ""
		if l.CatchingUp && l.Member != st.Self {
			extra += ", catching up"
		}
		if l.Gossip != "" && l.Member != st.Self {
			extra += ", gossip " + l.Gossip
		}
		if l.Problem != "" {
			extra += ": " + l.Problem
		}
		fmt.Fprintf(tw, "%s\t%s %s%s%s\n", label, l.Member, state, since, extra)
	}
	hinted := slices.Sorted(maps.Keys(st.HintsByMember))
	for i, m := range hinted {
		label := ""
		if i == 0 {
			label = "hints"
		}
		fmt.Fprintf(tw, "%s\t%d waiting for %s\n", label, st.HintsByMember[m], m)
	}
	if rb := st.Rebalance; rb.To != "" {
		state := "done"
		if rb.Pending > 0 {
			state = fmt.Sprintf("%d pending", rb.Pending)
		}
		fmt.Fprintf(tw, "rebalance\t%s -> %s: %d users streamed, %s\n", rb.From, rb.To, rb.Done, state)
	}
	if st.EdgeNotes > 0 {
		fmt.Fprintf(tw, "edge notes\t%d follow edges to confirm with their other side\n", st.EdgeNotes)
	}
	if st.Outbox > 0 || st.Streams > 0 {
		fmt.Fprintf(tw, "fan-out\t%d deliveries waiting, %d live streams\n", st.Outbox, st.Streams)
	}
	for i, l := range st.Links {
		label := ""
		if i == 0 {
			label = "forwarding"
		}
		switch {
		case !l.HTTPUntil.IsZero():
			fmt.Fprintf(tw, "%s\t%s over HTTP until %s: %s\n", label, l.Member, l.HTTPUntil.UTC().Format(time.RFC3339), l.Reason)
		case l.Open > 0:
			fmt.Fprintf(tw, "%s\t%s over %d member links\n", label, l.Member, l.Open)
		default:
			fmt.Fprintf(tw, "%s\t%s no link open (opened on the next forward)\n", label, l.Member)
		}
	}
	if st.LinksServed > 0 {
		fmt.Fprintf(tw, "links served\t%d from other members\n", st.LinksServed)
	}
	fmt.Fprintf(tw, "store\t%.1f MiB on disk", float64(st.Store.DiskBytes)/(1<<20))
	if st.Store.WritesFail {
		fmt.Fprint(tw, ", FAILED (restart the node)")
	}
	fmt.Fprintln(tw)
	tw.Flush()
}
