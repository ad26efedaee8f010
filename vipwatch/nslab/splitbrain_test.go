package nslab

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// witnessYAML gives both nodes a witness: no targets, so each takes its
// default gateway (the lab bridge's address); a round every 100ms, lost
// after two unanswered (50ms timeout each), and a node cut off from it
// releases its VIPs 2s after it notices.
const witnessYAML = `witness: {method: arp, interval: 100ms, timeout: 50ms, fall: 2}
fault_release_after: 2s
`

// holderWatch samples, every few milliseconds, which machines hold
// each VIP, and remembers every sample in which a VIP was on both.
type holderWatch struct {
	samples int
	doubles []string // "t=1.234s 198.51.100.10/24", in order
	none    map[netip.Prefix]int
}

// watchHolders samples the holders of vips for dur.
func (d *drill) watchHolders(dur time.Duration, vips ...netip.Prefix) holderWatch {
	d.t.Helper()
	w := holderWatch{none: map[netip.Prefix]int{}}
	start := time.Now()
	for time.Since(start) < dur {
		a1, err := d.lab.Addrs(d.lab.FE1)
		if err != nil {
			d.t.Fatal(err)
		}
		a2, err := d.lab.Addrs(d.lab.FE2)
		if err != nil {
			d.t.Fatal(err)
		}
		w.samples++
		for _, v := range vips {
			on1, on2 := a1[v.Addr()] != nil, a2[v.Addr()] != nil
			switch {
			case on1 && on2:
				w.doubles = append(w.doubles, fmt.Sprintf("t=%.3fs %v", time.Since(start).Seconds(), v))
			case !on1 && !on2:
				w.none[v]++
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return w
}

// status runs `vipwatch status` on node.
func (d *drill) status(node string) string {
	d.t.Helper()
	cfg, err := d.lab.Config(d.v, node, true)
	if err != nil {
		d.t.Fatal(err)
	}
	out, err := d.lab.Run(context.Background(), d.lab.NS(node), d.v.Binary, "status", "--config", cfg)
	if err != nil {
		d.t.Fatal(err)
	}
	return out
}

// neighbourOf waits until the client's neighbour entry for vip names
// node's MAC.
func (d *drill) neighbourOf(vip netip.Prefix, node string) {
	d.t.Helper()
	var mac, state string
	err := WaitFor(3*time.Second, fmt.Sprintf("the client's neighbour entry for %v to name %s", vip, node), func() (bool, error) {
		var err error
		mac, state, err = d.lab.Neighbour(d.lab.Client, vip.Addr())
		return mac == d.macs[node], err
	})
	if err != nil {
		d.t.Fatalf("%v (entry now: %q %s; fe1 %s, fe2 %s)", err, mac, state, d.macs["fe1"], d.macs["fe2"])
	}
}

// requestTo checks that the client's HTTP request to vip is answered
// by node.
func (d *drill) requestTo(vip netip.Prefix, node string) {
	d.t.Helper()
	url := fmt.Sprintf("http://%s/", netip.AddrPortFrom(vip.Addr(), HTTPPort))
	var body string
	err := WaitFor(3*time.Second, fmt.Sprintf("an answer from %s on %v", node, vip), func() (bool, error) {
		out, err := d.lab.Run(context.Background(), d.lab.Client, "curl", "-g", "-s", "-m", "0.5", url)
		body = strings.TrimSpace(out)
		return err == nil && body == node, err
	})
	if err != nil {
		d.t.Fatalf("%v (last answer %q)", err, body)
	}
}

// TestSplitBrain runs the split-brain drills of issue 7 on one lab with
// a witness, in order; each leaves VIP1 on fe1 and VIP2 on fe2.
func TestSplitBrain(t *testing.T) {
	d := newDrill(t, "s")
	d.v.Extra = witnessYAML
	d.startPair()
	d.requestTo(VIP2, "fe2") // the client learns VIP2's MAC too

	t.Run("heartbeat partition", func(t *testing.T) {
		d.t = t
		if err := d.lab.BlockHeartbeats(true); err != nil {
			t.Fatal(err)
		}
		unblocked := false
		defer func() {
			if !unblocked {
				d.lab.BlockHeartbeats(false)
			}
		}()
		// Both sides see the other go silent; both still reach the
		// witness and each other's VIPs on the LAN. Ten dead intervals.
		w := d.watchHolders(3*time.Second, VIP1, VIP2)
		if len(w.doubles) > 0 {
			t.Errorf("a VIP was on both machines in %d of %d samples, first %s", len(w.doubles), w.samples, w.doubles[0])
		}
		if len(w.none) > 0 {
			t.Errorf("a VIP was on neither machine: %v samples of %d", w.none, w.samples)
		}
		t.Logf("%d samples, none with a VIP on both machines or on neither", w.samples)
		st := d.status("fe2")
		for _, want := range []string{"partner fe1", "  down  ", "witness arp 198.51.100.1: reachable", "198.51.100.10/24     fe1        fe1", "198.51.100.20/24     fe2        fe2"} {
			if !strings.Contains(st, want) {
				t.Errorf("fe2's status during the partition lacks %q:\n%s", want, st)
			}
		}
		if strings.Contains(st, "VIP probes 0 ") || strings.Contains(st, "  answered 0  probe errors") {
			t.Errorf("fe2 shows no answered VIP probes during the partition:\n%s", st)
		}
		if err := d.lab.BlockHeartbeats(false); err != nil {
			t.Fatal(err)
		}
		unblocked = true
		w = d.watchHolders(time.Second, VIP1, VIP2)
		if len(w.doubles) > 0 || len(w.none) > 0 {
			t.Errorf("after the partition: doubles %v, on neither %v", w.doubles, w.none)
		}
		if st := d.status("fe2"); !strings.Contains(st, "  up  ") {
			t.Errorf("fe2 does not see fe1 up after the partition:\n%s", st)
		}
	})

	t.Run("cut one node", func(t *testing.T) {
		d.t = t
		if err := d.lab.Detach(d.lab.FE1, true); err != nil {
			t.Fatal(err)
		}
		attached := false
		defer func() {
			if !attached {
				d.lab.Detach(d.lab.FE1, false)
			}
		}()
		// fe1 keeps carrier: only its witness tells it it is cut off.
		// fe2 finds VIP1 unanswered and claims it; fe1 goes to fault
		// and releases everything after fault_release_after. fe1 never
		// claims VIP2: its probes of VIP2 get no answer, but neither
		// does the witness.
		w := d.watchHolders(1500*time.Millisecond, VIP2)
		if len(w.doubles) > 0 || len(w.none) > 0 {
			t.Errorf("while fe1 was cut off VIP2 was on both machines in %d samples, on neither in %d (of %d)", len(w.doubles), w.none[VIP2], w.samples)
		}
		d.holders(VIP1, "fe2")
		d.holders(VIP2, "fe2")
		err := WaitFor(5*time.Second, "fe1 to release everything", func() (bool, error) {
			a, err := d.lab.Addrs(d.lab.FE1)
			return a[VIP1.Addr()] == nil && a[VIP2.Addr()] == nil, err
		})
		if err != nil {
			t.Fatal(err)
		}
		if st := d.status("fe1"); !strings.Contains(st, "state fault") || !strings.Contains(st, "FAULT: no witness answers") || !strings.Contains(st, ": unreachable") {
			t.Errorf("fe1's status while cut off:\n%s", st)
		}
		d.neighbourOf(VIP1, "fe2")
		d.requestTo(VIP1, "fe2")

		if err := d.lab.Detach(d.lab.FE1, false); err != nil {
			t.Fatal(err)
		}
		attached = true
		// Reconnected, fe1 holds nothing, so no VIP is ever on both;
		// VIP1 comes home by preemption (fe2 releases first).
		w = d.watchHolders(1500*time.Millisecond, VIP1, VIP2)
		if len(w.doubles) > 0 {
			t.Errorf("after reconnecting a VIP was on both machines: %v", w.doubles)
		}

		// Heal: home VIPs are home, the client's neighbour entries name
		// their holders, and requests reach them.
		d.holders(VIP1, "fe1")
		d.holders(VIP2, "fe2")
		d.neighbourOf(VIP1, "fe1")
		d.neighbourOf(VIP2, "fe2")
		d.requestTo(VIP1, "fe1")
		d.requestTo(VIP2, "fe2")
	})

	t.Run("short cut: home keeps the VIP both hold", func(t *testing.T) {
		d.t = t
		if err := d.lab.Detach(d.lab.FE1, true); err != nil {
			t.Fatal(err)
		}
		attached := false
		defer func() {
			if !attached {
				d.lab.Detach(d.lab.FE1, false)
			}
		}()
		// fe2 claims VIP1 and the client follows it, while fe1, in
		// fault but within fault_release_after (2s), keeps it too.
		err := WaitFor(3*time.Second, "fe2 to claim VIP1", func() (bool, error) { return d.lab.Holds(d.lab.FE2, VIP1) })
		if err != nil {
			t.Fatal(err)
		}
		d.neighbourOf(VIP1, "fe2")
		if ok, err := d.lab.Holds(d.lab.FE1, VIP1); err != nil || !ok {
			t.Fatalf("fe1 no longer holds VIP1 %v after the cut; the drill needs both to hold it (%v)", time.Second, err)
		}
		if err := d.lab.Detach(d.lab.FE1, false); err != nil {
			t.Fatal(err)
		}
		attached = true
		healed := time.Now()
		// The heal rule: fe1 (home) keeps VIP1 and announces it at
		// once; fe2 releases it as soon as it hears fe1.
		d.holders(VIP1, "fe1")
		released := time.Since(healed)
		d.neighbourOf(VIP1, "fe1")
		t.Logf("fe2 released VIP1 %.0fms after the cut healed (witness round up to 100ms, then one heartbeat)", released.Seconds()*1000)
		if released > time.Second {
			t.Errorf("fe2 released VIP1 %v after the heal; want it within a witness round and a heartbeat (generously, 1s)", released)
		}
		d.requestTo(VIP1, "fe1")
		d.holders(VIP2, "fe2")
		if st := d.status("fe2"); !strings.Contains(st, "198.51.100.10/24     fe1        fe1") {
			t.Errorf("fe2's status after the heal:\n%s", st)
		}
	})
}
