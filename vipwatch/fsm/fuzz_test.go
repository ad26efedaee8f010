package fsm

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ringfront/ringfront/vipwatch/heartbeat"
)

// FuzzHeartbeat gives a daemon one heartbeat with arbitrary fields (its
// ack and echo, version 2's new field, among them) after one of a few
// histories, and checks the liveness rule of issue 20: a heartbeat that
// is not from the partner boot proved in this run and names no
// heartbeat of the run (ack or echo naming this daemon's boot and a
// sequence number it sent since the run began) is unproven, and
// nothing the daemon does differs from a twin that never got it, but
// for its sends. Whatever the fields, nothing panics.
func FuzzHeartbeat(f *testing.F) {
	// A recorded "stopping" of an old partner boot (issue 20's second
	// hole), and the partner's genuine answer to this run.
	f.Add(uint8(0), uint8(heartbeat.StateStopping), uint8(0), uint64(9), uint64(40), uint64(5), uint64(30), uint64(0), uint64(0), uint8(0), uint8(2))
	f.Add(uint8(1), uint8(heartbeat.StateRunning), uint8(0), uint64(2), uint64(7), uint64(1), uint64(3), uint64(1), uint64(3), uint8(3), uint8(2))
	f.Add(uint8(2), uint8(heartbeat.StateFault), uint8(heartbeat.FlagReclaim), uint64(3), uint64(1), uint64(0), uint64(0), uint64(1), uint64(4), uint8(1), uint8(2))
	f.Add(uint8(3), uint8(heartbeat.StateRunning), uint8(heartbeat.FlagReclaim), uint64(3), uint64(1), uint64(1), uint64(2), uint64(0), uint64(0), uint8(1), uint8(1))
	f.Fuzz(func(t *testing.T, history, state, flags uint8, boot, seq, ackBoot, ackSeq, echoBoot, echoSeq uint64, holds, version uint8) {
		h := &heartbeat.Heartbeat{
			Version: 1 + version%2,
			State:   heartbeat.StateStarting + heartbeat.State(state%4),
			Flags:   heartbeat.Flags(flags),
			Node:    "b",
			BootID:  boot,
			Seq:     seq,
			AckBoot: ackBoot,
			AckSeq:  ackSeq,
		}
		if h.Version >= 2 {
			h.EchoBoot, h.EchoSeq = echoBoot, echoSeq
		}
		for i, p := range []netip.Prefix{vipA, vipB} {
			if holds&(1<<i) != 0 {
				h.Holds = append(h.Holds, p)
			}
		}
		m, twin := fuzzHistory(history), fuzzHistory(history)
		floor := m.floor
		names := func(b, s uint64) bool { return b == m.cfg.BootID && s >= floor && s <= m.seq }
		proved := m.heardRun && m.partner.BootID == h.BootID
		acts, drop := m.Heartbeat(h)
		if proved || names(h.AckBoot, h.AckSeq) || names(h.EchoBoot, h.EchoSeq) {
			return // it may prove the partner live: anything goes
		}
		if drop != heartbeat.Unproven {
			t.Fatalf("heartbeat %+v naming nothing of this run (boot %d, seqs %d-%d): %v, want unproven", h, m.cfg.BootID, floor, m.seq, drop)
		}
		got, want := effects(acts), effects(nil)
		for range 4 * m.cfg.DeadTicks {
			got = append(got, effects(m.Tick(1))...)
			want = append(want, effects(twin.Tick(1))...)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("after the unproven heartbeat %+v (-twin +daemon):\n%s", h, diff)
		}
		if m.State() != twin.State() || !slices.Equal(m.Holds(), twin.Holds()) || m.PartnerUp() != twin.PartnerUp() {
			t.Fatalf("after the unproven heartbeat %+v: %v %v up=%v, twin %v %v up=%v", h, m.State(), m.Holds(), m.PartnerUp(), twin.State(), twin.Holds(), twin.PartnerUp())
		}
	})
}

// fuzzHistory builds daemon a (boot 1) after one of four histories:
// alone since it started; with partner boot 2 proved and holding its
// VIP; the same after a's link flapped (a new run: boot 2 must prove
// itself again); and with boot 2 proved and then silent, a holding
// both VIPs.
func fuzzHistory(n uint8) *Machine {
	cfg := Config{Home: []netip.Prefix{vipA}, Partner: []netip.Prefix{vipB}, BootID: 1, HeartbeatTicks: 1, DeadTicks: 3,
		Preempt: true, GARPCount: 1, GARPIntervalTicks: 1, GARPRefreshTicks: 5}
	m := New(cfg)
	m.Tick(1)
	if n%4 == 0 {
		return m
	}
	b := func(seq uint64) *heartbeat.Heartbeat {
		return &heartbeat.Heartbeat{Version: heartbeat.Version, State: heartbeat.StateRunning, Node: "b", BootID: 2, Seq: seq,
			AckBoot: 1, AckSeq: m.seq, Holds: []netip.Prefix{vipB}}
	}
	m.Heartbeat(b(1))
	m.Tick(1)
	m.Heartbeat(b(2))
	m.Tick(1)
	switch n % 4 {
	case 2:
		m.Link(false)
		m.Tick(1)
		m.Link(true)
		m.Tick(1)
	case 3:
		for range cfg.DeadTicks + 1 {
			m.Tick(1)
		}
	}
	return m
}

// effects renders actions but sends, which an unproven heartbeat
// changes (it is answered, and the answer takes a sequence number).
func effects(acts []Action) []string {
	var out []string
	for _, a := range acts {
		if a.Kind != Send {
			out = append(out, fmt.Sprint(a))
		}
	}
	return out
}
