package nslab

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/packet"

	"github.com/ringfront/ringfront/vipwatch/heartbeat"
)

var replayRounds = flag.Int("replay-rounds", 2, "TestReplayAtRestart: how many kills of fe2 and restarts of fe1 to measure without and with a replay, each")

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
//   - it floods the pair with 50,000 datagrams in 5s (forged, random,
//     truncated, oversized, fragmented, replayed): nothing moves, and
//     fe1's memory grows by less than 4 MiB.
//   - fe1 restarts while fe2 runs and the recording plays to it fast:
//     fe1 never takes VIP2 (before the fix the old "stopping" made it
//     claim VIP2 while fe2 held it), and gets VIP1 back.
//   - fe2's daemon is killed (its machine lives on and refuses fe1's
//     heartbeats), -replay-rounds times without and with the recording
//     played to fe1: the replay does not delay its takeover of VIP2.
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
	d.startPair()

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

	t.Run("forged flood", func(t *testing.T) {
		d.t = t
		d.flood(tape)
	})

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

	t.Run("partner killed", func(t *testing.T) {
		d.t = t
		// fe2's daemon is killed while its machine lives: fe2's kernel
		// refuses fe1's heartbeats, and fe1 takes VIP2 once fe2 has
		// also been silent for an interval and a half, not dead_after.
		// The recording played to fe1 (twice as fast as heartbeats)
		// must not delay that. (fe2's kernel answers every refused
		// heartbeat: by default it sends six port unreachables to a
		// host and then one a second, so a second kill would wait for
		// its turn.)
		if _, err := d.lab.Run(context.Background(), d.lab.FE2, "sysctl", "-q", "-w", "net.ipv4.icmp_ratelimit=0"); err != nil {
			t.Fatal(err)
		}
		var took [2][]time.Duration
		for range *replayRounds {
			for i, replayed := range []bool{false, true} {
				took[i] = append(took[i], d.killTakeover(tape, replayed))
			}
		}
		t.Logf("fe1 took VIP2 after fe2's daemon was killed: %v without a replay, %v with fe2's recording replayed to fe1", ms(took[0]), ms(took[1]))
		if got := slowest(took[1]); got > d.v.DeadAfter+time.Second {
			t.Errorf("with the replay fe1 took VIP2 %v after fe2's daemon was killed; want it within dead_after and a second", got)
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

// killTakeover kills fe2's daemon, with the recording playing to fe1
// (twice as fast as heartbeats) if replayed, and returns how long fe1
// took to hold VIP2. Then it restarts fe2 and waits for the VIPs to be
// home again.
func (d *drill) killTakeover(tape [][]byte, replayed bool) time.Duration {
	d.t.Helper()
	s, err := d.lab.NewAddrSampler()
	if err != nil {
		d.t.Fatal(err)
	}
	defer s.Close()
	if replayed {
		defer d.lab.replay(d.t, tape, FE1IP.Addr(), d.v.Interval/2)()
		time.Sleep(d.v.Interval)
	}
	killed := time.Now()
	d.procs["fe2"].Signal(syscall.SIGKILL)
	d.procs["fe2"].Wait(5 * time.Second)
	var took time.Duration
	for took == 0 && time.Since(killed) < 5*time.Second {
		on1, _, err := s.Sample(VIP2)
		if err != nil {
			d.t.Fatal(err)
		}
		if on1[0] {
			took = time.Since(killed)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if took == 0 {
		d.t.Fatalf("fe1 did not take VIP2 within 5s of fe2's daemon being killed (replay %v)", replayed)
	}
	d.releaseAll("fe2")
	d.start("fe2", true)
	d.holders(VIP2, "fe2")
	d.holders(VIP1, "fe1")
	return took
}

// flood sends the pair 50,000 datagrams in 5s from the client machine,
// as an attacker without the key would: random bytes, heartbeats signed
// with a wrong key that claim "stopping", "fault" and to hold the
// other's VIP (versions 1 and 2), recorded heartbeats truncated or
// played again, 1,472-byte datagrams, and some fragmented 60 KB ones.
// Nothing may move, and fe1's memory may grow by less than 4 MiB. (A
// second of the same flood goes first: the Go runtime's heap grows to
// the pace of the garbage that per-datagram work makes, by about 4.5
// MiB with or without the liveness challenge, and then stays; a leak
// would grow on.)
func (d *drill) flood(tape [][]byte) {
	d.t.Helper()
	d.floodFor(tape, 10000, time.Second, nil)
	pid := d.procs["fe1"].Pid()
	before := rss(d.t, pid)
	d.floodFor(tape, 50000, 5*time.Second, func() {
		after := rss(d.t, pid)
		d.t.Logf("fe1's resident memory %d KiB before the flood, %d KiB after", before, after)
		if after-before >= 4096 {
			d.t.Errorf("fe1's resident memory grew by %d KiB during the flood, want less than 4 MiB", after-before)
		}
	})
}

// floodFor sends total datagrams of the flood in span, checking the
// VIPs' holders as it goes; then it waits a second and calls after.
func (d *drill) floodFor(tape [][]byte, total int, span time.Duration, after func()) {
	d.t.Helper()
	var conn *net.UDPConn
	err := d.lab.Do(d.lab.Client, func() error {
		var err error
		conn, err = net.ListenUDP("udp", nil)
		return err
	})
	if err != nil {
		d.t.Fatal(err)
	}
	defer conn.Close()
	wrongKey := []byte("not the pair's key")
	var forged [][]byte
	for i, st := range []heartbeat.State{heartbeat.StateStopping, heartbeat.StateFault, heartbeat.StateRunning} {
		for _, v := range []uint8{1, 2} {
			h := &heartbeat.Heartbeat{Version: v, State: st, Flags: heartbeat.FlagReclaim, Node: "fe2", BootID: 42, Seq: uint64(1000 + i),
				Holds: []netip.Prefix{VIP1, VIP2}}
			b, err := heartbeat.Encode(nil, h, wrongKey)
			if err != nil {
				d.t.Fatal(err)
			}
			forged = append(forged, b)
		}
	}
	rng := rand.New(rand.NewPCG(20, 20))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	s, err := d.lab.NewAddrSampler()
	if err != nil {
		d.t.Fatal(err)
	}
	defer s.Close()
	dsts := []*net.UDPAddr{net.UDPAddrFromAddrPort(netip.AddrPortFrom(FE1IP.Addr(), HeartbeatPort)), net.UDPAddrFromAddrPort(netip.AddrPortFrom(FE2IP.Addr(), HeartbeatPort))}
	start := time.Now()
	moved := 0
	for i := 0; i < total && time.Since(start) < 2*span; i++ {
		var b []byte
		switch i % 100 {
		case 0:
			b = random(60000) // fragmented
		case 1, 2, 3, 4, 5:
			b = random(1472)
		default:
			switch i % 5 {
			case 0:
				b = random(1 + rng.IntN(200))
			case 1:
				b = forged[rng.IntN(len(forged))]
			case 2:
				t := tape[rng.IntN(len(tape))]
				b = t[:rng.IntN(len(t))]
			case 3:
				b = tape[rng.IntN(len(tape))]
			default:
				b = append([]byte("RFVW\x02"), random(100)...)
			}
		}
		conn.WriteTo(b, dsts[i%2])
		if i%500 == 0 {
			// Pace: 100 batches of 500 in the span; check the holders.
			if on1, on2, err := s.Sample(VIP1, VIP2); err != nil || !on1[0] || on1[1] || on2[0] || !on2[1] {
				moved++
			}
			time.Sleep(time.Until(start.Add(time.Duration(i/500+1) * span / time.Duration(total/500))))
		}
	}
	d.t.Logf("sent %d datagrams in %.1fs", total, time.Since(start).Seconds())
	time.Sleep(time.Second)
	if after != nil {
		after()
	}
	if moved > 0 {
		d.t.Errorf("a VIP was off its home machine (or on both) in %d of %d samples during the flood", moved, total/500)
	}
	d.holders(VIP1, "fe1")
	d.holders(VIP2, "fe2")
	st := d.status("fe1")
	for _, want := range []string{"bad_mac ", "malformed "} {
		if strings.Contains(st, want+"0,") || !strings.Contains(st, want) {
			d.t.Errorf("fe1's status counts no %s drops after the flood:\n%s", strings.TrimSpace(want), st)
		}
	}
}

// rss is process pid's resident memory in KiB.
func rss(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var kib int
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kib); err == nil {
				return kib
			}
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
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
