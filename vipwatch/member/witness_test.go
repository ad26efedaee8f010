package member

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ringfront/ringfront/vipwatch/probe"
)

// fakeLAN answers witness rounds and VIP probes: a VIP answers when a
// node other than the asker has it in its address table, the witness
// answers every node whose path to it is not cut. A cut node reaches
// nobody and nobody reaches it.
type fakeLAN struct {
	mu    sync.Mutex // guards cut
	cut   map[string]bool
	nodes map[string]*fakeAddrs
}

func (l *fakeLAN) setCut(node string, cut bool) {
	l.mu.Lock()
	l.cut[node] = cut
	l.mu.Unlock()
}

// lanAsker is one node's prober on a fakeLAN.
type lanAsker struct {
	lan     *fakeLAN
	node    string
	witness bool
}

func (a lanAsker) Ask(targets []netip.Addr, timeout time.Duration) (probe.Answers, error) {
	time.Sleep(time.Millisecond) // an answer's round trip
	ans := probe.Answers{}
	a.lan.mu.Lock()
	cut := a.lan.cut[a.node]
	a.lan.mu.Unlock()
	for _, t := range targets {
		switch {
		case cut:
		case a.witness:
			ans[t] = net.HardwareAddr{2, 0, 0, 0, 0, 1}
		default:
			for name, addrs := range a.lan.nodes {
				a.lan.mu.Lock()
				gone := a.lan.cut[name]
				a.lan.mu.Unlock()
				if name == a.node || gone {
					continue
				}
				addrs.mu.Lock()
				for p := range addrs.set {
					if p.Addr() == t {
						ans[t] = net.HardwareAddr{2, 0, 0, 0, 0, 2}
					}
				}
				addrs.mu.Unlock()
			}
		}
	}
	if len(ans) < len(targets) {
		time.Sleep(timeout - time.Millisecond) // waits out the timeout for the rest
	}
	return ans, nil
}

func witnessConfig(node string) Config {
	c := testConfig(node)
	c.Witness = &WitnessConfig{Targets: []netip.Addr{gw}, Interval: 100 * time.Millisecond, Timeout: 50 * time.Millisecond, Fall: 2}
	c.FaultReleaseAfter = time.Second
	if err := c.Validate(); err != nil {
		panic(err)
	}
	return c
}

// startWitnessPair starts fe1 and fe2 with witnesses on lan.
func startWitnessPair(t *testing.T, n *memNet, fx *effects, lan *fakeLAN) (a, b *testNode) {
	t.Helper()
	start := func(node string) *testNode {
		return startNodeWith(t, n, fx, witnessConfig(node), func(m *Member) {
			m.witnessAsk = lanAsker{lan: lan, node: node, witness: true}
			m.vipAsk4 = lanAsker{lan: lan, node: node}
		})
	}
	a = start("fe1")
	lan.nodes["fe1"] = a.addrs
	b = start("fe2")
	lan.nodes["fe2"] = b.addrs
	return a, b
}

// TestWitnessPartition cuts the heartbeat path both ways while the LAN
// works: each daemon sees its partner go silent, but its probes find
// the partner's VIP still answered, so neither claims anything.
func TestWitnessPartition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx, n := newEffects(), newMemNet()
		lan := &fakeLAN{cut: map[string]bool{}, nodes: map[string]*fakeAddrs{}}
		a, b := startWitnessPair(t, n, fx, lan)
		time.Sleep(time.Second)
		// Nothing is claimed before the first witness round answers.
		check(t, fx, "garp",
			"0.001s fe1: ip addr replace 198.51.100.10/24 dev eth0 label eth0:vw",
			"0.001s fe2: ip addr replace 198.51.100.20/24 dev eth0 label eth0:vw",
		)
		n.setMute(hb1, true)
		n.setMute(hb2, true)
		time.Sleep(3 * time.Second)
		check(t, fx, "garp")
		for _, tn := range []*testNode{a, b} {
			s := tn.m.Status()
			if s.Partner.Up || s.State != "running" || s.Witness == nil || s.Witness.State != "reachable" {
				t.Errorf("%s: state %s, partner up %v, witness %+v; want running, partner down, witness reachable", s.Node, s.State, s.Partner.Up, s.Witness)
			}
			if c := s.Counters; c.VIPProbes == 0 || c.VIPProbesAnswered != c.VIPProbes {
				t.Errorf("%s: %d VIP probes, %d answered; want some, all answered", s.Node, c.VIPProbes, c.VIPProbesAnswered)
			}
		}
		if !a.addrs.has(vip1) || a.addrs.has(vip2) || !b.addrs.has(vip2) || b.addrs.has(vip1) {
			t.Error("a VIP moved during the partition")
		}
		n.setMute(hb1, false)
		n.setMute(hb2, false)
		time.Sleep(time.Second)
		check(t, fx, "garp")
		a.stop(t)
		b.stop(t)
	})
}

// TestWitnessLost cuts fe1's path to the witness while heartbeats
// flow: fe1 goes to fault after witness.fall rounds, fe2 (which reaches
// the witness) claims fe1's VIP, and fe1 releases it as soon as fe2's
// heartbeat lists it. Back in reach of the witness, fe1 takes its VIP
// back. Then fe1 is cut off from everything: with fe2 silent too, it
// releases after fault_release_after.
func TestWitnessLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx, n := newEffects(), newMemNet()
		lan := &fakeLAN{cut: map[string]bool{}, nodes: map[string]*fakeAddrs{}}
		a, b := startWitnessPair(t, n, fx, lan)
		time.Sleep(time.Second)
		fx.take("")

		lan.setCut("fe1", true)
		time.Sleep(time.Second)
		// The rounds at 1.0s and 1.1s go unanswered (50ms timeout):
		// fault at 1.150s, and fe2 claims at once, fe1 releasing as
		// soon as it hears so.
		check(t, fx, "garp",
			"1.150s fe2: ip addr replace 198.51.100.10/24 dev eth0 label eth0:vw",
			"1.150s fe1: ip addr del 198.51.100.10/24 dev eth0",
		)
		s := a.m.Status()
		if s.State != "fault" || s.Fault != "no-witness" || s.Witness.State != "unreachable" || s.Counters.WitnessLost != 1 {
			t.Errorf("fe1 status: state %s fault %q witness %+v lost %d", s.State, s.Fault, s.Witness, s.Counters.WitnessLost)
		}
		if out := FormatStatus(s); !containsAll(out, "FAULT: no witness answers", "witness arp 198.51.100.1: unreachable") {
			t.Errorf("status table:\n%s", out)
		}
		reg := prometheus.NewRegistry()
		if err := a.m.Register(reg); err != nil {
			t.Fatal(err)
		}
		want := `
# HELP vipwatch_fault 1 while the daemon is in fault for this reason.
# TYPE vipwatch_fault gauge
vipwatch_fault{reason="link-down"} 0
vipwatch_fault{reason="no-witness"} 1
# HELP vipwatch_witness_lost_total Times the witness was lost (witness.fall unanswered rounds in a row): fault.
# TYPE vipwatch_witness_lost_total counter
vipwatch_witness_lost_total 1
# HELP vipwatch_witness_reachable 1 while a witness answers; 0 otherwise (none answers, no verdict yet, or no witness: vipwatch_witness_state tells them apart).
# TYPE vipwatch_witness_reachable gauge
vipwatch_witness_reachable 0
# HELP vipwatch_witness_state 1 for the witness's state (none: no witness configured; unknown: no verdict yet; reachable; unreachable: fault), 0 for the others.
# TYPE vipwatch_witness_state gauge
vipwatch_witness_state{state="none"} 0
vipwatch_witness_state{state="reachable"} 0
vipwatch_witness_state{state="unknown"} 0
vipwatch_witness_state{state="unreachable"} 1
`
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "vipwatch_fault", "vipwatch_witness_reachable", "vipwatch_witness_state", "vipwatch_witness_lost_total"); err != nil {
			t.Error(err)
		}

		// The first round after the cut heals answers at 2.001s: fe1
		// starts a new run and reclaims its VIP (preempt).
		lan.setCut("fe1", false)
		time.Sleep(time.Second)
		check(t, fx, "garp",
			"2.001s fe2: ip addr del 198.51.100.10/24 dev eth0",
			"2.001s fe1: ip addr replace 198.51.100.10/24 dev eth0 label eth0:vw",
		)

		// Cut off entirely: no witness, no heartbeats either way.
		lan.setCut("fe1", true)
		n.setMute(hb1, true)
		n.setMute(hb2, true)
		time.Sleep(3 * time.Second)
		// fe2 probes VIP1 half a dead interval into the silence
		// (3.150s), gets no answer by 3.200s, claims at 3.300s. fe1 is
		// in fault from 3.150s and, not hearing fe2, releases a second
		// (fault_release_after) later.
		check(t, fx, "garp",
			"3.300s fe2: ip addr replace 198.51.100.10/24 dev eth0 label eth0:vw",
			"4.150s fe1: ip addr del 198.51.100.10/24 dev eth0",
		)
		a.stop(t)
		b.stop(t)
	})
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
