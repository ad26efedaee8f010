package member

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ringfront/ringfront/vipwatch/heartbeat"
)

// replay plays tape to dst from a machine on the LAN, one datagram per
// period, in the background; the returned function waits for the end.
func replay(n *memNet, tape [][]byte, dst *testNode, period time.Duration) func() {
	evil := n.listen(netip.MustParseAddrPort("198.51.100.66:7201"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer evil.Close()
		for _, b := range tape {
			evil.WriteTo(b, dst.m.conn.LocalAddr())
			time.Sleep(period)
		}
	}()
	return func() { <-done }
}

// TestRestartUnderReplay is issue 20 on the daemon (real codec, Guard
// and state machine; fake network, addresses and clock). An attacker
// records fe2's heartbeats, among them the "stopping" of a graceful
// restart. fe1 restarts twice while the recording is played to it:
// first with fe2 running (fe1 must not take fe2's VIP on the old
// "stopping", and gets its own back as after any restart), then with
// fe2 dead (fe1 must hold both VIPs as soon as after a restart with
// nothing replayed: the dead interval, 300ms).
func TestRestartUnderReplay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx, n, a, b := startPair(t)

		stopRecording := n.record(hb2)
		time.Sleep(2 * time.Second)
		b.stop(t)
		b = startNode(t, n, fx, testConfig("fe2"))
		time.Sleep(time.Second)
		tape := stopRecording()
		check(t, fx, "garp",
			"3.000s fe2: ip addr del 198.51.100.20/24 dev eth0",
			"3.000s fe1: ip addr replace 198.51.100.20/24 dev eth0 label eth0:vw",
			"3.000s fe1: ip addr del 198.51.100.20/24 dev eth0",
			"3.000s fe2: ip addr replace 198.51.100.20/24 dev eth0 label eth0:vw",
		)
		if len(tape) < 30 {
			t.Fatalf("recorded %d heartbeats, want 30 or more", len(tape))
		}

		// 4.000s: fe1 restarts (SIGTERM, start) with fe2's recording
		// played to it, every heartbeat of it (and the "stopping") new
		// to fe1's fresh Guard. fe2 takes fe1's VIP while fe1 is down,
		// as after any restart, and hands it back; fe1 never takes fe2's.
		a.stop(t)
		a = startNode(t, n, fx, testConfig("fe1"))
		replayed := replay(n, tape, a, 10*time.Millisecond)
		time.Sleep(time.Second)
		replayed()
		check(t, fx, "garp",
			"4.000s fe1: ip addr del 198.51.100.10/24 dev eth0",
			"4.000s fe2: ip addr replace 198.51.100.10/24 dev eth0 label eth0:vw",
			"4.000s fe2: ip addr del 198.51.100.10/24 dev eth0",
			"4.000s fe1: ip addr replace 198.51.100.10/24 dev eth0 label eth0:vw",
		)
		// The recording's 20 or so heartbeats of fe2's old boot and its
		// "stopping" are new to fe1's Guard and prove nothing (the
		// stopping's second copy is a replay); those of fe2's current
		// boot are older than what fe1 has had from fe2 itself, and the
		// Guard drops them.
		st := a.m.Status()
		if got := st.Counters.HeartbeatsDropped["unproven"]; got < 20 {
			t.Errorf("fe1 counted %d unproven heartbeats, want 20 or more", got)
		}
		if !st.Partner.Up || st.Partner.BootID != b.m.Status().BootID {
			t.Errorf("fe1's partner: up %v boot %s, want up with fe2's boot %s", st.Partner.Up, st.Partner.BootID, b.m.Status().BootID)
		}

		// fe2 dies at 5.000s (SIGKILL, then ExecStopPost's release-all:
		// nothing more from it). fe1 restarts twice, once alone and once
		// with the recording played to it, and holds both VIPs at the
		// same instant after each start.
		n.setMute(hb2, true)
		b.cancel()
		<-b.done
		time.Sleep(time.Second)
		check(t, fx, "garp",
			"5.000s fe2: ip addr del 198.51.100.20/24 dev eth0",
			"5.300s fe1: ip addr replace 198.51.100.20/24 dev eth0 label eth0:vw",
		)
		for _, replayed := range []bool{false, true} {
			a.stop(t)
			a = startNode(t, n, fx, testConfig("fe1"))
			if replayed {
				defer replay(n, tape, a, 50*time.Millisecond)()
			}
			time.Sleep(time.Second)
			start := map[bool]string{false: "6.000s", true: "7.000s"}[replayed]
			// The dead interval, less the tick the daemon's clock starts on.
			claimed := map[bool]string{false: "6.290s", true: "7.290s"}[replayed]
			check(t, fx, "garp",
				start+" fe1: ip addr del 198.51.100.10/24 dev eth0",
				start+" fe1: ip addr del 198.51.100.20/24 dev eth0",
				claimed+" fe1: ip addr replace 198.51.100.10/24 dev eth0 label eth0:vw",
				claimed+" fe1: ip addr replace 198.51.100.20/24 dev eth0 label eth0:vw",
			)
		}
		if got := a.m.Status().Counters.HeartbeatsDropped["unproven"]; got < 19 {
			t.Errorf("fe1 counted %d unproven heartbeats in the second restart's first second, want 19 or more", got)
		}
		a.stop(t)
	})
}

// v1Peer is a partner daemon from before the echo, as far as fe1 can
// tell: it sends version 1 heartbeats every 100ms, and at once to a
// boot it has not heard before, that acknowledge the last heartbeat it
// heard; it holds its home VIP, and drops every other version as
// unknown (it counts them).
type v1Peer struct {
	conn    *memConn
	mu      sync.Mutex // guards dropped and heard
	dropped int        // datagrams of another version
	heard   []*heartbeat.Heartbeat
}

func (p *v1Peer) run(dst net.Addr, stop <-chan struct{}) {
	newBoot := make(chan struct{}, 1)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := p.conn.ReadFrom(buf)
			if err != nil {
				return
			}
			h, err := heartbeat.Decode(buf[:n], testKey)
			p.mu.Lock()
			switch {
			case err != nil:
			case h.Version != 1:
				p.dropped++
			default:
				if len(p.heard) == 0 || p.heard[len(p.heard)-1].BootID != h.BootID {
					select {
					case newBoot <- struct{}{}:
					default:
					}
				}
				p.heard = append(p.heard, h)
			}
			p.mu.Unlock()
		}
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for seq := uint64(1); ; seq++ {
		h := &heartbeat.Heartbeat{Version: 1, State: heartbeat.StateRunning, Node: "fe2", BootID: 77, Seq: seq, Holds: []netip.Prefix{vip2}}
		p.mu.Lock()
		if len(p.heard) > 0 {
			last := p.heard[len(p.heard)-1]
			h.AckBoot, h.AckSeq = last.BootID, last.Seq
		}
		p.mu.Unlock()
		b, err := heartbeat.Encode(nil, h, testKey)
		if err != nil {
			panic(err)
		}
		p.conn.WriteTo(b, dst)
		select {
		case <-stop:
			p.conn.Close()
			return
		case <-tick.C:
		case <-newBoot:
		}
	}
}

// TestVersion1Partner runs fe1 against a partner that speaks heartbeat
// version 1, as in a pair half upgraded: fe1 speaks version 1 to it once
// it has heard it, takes its ack as proof, claims its home VIP without
// waiting out the dead interval, and never takes the partner's.
func TestVersion1Partner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx, n := newEffects(), newMemNet()
		// fe1 first, settled: its first heartbeats (version 2, sent
		// before it heard anyone) are lost, and the peer starts talking
		// to a fe1 that is listening. Started the other way round, which
		// of the two spoke first was the scheduler's choice, and so was
		// whether fe1 heard the peer at 0s or at its next tick (0.1s).
		a := startNode(t, n, fx, testConfig("fe1"))
		synctest.Wait()
		peer := &v1Peer{conn: n.listen(hb2)}
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { defer close(done); peer.run(net.UDPAddrFromAddrPort(hb1), stop) }()
		time.Sleep(time.Second)
		check(t, fx, "garp", "0.000s fe1: ip addr replace 198.51.100.10/24 dev eth0 label eth0:vw")
		st := a.m.Status()
		if !st.Partner.Up || st.Partner.WireVersion != 1 || st.Partner.BootID != "000000000000004d" {
			t.Errorf("fe1's partner: up %v, wire version %d, boot %s; want up, 1, 4d", st.Partner.Up, st.Partner.WireVersion, st.Partner.BootID)
		}
		if out := FormatStatus(st); !strings.Contains(out, "partner speaks heartbeat version 1") {
			t.Errorf("status does not say the partner speaks version 1:\n%s", out)
		}
		close(stop)
		<-done
		peer.mu.Lock()
		defer peer.mu.Unlock()
		// At most fe1's first heartbeat, sent before it heard the peer,
		// is version 2; after that it speaks version 1, acknowledging
		// what it heard last.
		if peer.dropped > 1 || len(peer.heard) < 9 {
			t.Errorf("the version 1 peer dropped %d heartbeats of another version and heard %d", peer.dropped, len(peer.heard))
		}
		last := peer.heard[len(peer.heard)-1]
		if last.AckBoot != 77 || last.State != heartbeat.StateRunning || !slices.Equal(last.Holds, []netip.Prefix{vip1}) {
			t.Errorf("fe1's last heartbeat to the version 1 peer: %+v", last)
		}
		a.stop(t)
	})
}
