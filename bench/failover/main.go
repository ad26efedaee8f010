// Command failover measures client-perceived failover time of vipwatch
// and of keepalived (Debian's, VRRPv3 with unicast peers) in a
// network-namespace LAN built by vipwatch/nslab, side by side.
//
// Each drill runs N times per implementation and heartbeat interval: a
// client probes fe1's VIP over UDP every 10 ms; then fe1 fails — its
// cable is pulled (link-down) or its daemon is SIGKILLed (sigkill; for
// vipwatch, systemd's ExecStopPost=vipwatch release-all runs right after,
// as the shipped unit does) — and the outage is the time from the fault
// to the first answer from fe2. Lost probes are those sent after the
// fault that got no answer. Runs are spaced by -pause, so that the
// kernel's per-host ICMP rate limit is not spent by the previous run
// (vipwatch takes a port-unreachable answer to its heartbeat as a sign
// that the partner's daemon is dead). "stale" counts the sigkill runs after which
// the dead daemon's machine still had the VIP (dual ownership).
//
// Two more drills measure what a failover daemon must not do:
//
//   - partition: the pair's heartbeats (vipwatch) or VRRP adverts
//     (keepalived) are dropped both ways for -partition while the LAN
//     works, then let through again. The machines' addresses are
//     sampled through netlink about every millisecond; "dual" is the
//     time some VIP was on both machines, split into the partition and
//     after the heal beyond one heartbeat interval (the heal window, in
//     which the pair settles who keeps a VIP both hold). vipwatch runs
//     with a witness (the LAN's "gateway", the lab bridge's address);
//     keepalived has no equivalent, so both of its nodes become master
//     (split brain), which the table reports as it is.
//   - handover: a planned move of fe1's VIP to fe2 and back, under the
//     10 ms client probes: `vipwatch handover` then `vipwatch takeback`;
//     keepalived has no planned handover, so its nearest equivalent is a
//     graceful stop of fe1's keepalived (it sends a priority-0 advert)
//     and a restart (preemption takes the VIP back). Lost probes are
//     the measure.
//
// It needs root. Run it under flock so that only one benchmark runs on
// the machine at a time:
//
//	flock -o /tmp/ringfront-bench.lock go run ./bench/failover -vipwatch bin/vipwatch -n 10
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ringfront/ringfront/vipwatch/nslab"
)

func main() {
	nslab.MaybeRespond()
	var (
		n          = flag.Int("n", 10, "runs per drill (at least 10 for the report)")
		vipwatch   = flag.String("vipwatch", "bin/vipwatch", "vipwatch binary")
		keepalived = flag.String("keepalived", "keepalived", "keepalived binary")
		impls      = flag.String("impl", "vipwatch,keepalived", "implementations to measure")
		intervals  = flag.String("intervals", "100ms,10ms", "heartbeat intervals (dead_after = 3x; keepalived advert_int = interval)")
		drills     = flag.String("drills", "link-down,sigkill,partition,handover", "drills to run")
		partition  = flag.Duration("partition", 2*time.Second, "how long the partition drill drops heartbeats")
		pause      = flag.Duration("pause", 1500*time.Millisecond, "quiet time before each run, so per-host ICMP rate limits (1/s, burst 6) refill as they would between real crashes")
	)
	flag.Parse()
	if err := nslab.RequireRoot(); err != nil {
		fatal(err)
	}
	vw, err := filepath.Abs(*vipwatch)
	if err != nil {
		fatal(err)
	}
	if _, err := os.Stat(vw); err != nil {
		fatal(fmt.Errorf("vipwatch binary: %w (run make build first)", err))
	}
	var results []result
	for _, iv := range strings.Split(*intervals, ",") {
		interval, err := time.ParseDuration(iv)
		if err != nil {
			fatal(err)
		}
		for _, impl := range strings.Split(*impls, ",") {
			var d daemon
			switch impl {
			case "vipwatch":
				d = &vipwatchPair{bin: vw, interval: interval}
			case "keepalived":
				d = &keepalivedPair{bin: *keepalived, interval: interval}
			default:
				fatal(fmt.Errorf("unknown implementation %q", impl))
			}
			rs, err := measure(d, impl, interval, strings.Split(*drills, ","), *n, *pause, *partition)
			if err != nil {
				fatal(fmt.Errorf("%s at %v: %w", impl, interval, err))
			}
			results = append(results, rs...)
		}
	}
	report(os.Stdout, results)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "failover:", err)
	os.Exit(1)
}

// daemon is one failover implementation running as a pair in a lab.
type daemon interface {
	start(l *nslab.Lab, node string) error
	// kill SIGKILLs node's daemon and does what the implementation's
	// service manager does after a crash.
	kill(l *nslab.Lab, node string) error
	stop(l *nslab.Lab)
	// partition drops (on) or lets through the pair's heartbeats or
	// adverts, leaving the LAN up.
	partition(l *nslab.Lab, on bool) error
	// handover moves fe1's VIP to fe2 the planned way the
	// implementation has; takeback brings it back.
	handover(l *nslab.Lab) error
	takeback(l *nslab.Lab) error
}

type result struct {
	impl     string
	interval time.Duration
	drill    string
	outages  []time.Duration
	lost     []int
	stale    int
	// partition drill: time with a VIP on both machines during the
	// partition, after the heal beyond the heal window, and how long
	// after the heal the last such time ended.
	dualDuring, dualAfter, resolved []time.Duration
}

func measure(d daemon, impl string, interval time.Duration, drills []string, n int, pause, partition time.Duration) ([]result, error) {
	dir, err := os.MkdirTemp("", "rfvw-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	lab, err := nslab.New(fmt.Sprintf("%db", os.Getpid()%100000), dir)
	if err != nil {
		return nil, err
	}
	defer lab.Close()
	defer d.stop(lab)
	for _, node := range []string{"fe1", "fe2"} {
		if _, err := lab.StartResponder(lab.NS(node), node); err != nil {
			return nil, err
		}
	}
	for _, node := range []string{"fe1", "fe2"} {
		if err := d.start(lab, node); err != nil {
			return nil, err
		}
	}
	p, err := newProber(lab)
	if err != nil {
		return nil, err
	}
	defer p.close()
	var out []result
	defer func() {
		if len(out) < len(drills) {
			dumpLogs(dir) // failed: show what the daemons said
		}
	}()
	for _, drill := range drills {
		r := result{impl: impl, interval: interval, drill: drill}
		for i := range n {
			time.Sleep(pause)
			if err := steady(lab, p); err != nil {
				return nil, fmt.Errorf("%s run %d: %w", drill, i+1, err)
			}
			switch drill {
			case "partition":
				s, err := runPartition(lab, d, p, interval, partition)
				if err != nil {
					return nil, fmt.Errorf("%s run %d: %w", drill, i+1, err)
				}
				r.dualDuring = append(r.dualDuring, s.during)
				r.dualAfter = append(r.dualAfter, s.after)
				r.resolved = append(r.resolved, s.resolved)
				r.lost = append(r.lost, s.lost)
				fmt.Fprintf(os.Stderr, "%s %v %s run %d: dual during %.3fs, after heal window %.3fs, resolved %.3fs after heal, lost %d (%d samples)\n",
					impl, interval, drill, i+1, s.during.Seconds(), s.after.Seconds(), s.resolved.Seconds(), s.lost, s.samples)
				continue
			case "handover":
				lost, err := runHandover(lab, d, p)
				if err != nil {
					return nil, fmt.Errorf("%s run %d: %w", drill, i+1, err)
				}
				r.lost = append(r.lost, lost)
				fmt.Fprintf(os.Stderr, "%s %v %s run %d: lost %d\n", impl, interval, drill, i+1, lost)
				continue
			}
			outage, lost, stale, err := runDrill(lab, d, p, drill)
			if err != nil {
				return nil, fmt.Errorf("%s run %d: %w", drill, i+1, err)
			}
			r.outages = append(r.outages, outage)
			r.lost = append(r.lost, lost)
			if stale {
				r.stale++
			}
			fmt.Fprintf(os.Stderr, "%s %v %s run %d: outage %.3fs, lost %d, stale %v\n", impl, interval, drill, i+1, outage.Seconds(), lost, stale)
		}
		out = append(out, r)
	}
	return out, nil
}

// steady waits until VIP1 is on fe1 alone and fe1 answers the client.
func steady(lab *nslab.Lab, p *prober) error {
	err := nslab.WaitFor(20*time.Second, "VIP1 on fe1 alone", func() (bool, error) {
		h, err := lab.Holders(nslab.VIP1)
		return slices.Equal(h, []string{lab.FE1}), err
	})
	if err != nil {
		return err
	}
	return nslab.WaitFor(10*time.Second, "fe1 answering on VIP1", func() (bool, error) {
		return p.ping(200*time.Millisecond) == "fe1", nil
	})
}

func runDrill(lab *nslab.Lab, d daemon, p *prober, drill string) (outage time.Duration, lost int, stale bool, err error) {
	p.begin()
	// Baseline traffic, answered by fe1. The random part puts the fault
	// at a random phase of the 10ms probe schedule, so the schedule does
	// not bias the outage.
	time.Sleep(200*time.Millisecond + rand.N(probeEvery))
	fault := time.Now()
	switch drill {
	case "link-down":
		err = lab.SetCable(lab.FE1, false)
	case "sigkill":
		err = d.kill(lab, "fe1")
	default:
		err = fmt.Errorf("unknown drill %q", drill)
	}
	if err != nil {
		p.end()
		return 0, 0, false, err
	}
	first, ok := p.waitFor("fe2", fault, 15*time.Second)
	time.Sleep(300 * time.Millisecond) // stragglers
	lost = p.end().lostAfter(fault)
	if !ok {
		return 0, 0, false, errors.New("fe2 never answered on VIP1")
	}
	if drill == "sigkill" {
		stale, err = lab.Holds(lab.FE1, nslab.VIP1)
		if err != nil {
			return 0, 0, false, err
		}
	}
	// Restore: cable back in, or the daemon restarted (after removing
	// what a crashed keepalived left, so every run starts alike).
	switch drill {
	case "link-down":
		err = lab.SetCable(lab.FE1, true)
	case "sigkill":
		if stale {
			if _, err := lab.Run(context.Background(), lab.FE1, "ip", "addr", "del", nslab.VIP1.String(), "dev", nslab.Dev); err != nil {
				return 0, 0, false, err
			}
		}
		err = d.start(lab, "fe1")
	}
	return first.Sub(fault), lost, stale, err
}

// split is what one partition run measured.
type split struct {
	during, after, resolved time.Duration
	lost, samples           int
}

// runPartition drops the pair's heartbeats for length, lets them through
// again and watches for 2s more, sampling the machines' addresses all
// along: how long was a VIP on both machines?
func runPartition(lab *nslab.Lab, d daemon, p *prober, interval, length time.Duration) (s split, err error) {
	err = nslab.WaitFor(10*time.Second, "VIP2 on fe2 alone", func() (bool, error) {
		h, err := lab.Holders(nslab.VIP2)
		return slices.Equal(h, []string{lab.FE2}), err
	})
	if err != nil {
		return s, err
	}
	sampler, err := lab.NewAddrSampler()
	if err != nil {
		return s, err
	}
	defer sampler.Close()
	vips := []netip.Prefix{nslab.VIP1, nslab.VIP2}
	// watch samples until the deadline and adds up, per period of
	// the timeline, the time in which a VIP was on both machines.
	var heal time.Time
	lastDual := time.Time{}
	watch := func(until time.Time) error {
		prev, prevDual := time.Now(), false
		for now := prev; now.Before(until); now = time.Now() {
			on1, on2, err := sampler.Sample(vips...)
			if err != nil {
				return err
			}
			s.samples++
			dual := false
			for i := range vips {
				dual = dual || (on1[i] && on2[i])
			}
			if prevDual {
				// The interval since the previous sample counts as dual
				// (a left sum: it is accurate to one sampling period).
				switch {
				case heal.IsZero():
					s.during += now.Sub(prev)
				case now.Sub(heal) > interval:
					from := heal.Add(interval)
					if prev.After(from) {
						from = prev
					}
					s.after += now.Sub(from)
				}
				lastDual = now
			}
			prev, prevDual = now, dual
			time.Sleep(500 * time.Microsecond)
		}
		return nil
	}
	p.begin()
	time.Sleep(200*time.Millisecond + rand.N(probeEvery))
	start := time.Now()
	if err := d.partition(lab, true); err != nil {
		p.end()
		return s, err
	}
	werr := watch(start.Add(length))
	if err := d.partition(lab, false); err != nil {
		p.end()
		return s, err
	}
	heal = time.Now()
	if werr == nil {
		werr = watch(heal.Add(2 * time.Second))
	}
	s.lost = p.end().lostAfter(start)
	if !lastDual.IsZero() && lastDual.After(heal) {
		s.resolved = lastDual.Sub(heal)
	}
	return s, werr
}

// runHandover moves VIP1 to fe2 and back under the client's probes and
// counts the probes lost from the handover on.
func runHandover(lab *nslab.Lab, d daemon, p *prober) (lost int, err error) {
	p.begin()
	time.Sleep(200*time.Millisecond + rand.N(probeEvery))
	start := time.Now()
	if err := d.handover(lab); err != nil {
		p.end()
		return 0, err
	}
	if _, ok := p.waitFor("fe2", start, 15*time.Second); !ok {
		p.end()
		return 0, errors.New("fe2 never answered on VIP1 after the handover")
	}
	time.Sleep(500 * time.Millisecond)
	back := time.Now()
	if err := d.takeback(lab); err != nil {
		p.end()
		return 0, err
	}
	if _, ok := p.waitFor("fe1", back, 15*time.Second); !ok {
		p.end()
		return 0, errors.New("fe1 never answered on VIP1 after the takeback")
	}
	time.Sleep(500 * time.Millisecond) // stragglers
	return p.end().lostAfter(start), nil
}

// prober sends a numbered UDP probe to VIP1 every 10 ms from the client
// namespace and records who answered each.
type prober struct {
	conn *net.UDPConn
	vip  *net.UDPAddr

	mu      sync.Mutex // guards the fields below
	sent    map[uint32]time.Time
	replies map[uint32]reply
	seq     uint32
	stop    chan struct{}
	done    chan struct{}
	pings   chan reply
}

type reply struct {
	node string
	at   time.Time
}

const probeEvery = 10 * time.Millisecond

func newProber(lab *nslab.Lab) (*prober, error) {
	p := &prober{vip: &net.UDPAddr{IP: nslab.VIP1.Addr().AsSlice(), Port: nslab.EchoPort}, pings: make(chan reply, 16)}
	// Unconnected: the responder answers from its interface's own
	// address, not from the VIP, and the node name says who it is.
	err := lab.Do(lab.Client, func() error {
		var err error
		p.conn, err = net.ListenUDP("udp4", &net.UDPAddr{})
		return err
	})
	if err != nil {
		return nil, err
	}
	go p.read()
	return p, nil
}

func (p *prober) read() {
	buf := make([]byte, 256)
	for {
		n, err := p.conn.Read(buf)
		if err != nil {
			return
		}
		at := time.Now()
		node, rest, ok := strings.Cut(string(buf[:n]), " ")
		if !ok || len(rest) != 4 {
			continue
		}
		seq := binary.BigEndian.Uint32([]byte(rest))
		p.mu.Lock()
		if seq == 0 {
			select {
			case p.pings <- reply{node, at}:
			default:
			}
		} else if p.replies != nil {
			if _, dup := p.replies[seq]; !dup {
				p.replies[seq] = reply{node, at}
			}
		}
		p.mu.Unlock()
	}
}

// ping sends one unnumbered probe and returns who answered, or "".
func (p *prober) ping(timeout time.Duration) string {
	for len(p.pings) > 0 {
		<-p.pings
	}
	p.conn.WriteToUDP([]byte{0, 0, 0, 0}, p.vip)
	select {
	case r := <-p.pings:
		return r.node
	case <-time.After(timeout):
		return ""
	}
}

func (p *prober) begin() {
	p.mu.Lock()
	p.sent, p.replies = map[uint32]time.Time{}, map[uint32]reply{}
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	p.mu.Unlock()
	go func() {
		defer close(p.done)
		t := time.NewTicker(probeEvery)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
			p.mu.Lock()
			p.seq++
			if p.seq == 0 {
				p.seq = 1
			}
			seq := p.seq
			p.sent[seq] = time.Now()
			p.mu.Unlock()
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], seq)
			p.conn.WriteToUDP(b[:], p.vip)
		}
	}()
}

// waitFor returns the time of the first answer from node to a probe
// sent after since.
func (p *prober) waitFor(node string, since time.Time, timeout time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		var first time.Time
		for seq, r := range p.replies {
			if r.node == node && p.sent[seq].After(since) && (first.IsZero() || r.at.Before(first)) {
				first = r.at
			}
		}
		p.mu.Unlock()
		if !first.IsZero() {
			return first, true
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Time{}, false
}

type probeLog struct {
	sent    map[uint32]time.Time
	replies map[uint32]reply
}

func (p *prober) end() probeLog {
	close(p.stop)
	<-p.done
	// The answer to the last probe may still be on its way; on this
	// LAN it takes well under a millisecond.
	time.Sleep(50 * time.Millisecond)
	p.mu.Lock()
	defer p.mu.Unlock()
	l := probeLog{sent: p.sent, replies: p.replies}
	p.sent, p.replies = nil, nil
	return l
}

func (l probeLog) lostAfter(since time.Time) int {
	lost := 0
	for seq, at := range l.sent {
		if _, ok := l.replies[seq]; !ok && at.After(since) {
			lost++
		}
	}
	return lost
}

func (p *prober) close() { p.conn.Close() }

// vipwatchPair runs vipwatch on both frontends.
type vipwatchPair struct {
	bin      string
	interval time.Duration
	procs    map[string]*nslab.Proc
}

// cfg is the pair's config: dead_after three heartbeats, and a witness
// (the lab bridge's address) probed every heartbeat interval (at least
// every 20ms) with a timeout of half of it.
func (v *vipwatchPair) cfg() nslab.VIPWatch {
	witness := max(v.interval, 20*time.Millisecond)
	return nslab.VIPWatch{Binary: v.bin, Interval: v.interval, DeadAfter: 3 * v.interval, GARPCount: 3, GARPInterval: 100 * time.Millisecond,
		Extra: fmt.Sprintf("witness: {targets: [%q], method: arp, interval: %v, timeout: %v, fall: 2}\nfault_release_after: 2s\n",
			nslab.WitnessIP.Addr().String(), witness, witness/2)}
}

func (v *vipwatchPair) partition(l *nslab.Lab, on bool) error { return l.BlockHeartbeats(on) }

// admin runs a vipwatch admin command (handover, takeback) on fe1.
func (v *vipwatchPair) admin(l *nslab.Lab, cmd string) error {
	cfg, err := l.Config(v.cfg(), "fe1", true)
	if err != nil {
		return err
	}
	_, err = l.Run(context.Background(), l.FE1, v.bin, cmd, "--config", cfg)
	return err
}

func (v *vipwatchPair) handover(l *nslab.Lab) error { return v.admin(l, "handover") }
func (v *vipwatchPair) takeback(l *nslab.Lab) error { return v.admin(l, "takeback") }

func (v *vipwatchPair) start(l *nslab.Lab, node string) error {
	if v.procs == nil {
		v.procs = map[string]*nslab.Proc{}
	}
	p, err := l.StartVIPWatch(v.cfg(), node, true)
	v.procs[node] = p
	return err
}

func (v *vipwatchPair) kill(l *nslab.Lab, node string) error {
	p := v.procs[node]
	p.Signal(syscall.SIGKILL)
	p.Wait(5 * time.Second)
	// The shipped unit's ExecStopPost=vipwatch release-all.
	_, err := l.Run(context.Background(), l.NS(node), v.bin, "release-all", "--interface", nslab.Dev, "--runtime-dir", l.RuntimeDir(node))
	return err
}

func (v *vipwatchPair) stop(l *nslab.Lab) {
	for _, p := range v.procs {
		p.Signal(syscall.SIGTERM)
		p.Wait(5 * time.Second)
	}
}

// keepalivedPair runs keepalived (VRRPv3, unicast) on both frontends:
// one VRRP instance per VIP, the VIP's home with the higher priority
// and preemption on (keepalived's default), like vipwatch's pair.
type keepalivedPair struct {
	bin      string
	interval time.Duration
	procs    map[string]*nslab.Proc
}

func (k *keepalivedPair) start(l *nslab.Lab, node string) error {
	if k.procs == nil {
		k.procs = map[string]*nslab.Proc{}
	}
	self, peer := nslab.FE1IP.Addr(), nslab.FE2IP.Addr()
	prio1, prio2 := 150, 100
	if node == "fe2" {
		self, peer = peer, self
		prio1, prio2 = prio2, prio1
	}
	advert := fmt.Sprintf("%g", k.interval.Seconds())
	instance := func(name string, vrid, prio int, vip string) string {
		return fmt.Sprintf(`vrrp_instance %s {
    state BACKUP
    interface %s
    virtual_router_id %d
    priority %d
    advert_int %s
    unicast_src_ip %s
    unicast_peer {
        %s
    }
    virtual_ipaddress {
        %s dev %s
    }
}
`, name, nslab.Dev, vrid, prio, advert, self, peer, vip, nslab.Dev)
	}
	conf := fmt.Sprintf("global_defs {\n    router_id %s\n    vrrp_version 3\n    script_user root\n}\n", node) +
		instance("VI_1", 51, prio1, nslab.VIP1.String()) + instance("VI_2", 52, prio2, nslab.VIP2.String())
	dir := filepath.Join(l.Dir, "keepalived-"+node)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	path := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return err
	}
	p, err := l.Start(l.NS(node), "keepalived-"+node, k.bin, "--dont-fork", "--log-console", "--vrrp",
		"--use-file", path, "--pid", filepath.Join(dir, "keepalived.pid"), "--vrrp_pid", filepath.Join(dir, "vrrp.pid"))
	k.procs[node] = p
	return err
}

func (k *keepalivedPair) kill(l *nslab.Lab, node string) error {
	// Parent and VRRP child together, as when the machine's keepalived
	// dies outright: the child's pid comes from its pid file, and is
	// checked to be a keepalived before it is killed.
	dir := filepath.Join(l.Dir, "keepalived-"+node)
	child := 0
	if b, err := os.ReadFile(filepath.Join(dir, "vrrp.pid")); err == nil {
		fmt.Sscan(string(b), &child)
	}
	p := k.procs[node]
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	if child > 0 {
		if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", child)); err == nil && strings.Contains(string(cmd), "keepalived") {
			syscall.Kill(child, syscall.SIGKILL)
		}
	}
	p.Wait(5 * time.Second)
	// keepalived refuses to start over pid files of a killed run.
	os.Remove(filepath.Join(dir, "keepalived.pid"))
	os.Remove(filepath.Join(dir, "vrrp.pid"))
	return nil
}

// partition drops VRRP (IP protocol 112) between the pair.
func (k *keepalivedPair) partition(l *nslab.Lab, on bool) error {
	return l.BlockPair(on, "meta l4proto 112")
}

// handover is keepalived's nearest equivalent of a planned handover: a
// graceful stop of fe1's keepalived, which sends priority-0 adverts so
// that fe2 takes over at once.
func (k *keepalivedPair) handover(l *nslab.Lab) error {
	p := k.procs["fe1"]
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	return p.Wait(5 * time.Second)
}

// takeback restarts fe1's keepalived; preemption takes the VIP back.
func (k *keepalivedPair) takeback(l *nslab.Lab) error { return k.start(l, "fe1") }

func (k *keepalivedPair) stop(l *nslab.Lab) {
	for _, p := range k.procs {
		p.Signal(syscall.SIGTERM)
		if p.Wait(5*time.Second) != nil {
			p.Kill()
		}
	}
}

func report(w *os.File, rs []result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "impl\tinterval\tdrill\truns\tmedian\tmin\tmax\tlost median\tlost max\tstale VIP\t")
	medians := map[string]time.Duration{}
	for _, r := range rs {
		if len(r.outages) == 0 {
			continue
		}
		o := slices.Clone(r.outages)
		slices.Sort(o)
		l := slices.Clone(r.lost)
		slices.Sort(l)
		med := median(o)
		medians[fmt.Sprint(r.impl, r.interval, r.drill)] = med
		stale := "-"
		if r.drill == "sigkill" {
			stale = fmt.Sprintf("%d/%d", r.stale, len(r.outages))
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%d\t%.3fs\t%.3fs\t%.3fs\t%d\t%d\t%s\t\n", r.impl, r.interval, r.drill, len(o),
			med.Seconds(), o[0].Seconds(), o[len(o)-1].Seconds(), l[len(l)/2], l[len(l)-1], stale)
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(w, "ratio of median outages, vipwatch / keepalived:")
	for _, r := range rs {
		if r.impl != "vipwatch" || len(r.outages) == 0 {
			continue
		}
		ka, ok := medians[fmt.Sprint("keepalived", r.interval, r.drill)]
		if !ok || ka == 0 {
			continue
		}
		vw := medians[fmt.Sprint("vipwatch", r.interval, r.drill)]
		fmt.Fprintf(w, "  %-6v %-10s %.3fs / %.3fs = %.2f\n", r.interval, r.drill, vw.Seconds(), ka.Seconds(), vw.Seconds()/ka.Seconds())
	}
	var parts, handovers []result
	for _, r := range rs {
		switch {
		case len(r.dualDuring) > 0:
			parts = append(parts, r)
		case r.drill == "handover" && len(r.lost) > 0:
			handovers = append(handovers, r)
		}
	}
	if len(parts) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "partition: time with a VIP on both machines (median / max of the runs)")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "impl\tinterval\truns\tdual during partition\tdual after heal window\tlast dual after heal\tlost median\tlost max\t")
		for _, r := range parts {
			l := slices.Sorted(slices.Values(r.lost))
			fmt.Fprintf(tw, "%s\t%v\t%d\t%s\t%s\t%s\t%d\t%d\t\n", r.impl, r.interval, len(r.dualDuring),
				medMax(r.dualDuring), medMax(r.dualAfter), medMax(r.resolved), l[len(l)/2], l[len(l)-1])
		}
		tw.Flush()
	}
	if len(handovers) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "handover and back (vipwatch handover/takeback; keepalived: graceful stop and restart): probes lost at 10ms")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "impl\tinterval\truns\tlost median\tlost max\tlost total\t")
		for _, r := range handovers {
			l := slices.Sorted(slices.Values(r.lost))
			total := 0
			for _, x := range l {
				total += x
			}
			fmt.Fprintf(tw, "%s\t%v\t%d\t%d\t%d\t%d\t\n", r.impl, r.interval, len(l), l[len(l)/2], l[len(l)-1], total)
		}
		tw.Flush()
	}
}

// medMax formats the median and maximum of ds in seconds.
func medMax(ds []time.Duration) string {
	s := slices.Sorted(slices.Values(ds))
	return fmt.Sprintf("%.3fs / %.3fs", median(s).Seconds(), s[len(s)-1].Seconds())
}

func dumpLogs(dir string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		fmt.Fprintf(os.Stderr, "--- %s (last lines)\n%s\n", filepath.Base(l), strings.Join(lines[max(0, len(lines)-15):], "\n"))
	}
}

func median(sorted []time.Duration) time.Duration {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}
