package fsm

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/ringfront/ringfront/vipwatch/heartbeat"
)

// world simulates a pair: two machines, each with the addresses on its
// interface and (while its daemon runs) a Machine, joined by a network
// that carries heartbeats with a delay. Everything is in ticks, and one
// world tick ticks every running Machine once.
type world struct {
	now      int64
	nodes    [2]*node
	inflight []msg
	delay    func() int64 // ticks a heartbeat takes; at least 1
	cfg      [2]Config
	split    bool     // heartbeats are lost both ways, links stay up
	lose     [2]int64 // heartbeats from node i are lost until this tick
	boots    uint64
	log      []string
	// noICMP: a machine whose daemon is down does not refuse
	// heartbeats (the property test turns refusals off where the
	// network's delay varies by more than half an interval, which the
	// fast path of Machine.Refused assumes it does not).
	noICMP bool
	// witnessDown: the witness itself is down (no node reaches it).
	witnessDown bool
	// recording[i]: node i's heartbeats are recorded, as an attacker on
	// the LAN records them, into tape[i] (with the boot id and node).
	recording [2]bool
	tape      [2][]*heartbeat.Heartbeat
	// replaying[i]: the other node's tape is played to node i, one
	// heartbeat a tick from replayAt[i], through i's replay guard.
	replaying [2]bool
	replayAt  [2]int
	// replayed[i] counts what became of the replayed heartbeats node i
	// got: dropped by its guard, unproven, acted on.
	replayed [2]struct{ guard, unproven, acted int }
}

type node struct {
	name   string
	m      *Machine // nil while the daemon is not running
	boot   uint64
	linkUp bool
	addrs  map[netip.Prefix]bool // on the machine's interface
	seen   map[uint64]uint64     // the Guard's replay window, per boot
	// cut: the machine's cable is cut beyond its port (carrier stays
	// up): it reaches nobody, and nobody reaches it.
	cut bool
	// noWitness: this machine's path to the witness is broken (its
	// partner is still reached).
	noWitness bool
	// witnessLag: the daemon's witness rounds notice a change this many
	// ticks late (its rounds are slower than its dead interval);
	// witnessSeen and witnessSince track the true state and when it
	// last changed.
	witnessLag   int64
	witnessSeen  int
	witnessSince int64
	// witness is the witness result last reported to the daemon:
	// -1 none yet, 0 unreachable, 1 reachable.
	witness int
}

type msg struct {
	from, to int
	due      int64
	h        *heartbeat.Heartbeat // nil: an ICMP port unreachable for a heartbeat
	probe    netip.Prefix         // valid: the answer to a's probe of this VIP
	replayed bool                 // h comes from an attacker's recording
}

var (
	vipA = netip.MustParsePrefix("198.51.100.10/24")
	vipB = netip.MustParsePrefix("198.51.100.20/24")
)

func newWorld() *world {
	base := Config{HeartbeatTicks: 1, DeadTicks: 3, Preempt: true, GARPCount: 2, GARPIntervalTicks: 1, GARPRefreshTicks: 50}
	w := &world{delay: func() int64 { return 1 }}
	w.cfg[0], w.cfg[1] = base, base
	w.cfg[0].Home, w.cfg[0].Partner = []netip.Prefix{vipA}, []netip.Prefix{vipB}
	w.cfg[1].Home, w.cfg[1].Partner = []netip.Prefix{vipB}, []netip.Prefix{vipA}
	for i, name := range []string{"a", "b"} {
		w.nodes[i] = &node{name: name, linkUp: true, addrs: map[netip.Prefix]bool{}, seen: map[uint64]uint64{}, witnessSeen: -1}
	}
	return w
}

func (w *world) logf(format string, args ...any) {
	w.log = append(w.log, fmt.Sprintf("t=%d ", w.now)+fmt.Sprintf(format, args...))
}

// start runs a daemon on node i: it removes the addresses a previous
// run left behind, then creates its Machine with a new boot id.
func (w *world) start(i int) {
	n := w.nodes[i]
	if n.m != nil {
		return
	}
	for _, p := range sorted(n.addrs) {
		w.logf("%s: cleanup %v", n.name, p)
		delete(n.addrs, p)
	}
	// A new daemon has a new Guard: it remembers no sequence numbers.
	n.seen = map[uint64]uint64{}
	w.boots++
	n.boot = w.boots
	cfg := w.cfg[i]
	cfg.BootID = n.boot
	n.m = New(cfg)
	n.witness = -1
	if !n.linkUp {
		w.apply(i, n.m.Link(false))
	}
}

// kill ends node i's daemon without letting it release anything; clean
// says whether release-all then runs (as systemd's ExecStopPost does).
func (w *world) kill(i int, clean bool) {
	n := w.nodes[i]
	n.m = nil
	if clean {
		for _, p := range sorted(n.addrs) {
			w.logf("%s: release-all %v", n.name, p)
			delete(n.addrs, p)
		}
	}
}

func (w *world) apply(i int, acts []Action) {
	n := w.nodes[i]
	for _, a := range acts {
		switch a.Kind {
		case Claim:
			n.addrs[a.VIP] = true
		case Release:
			delete(n.addrs, a.VIP)
		case Restore:
			n.addrs[a.VIP] = true
		case Probe:
			// The answer comes a tick later, from the LAN as it is then.
			w.inflight = append(w.inflight, msg{from: i, to: i, due: w.now + 1, probe: a.VIP})
		case Send:
			h := *a.Beat
			h.Node, h.BootID = n.name, n.boot
			if w.recording[i] {
				rec := h
				w.tape[i] = append(w.tape[i], &rec)
			}
			if w.reach(i, 1-i) && !w.split && w.now >= w.lose[i] {
				to := 1 - i
				if w.nodes[to].m == nil && w.noICMP {
					continue
				}
				if w.nodes[to].m == nil {
					// The machine is up but no daemon listens: its kernel
					// answers with ICMP port unreachable.
					w.inflight = append(w.inflight, msg{from: to, to: i, due: w.now + 2*max(1, w.delay())})
				} else {
					w.inflight = append(w.inflight, msg{from: i, to: to, due: w.now + max(1, w.delay()), h: &h})
				}
			}
			continue // sends are not logged: one per tick is noise
		}
		w.logf("%s: %v", n.name, a)
	}
}

// tick advances the world by one tick: heartbeats due now arrive, then
// every running Machine ticks.
func (w *world) tick() {
	w.now++
	var due, keep []msg
	for _, m := range w.inflight {
		if m.due > w.now {
			keep = append(keep, m)
		} else {
			due = append(due, m)
		}
	}
	// Answers sent while delivering join the new in-flight list.
	w.inflight = keep
	for i := range w.nodes {
		if !w.replaying[i] {
			continue
		}
		tape := w.tape[1-i]
		if w.replayAt[i] >= len(tape) {
			w.replaying[i] = false
			r := w.replayed[i]
			w.logf("%s: replay ended: %d heartbeats, %d dropped as replays, %d unproven, %d acted on",
				w.nodes[i].name, len(tape), r.guard, r.unproven, r.acted)
			continue
		}
		due = append(due, msg{from: 1 - i, to: i, due: w.now, h: tape[w.replayAt[i]], replayed: true})
		w.replayAt[i]++
	}
	for _, m := range due {
		n := w.nodes[m.to]
		if m.probe.IsValid() {
			if n.m != nil {
				other := 1 - m.to
				answered := w.reach(m.to, other) && w.nodes[other].addrs[m.probe]
				free := !answered && w.witnessReachable(m.to)
				w.logf("%s: probe %v free=%v", n.name, m.probe, free)
				w.apply(m.to, n.m.Probed(m.probe, free))
			}
			continue
		}
		if n.m == nil || !n.linkUp || n.cut || w.split {
			continue
		}
		if m.h == nil {
			w.apply(m.to, n.m.Refused())
			continue
		}
		r := &w.replayed[m.to]
		if last, ok := n.seen[m.h.BootID]; ok && m.h.Seq <= last {
			if m.replayed {
				r.guard++
			}
			continue // the Guard drops it as a replay
		}
		n.seen[m.h.BootID] = m.h.Seq
		acts, drop := n.m.Heartbeat(m.h)
		if m.replayed && drop == heartbeat.Unproven {
			r.unproven++
		} else if m.replayed {
			r.acted++
		}
		w.apply(m.to, acts)
	}
	for i, n := range w.nodes {
		if n.m != nil {
			w.reportWitness(i)
			w.apply(i, n.m.Tick(1))
		}
	}
}

// reach reports whether machine i's frames reach machine j on the LAN.
func (w *world) reach(i, j int) bool {
	a, b := w.nodes[i], w.nodes[j]
	return a.linkUp && b.linkUp && !a.cut && !b.cut
}

// witnessReachable reports whether node i reaches the witness.
func (w *world) witnessReachable(i int) bool {
	n := w.nodes[i]
	return n.linkUp && !n.cut && !n.noWitness && !w.witnessDown
}

// reportWitness tells node i's daemon, if it has a witness, whether
// the witness answers, when that changed since it was last told.
func (w *world) reportWitness(i int) {
	n := w.nodes[i]
	if !w.cfg[i].Witness {
		return
	}
	ok := 0
	if w.witnessReachable(i) {
		ok = 1
	}
	if ok != n.witnessSeen {
		n.witnessSeen, n.witnessSince = ok, w.now
	}
	if ok == n.witness || (n.witness != -1 && w.now-n.witnessSince < n.witnessLag) {
		return
	}
	n.witness = ok
	if ok == 0 {
		w.logf("%s: witness unreachable", n.name)
	}
	w.apply(i, n.m.Witness(ok == 1))
}

func (w *world) setLink(i int, up bool) {
	n := w.nodes[i]
	n.linkUp = up
	if n.m != nil {
		w.apply(i, n.m.Link(up))
	}
}

// doubles lists the VIPs that are on both machines.
func (w *world) doubles() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range sorted(w.nodes[0].addrs) {
		if w.nodes[1].addrs[p] {
			out = append(out, p)
		}
	}
	return out
}

func (w *world) describe() string {
	var parts []string
	for _, n := range w.nodes {
		st := "down"
		if n.m != nil {
			st = n.m.State().String()
			if f := n.m.Fault(); f == FaultWitness {
				st += ":" + f
			}
		}
		parts = append(parts, fmt.Sprintf("%s(%s) %v", n.name, st, sorted(n.addrs)))
	}
	return strings.Join(parts, "  ")
}

func sorted(set map[netip.Prefix]bool) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return strings.Compare(a.String(), b.String()) })
	return out
}
