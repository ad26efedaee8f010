package nslab

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/packet"
)

var replayRounds = flag.Int("replay-rounds", 2, "TestReplayAtRestart: restarts of the survivor measured without and with a replay, each")

// recorder captures what one frontend sends on the LAN from the
// bridge's side of its cable, as a switch's mirror port (or any host
// that floods the switch's table) would: the UDP payloads of its
// heartbeats to its partner.
type recorder struct {
	conn *packet.Conn
	done chan struct{}

	mu   sync.Mutex // guards tape
	tape [][]byte
}

// record starts recording the heartbeats src sends (to the heartbeat
// port) on ns's cable.
func (l *Lab) record(ns string, src netip.Addr) (*recorder, error) {
	r := &recorder{done: make(chan struct{})}
	err := l.Do(l.Bridge, func() error {
		ifi, err := net.InterfaceByName(l.Port(ns))
		if err != nil {
			return err
		}
		// ETH_P_ALL: the bridge takes its ports' frames before taps of
		// one protocol see them.
		r.conn, err = packet.Listen(ifi, packet.Raw, syscall.ETH_P_ALL, nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("opening a packet socket on %s's cable: %w", ns, err)
	}
	go func() {
		defer close(r.done)
		buf := make([]byte, 2048)
		for {
			n, _, err := r.conn.ReadFrom(buf)
			if err != nil {
				return
			}
			if p, ok := heartbeatPayload(buf[:n], src); ok {
				r.mu.Lock()
				r.tape = append(r.tape, p)
				r.mu.Unlock()
			}
		}
	}()
	return r, nil
}

// heartbeatPayload returns the UDP payload of an Ethernet frame that
// carries an IPv4 packet from src to the heartbeat port.
func heartbeatPayload(frame []byte, src netip.Addr) ([]byte, bool) {
	if len(frame) < 14 || binary.BigEndian.Uint16(frame[12:]) != syscall.ETH_P_IP {
		return nil, false
	}
	b := frame[14:]
	if len(b) < 20 || b[0]>>4 != 4 || b[9] != syscall.IPPROTO_UDP {
		return nil, false
	}
	ihl := int(b[0]&0xf) * 4
	if ip, _ := netip.AddrFromSlice(b[12:16]); ip != src || len(b) < ihl+8 {
		return nil, false
	}
	udp := b[ihl:]
	if binary.BigEndian.Uint16(udp[2:]) != HeartbeatPort || int(binary.BigEndian.Uint16(udp[4:])) > len(udp) {
		return nil, false
	}
	return append([]byte(nil), udp[8:binary.BigEndian.Uint16(udp[4:])]...), true
}

// stop ends the recording and returns it.
func (r *recorder) stop() [][]byte {
	r.conn.Close()
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tape
}

// replay plays tape, one datagram per period, from the client machine
// to dst's heartbeat port, in the background, until the tape ends or
// the returned function is called (which waits for the player).
func (l *Lab) replay(t *testing.T, tape [][]byte, dst netip.Addr, period time.Duration) func() {
	t.Helper()
	var conn *net.UDPConn
	err := l.Do(l.Client, func() error {
		var err error
		conn, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, HeartbeatPort)))
		return err
	})
	if err != nil {
		t.Fatalf("opening the replay socket in %s: %v", l.Client, err)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		defer conn.Close()
		tick := time.NewTicker(period)
		defer tick.Stop()
		for _, b := range tape {
			conn.Write(b) // an ICMP error from a restart's gap is no matter
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(stop) }); <-done }
}

// claimTimes restarts node (SIGTERM, start) and returns how long after
// the start it held its home VIP and its partner's, sampling every
// 2ms for up to limit. During replaying, tape is played to it at the
// heartbeat interval.
func (d *drill) claimTimes(node string, tape [][]byte, limit time.Duration) (home, partner time.Duration) {
	d.t.Helper()
	p := d.procs[node]
	p.Signal(syscall.SIGTERM)
	if err := p.Wait(5 * time.Second); err != nil {
		d.t.Fatalf("%s after SIGTERM: %v", node, err)
	}
	s, err := d.lab.NewAddrSampler()
	if err != nil {
		d.t.Fatal(err)
	}
	defer s.Close()
	if tape != nil {
		// The attacker is already playing when the daemon starts.
		defer d.lab.replay(d.t, tape, FE1IP.Addr(), d.v.Interval)()
		time.Sleep(d.v.Interval)
	}
	start := time.Now()
	d.start(node, true)
	for time.Since(start) < limit && (home == 0 || partner == 0) {
		on, _, err := s.Sample(VIP1, VIP2)
		if err != nil {
			d.t.Fatal(err)
		}
		if on[0] && home == 0 {
			home = time.Since(start)
		}
		if on[1] && partner == 0 {
			partner = time.Since(start)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if home == 0 || partner == 0 {
		d.t.Fatalf("%s held home VIP after %v, partner's after %v (0: not within %v)", node, home, partner, limit)
	}
	return home, partner
}

// TestReplayAtRestart is issue 20 on a real pair with a witness
// (interval 100ms, dead_after 300ms). An attacker on the LAN without
// the key records fe2's heartbeats, including the two copies of the
// "stopping" that a graceful restart of fe2 sends. Then:
//
//   - fe1 restarts while fe2 runs and the recording plays to it fast:
//     fe1 never takes VIP2 (before the fix the old "stopping" made it
//     claim VIP2 while fe2 held it), and gets VIP1 back.
//   - fe2's machine dies; fe1 restarts alone and with the recording
//     playing to it at the heartbeat interval, -replay-rounds times
//     each: with the replay it holds its home VIP within the normal
//     start time (a restart without replay, plus a second for a loaded
//     machine) and fe2's within dead_after plus the probe time (same
//     second). Before the fix it held neither until the recording ran
//     out (5 s here).
func TestReplayAtRestart(t *testing.T) {
	d := newDrill(t, "p")
	d.v.Extra = witnessYAML
	d.start("fe1", true)
	d.start("fe2", true)
	d.settle()

	rec, err := d.lab.record(d.lab.FE2, FE2IP.Addr())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second)
	d.procs["fe2"].Signal(syscall.SIGTERM)
	if err := d.procs["fe2"].Wait(5 * time.Second); err != nil {
		t.Fatalf("fe2 after SIGTERM: %v", err)
	}
	d.start("fe2", true)
	d.holders(VIP2, "fe2")
	time.Sleep(time.Second)
	tape := rec.stop()
	t.Logf("recorded %d heartbeats of fe2", len(tape))
	if len(tape) < 40 {
		t.Fatalf("recorded %d heartbeats of fe2 in 5s, want 40 or more", len(tape))
	}

	t.Run("partner alive", func(t *testing.T) {
		d.t = t
		d.procs["fe1"].Signal(syscall.SIGTERM)
		if err := d.procs["fe1"].Wait(5 * time.Second); err != nil {
			t.Fatalf("fe1 after SIGTERM: %v", err)
		}
		// Five times the recorded pace: the old boot's "stopping" comes
		// about 0.8s into the replay.
		stop := d.lab.replay(t, tape, FE1IP.Addr(), d.v.Interval/5)
		defer stop()
		d.start("fe1", true)
		s, err := d.lab.NewAddrSampler()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var samples, doubles int
		for start := time.Now(); time.Since(start) < time.Duration(len(tape))*d.v.Interval/5+time.Second; samples++ {
			on1, on2, err := s.Sample(VIP2)
			if err != nil {
				t.Fatal(err)
			}
			if on1[0] && on2[0] {
				doubles++
			}
			time.Sleep(2 * time.Millisecond)
		}
		if doubles > 0 {
			t.Errorf("VIP2 was on both machines in %d of %d samples while the recording played", doubles, samples)
		}
		d.holders(VIP1, "fe1")
		d.holders(VIP2, "fe2")
		st := d.status("fe1")
		if !strings.Contains(st, "unproven heartbeats from fe2:") || strings.Contains(st, "unproven 0") {
			t.Errorf("fe1's status does not show the unproven heartbeats:\n%s", st)
		}
		metrics, err := d.lab.Run(context.Background(), d.lab.FE1, "curl", "-s", "-m", "2", "http://127.0.0.1:8054/metrics")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(metrics, `vipwatch_heartbeats_dropped_total{reason="unproven"} `) || strings.Contains(metrics, `vipwatch_heartbeats_dropped_total{reason="unproven"} 0`) ||
			!strings.Contains(metrics, "vipwatch_partner_heartbeat_version 2") {
			t.Errorf("fe1's /metrics lacks the unproven drops or the partner's heartbeat version")
		}
	})

	t.Run("partner dead", func(t *testing.T) {
		d.t = t
		// fe2's machine dies: its daemon is killed (release-all runs, as
		// systemd's ExecStopPost does) and its cable goes, so no ICMP
		// says its daemon is gone: fe1 takes VIP2 after dead_after and
		// a probe.
		d.procs["fe2"].Signal(syscall.SIGKILL)
		d.procs["fe2"].Wait(5 * time.Second)
		delete(d.procs, "fe2")
		d.releaseAll("fe2")
		if err := d.lab.SetCable(d.lab.FE2, false); err != nil {
			t.Fatal(err)
		}
		d.holders(VIP2, "fe1")

		limit := time.Duration(len(tape)) * d.v.Interval
		var plain, replayed [2][]time.Duration
		for range *replayRounds {
			for _, tp := range [][][]byte{nil, tape} {
				home, partner := d.claimTimes("fe1", tp, limit)
				r := &plain
				if tp != nil {
					r = &replayed
				}
				r[0], r[1] = append(r[0], home), append(r[1], partner)
			}
		}
		t.Logf("restart of fe1, fe2 dead, without a replay: home VIP after %v, fe2's after %v", ms(plain[0]), ms(plain[1]))
		t.Logf("restart of fe1, fe2 dead, with fe2's recording replayed: home VIP after %v, fe2's after %v", ms(replayed[0]), ms(replayed[1]))
		startTime := slowest(plain[0]) + time.Second
		takeover := d.v.DeadAfter + 50*time.Millisecond + time.Second // the witness timeout bounds a probe
		if got := slowest(replayed[0]); got > startTime {
			t.Errorf("with the replay fe1 held its home VIP after %v, more than a restart without it (%v) and a second", got, slowest(plain[0]))
		}
		if got := slowest(replayed[1]); got > takeover {
			t.Errorf("with the replay fe1 held fe2's VIP after %v, more than dead_after, a probe and a second (%v)", got, takeover)
		}
		if st := d.status("fe1"); !strings.Contains(st, "unproven heartbeats from fe2:") {
			t.Errorf("fe1's status does not show the unproven heartbeats:\n%s", st)
		}
	})
}

func slowest(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

// ms renders durations as milliseconds.
func ms(ds []time.Duration) string {
	var s []string
	for _, d := range ds {
		s = append(s, fmt.Sprintf("%.0fms", d.Seconds()*1000))
	}
	return strings.Join(s, " ")
}
