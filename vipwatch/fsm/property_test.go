package fsm

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

// TestNoDoubleClaim drives a pair with random configs and random events
// — crashes (with release-all after them, as systemd's ExecStopPost
// does), graceful stops, restarts, link flaps, clock jumps — over a
// network that delivers every heartbeat, late and out of order but
// within the dead interval, and a heartbeat's answer back within it
// too (a partner proves it is live by answering this run's heartbeat,
// which a daemon sends a tick after it starts); half the runs have a
// witness. In runs
// without planned moves no VIP may
// ever be on both machines. Runs with planned moves (handover,
// takeback, a tracked service failing and recovering; also addresses
// deleted behind the daemons' backs) hold a VIP on
// both machines on purpose, make before break, but only for as long as
// one heartbeat takes to say so. After the events stop and both
// daemons run, every VIP must end up on exactly one machine.
func TestNoDoubleClaim(t *testing.T) {
	runs := 1000
	if testing.Short() {
		runs = 200
	}
	for seed := range uint64(runs) {
		if err := randomRun(seed); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}

func randomRun(seed uint64) error {
	r := rand.New(rand.NewPCG(seed, 0x7669707761746368))
	w := newWorld()
	dead := 3 + r.IntN(7)
	hb := 1 + r.IntN(dead-1)
	maxDelay := 1 + r.IntN(min(dead-hb, (dead-1)/2))
	w.delay = func() int64 { return 1 + r.Int64N(int64(maxDelay)) }
	// Refusals (ICMP port unreachable from a machine whose daemon is
	// down) are modelled only where the gap between heartbeats stays
	// under an interval and a half, as Machine.Refused assumes.
	w.noICMP = 2*(hb+maxDelay-1) >= 3*hb
	for i := range w.cfg {
		c := &w.cfg[i]
		c.DeadTicks, c.HeartbeatTicks = dead, hb
		c.Preempt = r.IntN(3) > 0
		c.PreemptDelayTicks = r.IntN(6)
		c.GARPCount, c.GARPIntervalTicks, c.GARPRefreshTicks = 1+r.IntN(3), 1+r.IntN(3), 5+r.IntN(20)
	}
	var events []string
	note := func(format string, args ...any) {
		events = append(events, fmt.Sprintf("t=%d ", w.now)+fmt.Sprintf(format, args...))
	}
	fail := func(why string) error {
		return fmt.Errorf("%s\nconfig: dead=%d hb=%d maxDelay=%d cfg=%+v / %+v\nevents:\n%s\nlog:\n%s",
			why, dead, hb, maxDelay, w.cfg[0], w.cfg[1], strings.Join(events, "\n"), strings.Join(w.log, "\n"))
	}
	// Half the runs have a witness (always reachable while a link is
	// up): claims from a silent partner then wait for a probe that finds
	// the VIP free, and link loss also loses the witness.
	if r.IntN(2) == 0 {
		for i := range w.cfg {
			w.cfg[i].Witness, w.cfg[i].FaultReleaseTicks, w.cfg[i].ProbeTicks = true, r.IntN(3*dead), 1+r.IntN(hb+1)
		}
	}
	var restartAt, linkUpAt [2]int64
	planned := r.IntN(2) == 0
	// A double hold must end once the giver hears the taker (or the
	// reverse): one heartbeat period plus one delay each way, and a
	// tick of slack for the order in which the world ticks machines.
	bound := int64(2*(hb+maxDelay) + 2)
	doubleSince := map[string]int64{}
	checkDoubles := func(quiet bool) error {
		d := w.doubles()
		now := map[string]bool{}
		for _, p := range d {
			now[p.String()] = true
			if _, ok := doubleSince[p.String()]; !ok {
				doubleSince[p.String()] = w.now
			}
		}
		for p, since := range doubleSince {
			switch {
			case !now[p]:
				delete(doubleSince, p)
			case !planned:
				return fail(fmt.Sprintf("t=%d (quiet=%v): %v on both machines", w.now, quiet, d))
			case w.now-since > bound:
				return fail(fmt.Sprintf("t=%d (quiet=%v): %v on both machines since t=%d, longer than %d ticks", w.now, quiet, p, since, bound))
			}
		}
		return nil
	}
	if r.IntN(2) == 0 {
		w.start(0)
		w.start(1)
	} else {
		w.start(r.IntN(2))
	}
	for range 300 + r.IntN(300) {
		i := r.IntN(2)
		n := w.nodes[i]
		switch x := r.IntN(100); {
		case x < 2 && n.m != nil:
			note("crash %s (release-all runs)", n.name)
			w.kill(i, true)
			// The daemon stays down longer than a heartbeat can be in
			// flight, so no heartbeat of the old boot arrives after the
			// new boot's first.
			restartAt[i] = w.now + int64(maxDelay) + 1 + r.Int64N(int64(3*dead))
		case x < 4 && n.m != nil:
			note("stop %s", n.name)
			w.apply(i, n.m.Stop())
			n.m = nil
			restartAt[i] = w.now + int64(maxDelay) + 1 + r.Int64N(int64(3*dead))
		case x < 6 && n.linkUp:
			note("link %s down", n.name)
			w.setLink(i, false)
			linkUpAt[i] = w.now + 1 + r.Int64N(int64(3*dead))
		case planned && x < 9 && n.m != nil:
			switch r.IntN(4) {
			case 0:
				note("handover %s", n.name)
				w.apply(i, n.m.Handover(nil))
			case 1:
				note("takeback %s", n.name)
				w.apply(i, n.m.Takeback())
			case 2:
				ok := r.IntN(2) == 0
				note("track %s ok=%v", n.name, ok)
				w.apply(i, n.m.Track(ok))
			case 3:
				// Someone deletes an address behind the daemon's back.
				p := []netip.Prefix{vipA, vipB}[r.IntN(2)]
				note("delete %v from %s", p, n.name)
				delete(n.addrs, p)
				w.apply(i, n.m.Removed(p))
			}
		case x == 9 && n.m != nil:
			// A jump the machine cannot tell from a late heartbeat (half
			// the dead interval or less) is just lateness and would eat
			// the network's margin; jumps here are stalls.
			j := max(2, int64(dead/2)+1) + r.Int64N(int64(4*dead))
			note("jump %s %d", n.name, j)
			w.apply(i, n.m.Tick(j))
		}
		for k := range w.nodes {
			if w.nodes[k].m == nil && restartAt[k] != 0 && w.now >= restartAt[k] {
				note("start %s", w.nodes[k].name)
				w.start(k)
				restartAt[k] = 0
			}
			if !w.nodes[k].linkUp && w.now >= linkUpAt[k] {
				note("link %s up", w.nodes[k].name)
				w.setLink(k, true)
			}
		}
		w.tick()
		if err := checkDoubles(false); err != nil {
			return err
		}
	}
	// Quiet down: both daemons up, links up, and enough time for any
	// hand-back to finish.
	for k := range w.nodes {
		if !w.nodes[k].linkUp {
			w.setLink(k, true)
		}
		w.start(k)
	}
	for range 10*dead + 20 {
		w.tick()
		if err := checkDoubles(true); err != nil {
			return err
		}
	}
	for _, p := range []string{vipA.String(), vipB.String()} {
		on := 0
		for _, n := range w.nodes {
			for q := range n.addrs {
				if q.String() == p {
					on++
				}
			}
		}
		if on != 1 {
			return fail(fmt.Sprintf("after quiet period %s is on %d machines: %s", p, on, w.describe()))
		}
	}
	return nil
}
