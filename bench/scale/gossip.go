//go:build linux

package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	metrics "github.com/hashicorp/go-metrics"

	"github.com/ringfront/ringfront/appnode/gossip"
)

// gossipOptions says which cluster sizes to run.
type gossipOptions struct {
	sizes  []int
	window time.Duration // traffic counted once settled
}

// traffic counts what every memberlist in this process sent, from
// memberlist's own metrics (go-metrics): UDP packets and bytes (probes,
// acks, gossip) and TCP bytes and connections (push-pull state syncs,
// joins, TCP fallback pings). Bytes are memberlist's payload, encrypted
// (no IP, UDP or TCP headers).
type traffic struct {
	udpPackets, udpBytes, tcpBytes, tcpConns atomic.Int64
}

type trafficSnap struct{ udpPackets, udpBytes, tcpBytes, tcpConns int64 }

func (t *traffic) snap() trafficSnap {
	return trafficSnap{t.udpPackets.Load(), t.udpBytes.Load(), t.tcpBytes.Load(), t.tcpConns.Load()}
}

func (a trafficSnap) sub(b trafficSnap) trafficSnap {
	return trafficSnap{a.udpPackets - b.udpPackets, a.udpBytes - b.udpBytes, a.tcpBytes - b.tcpBytes, a.tcpConns - b.tcpConns}
}

func (t *traffic) count(key []string, val float32) {
	k := strings.Join(key, ".")
	switch {
	case strings.HasSuffix(k, "memberlist.udp.sent"):
		t.udpPackets.Add(1)
		t.udpBytes.Add(int64(val))
	case strings.HasSuffix(k, "memberlist.tcp.sent"):
		t.tcpBytes.Add(int64(val))
	case strings.HasSuffix(k, "memberlist.tcp.connect"):
		t.tcpConns.Add(1)
	}
}

// The go-metrics sink interface: only counters are used.
func (t *traffic) SetGauge([]string, float32)                                     {}
func (t *traffic) SetGaugeWithLabels([]string, float32, []metrics.Label)          {}
func (t *traffic) EmitKey([]string, float32)                                      {}
func (t *traffic) IncrCounter(key []string, val float32)                          { t.count(key, val) }
func (t *traffic) IncrCounterWithLabels(k []string, v float32, _ []metrics.Label) { t.count(k, v) }
func (t *traffic) AddSample([]string, float32)                                    {}
func (t *traffic) AddSampleWithLabels([]string, float32, []metrics.Label)         {}

// deaths counts the "member dead" records the detectors log.
type deaths struct{ n atomic.Int64 }

func (d *deaths) Enabled(context.Context, slog.Level) bool { return true }
func (d *deaths) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "member dead" {
		d.n.Add(1)
	}
	return nil
}
func (d *deaths) WithAttrs([]slog.Attr) slog.Handler { return d }
func (d *deaths) WithGroup(string) slog.Handler      { return d }

// gossipRow is one cluster size's measurement.
type gossipRow struct {
	members int
	settle  time.Duration // from the start until every member sees every other alive
	// unsettled, when not 0, is the fewest members alive some member
	// saw when settleLimit ran out.
	unsettled int
	burst     trafficSnap // sent meanwhile
	window    time.Duration
	steady    trafficSnap // sent over the window, settled
	cpu       time.Duration
	// startDeaths and steadyDeaths are members declared dead while
	// none was: before the cluster settled, and over the window.
	startDeaths, steadyDeaths int64
	// detect is, per surviving member, how long after one member
	// stopped (without leaving) it saw it dead.
	detect []time.Duration
	missed int // members that had not seen it dead at the limit
}

// runCluster starts n detectors on loopback with appnode's settings,
// waits until each sees all, counts the steady traffic, then stops one
// and times its detection at every other member.
func runCluster(t *traffic, o gossipOptions, n int) (gossipRow, error) {
	row := gossipRow{members: n, window: o.window}
	secret := make([]byte, 32)
	rand.Read(secret)
	names := make([]string, n)
	for i := range names {
		// Names only (a member's API address in appnode): the
		// detectors learn each other's gossip address from addrs.
		names[i] = fmt.Sprintf("127.0.0.1:%d", 20000+i)
	}
	var mu sync.Mutex
	addrs := map[string]string{}
	learn := func(_ context.Context, member string) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if a, ok := addrs[member]; ok {
			return a, nil
		}
		return "", fmt.Errorf("%s is not started", member)
	}
	dead := &deaths{}
	log := slog.New(dead)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	dets := make([]*gossip.Detector, n)
	cancels := make([]context.CancelFunc, n)
	for i := range dets {
		d, err := gossip.New(gossip.Config{Name: names[i], Bind: "127.0.0.1:0", Peers: names, Learn: learn, Secret: secret, Log: log})
		if err != nil {
			return row, err
		}
		dets[i] = d
		mu.Lock()
		addrs[names[i]] = d.Addr()
		mu.Unlock()
	}
	start, before := time.Now(), t.snap()
	for i, d := range dets {
		dctx, dcancel := context.WithCancel(ctx)
		cancels[i] = dcancel
		wg.Go(func() { d.Run(dctx) })
	}
	// On a busy machine a cluster can keep suspecting someone (a probe
	// answered late) and never have every member see all the others at
	// one instant: the row says so and the rest is measured anyway.
	limit := time.Now().Add(settleLimit)
	for {
		fewest := fewestSeen(dets)
		if fewest == n {
			break
		}
		if time.Now().After(limit) {
			row.unsettled = fewest
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	row.settle, row.burst = time.Since(start), t.snap().sub(before)
	// Let the start's joins and their push-pulls finish before counting.
	time.Sleep(3 * time.Second)
	cpu0, snap0, deaths0 := processCPU(), t.snap(), dead.n.Load()
	time.Sleep(o.window)
	row.cpu, row.steady = processCPU()-cpu0, t.snap().sub(snap0)
	row.startDeaths, row.steadyDeaths = deaths0, dead.n.Load()-deaths0

	// Stop one member as a crash does: memberlist shuts down without
	// leaving (Detector.Stop), the others must find it dead.
	victim := n - 1
	stopped := time.Now()
	dets[victim].Stop()
	cancels[victim]()
	seen := make([]time.Duration, n-1)
	for time.Since(stopped) < 30*time.Second {
		left := 0
		for i := range n - 1 {
			if seen[i] == 0 {
				if dets[i].Liveness(names[victim]) == gossip.Dead {
					seen[i] = time.Since(stopped)
				} else {
					left++
				}
			}
		}
		if left == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, s := range seen {
		if s == 0 {
			row.missed++
		} else {
			row.detect = append(row.detect, s)
		}
	}
	slices.Sort(row.detect)
	return row, nil
}

// settleLimit bounds the wait for every member to see every other.
const settleLimit = 30 * time.Second

// fewestSeen returns the fewest members alive that any detector sees.
func fewestSeen(dets []*gossip.Detector) int {
	fewest := len(dets)
	for _, d := range dets {
		alive, _ := d.AliveCount()
		fewest = min(fewest, alive)
	}
	return fewest
}

// processCPU is this process's CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// memberlist's settings as appnode/gossip sets them (gossip.New): the
// model below is memberlist's own formulas with these values.
const (
	probeInterval   = gossip.DefaultProbeInterval
	probeTimeout    = gossip.DefaultProbeInterval / 2
	gossipInterval  = gossip.DefaultProbeInterval / 2
	pushPullEvery   = 15 * gossip.DefaultProbeInterval
	suspicionMult   = gossip.DefaultSuspicionMult
	suspicionMaxMul = 2 // gossip.New's SuspicionMaxTimeoutMult
	gossipNodes     = 3 // memberlist.DefaultLANConfig's GossipNodes
)

// suspicionTimeout is memberlist's (util.go): the shortest time a
// suspected member has to refute, scaled by log10 of the cluster size.
func suspicionTimeout(n int) time.Duration {
	return time.Duration(float64(suspicionMult) * math.Max(1, math.Log10(float64(n))) * float64(probeInterval))
}

// pushPullInterval is memberlist's pushPullScale (util.go): the interval
// doubles with every doubling of the cluster beyond 32 members.
func pushPullInterval(n int) time.Duration {
	if n <= 32 {
		return pushPullEvery
	}
	return time.Duration(math.Ceil(math.Log2(float64(n))-math.Log2(32))+1) * pushPullEvery
}

// gossipRounds is the rounds until a share p of n members has heard a
// rumour, from Serf's convergence model (the simulator on serf.io:
// each round a member tells gossipNodes others, half of them new).
func gossipRounds(n int, p float64) float64 {
	c := float64(gossipNodes) * 0.5
	return math.Log(float64(n+1)/(1/p-1)) / c
}

// modelDetect is the modelled time until a share p of the members sees
// a crashed member dead: a probe reaches it about half a probe interval
// after it stops (one member probes it per interval), the prober
// suspects it once the probe interval (indirect probes included) has
// passed, the suspicion runs its shortest timeout (another member's
// probe confirms it), then the death spreads by gossip.
func modelDetect(n int, p float64) time.Duration {
	return probeInterval/2 + probeInterval + suspicionTimeout(n) + time.Duration(gossipRounds(n, p)*float64(gossipInterval))
}

// runGossip measures every cluster size and prints the tables.
func runGossip(w io.Writer, o gossipOptions) error {
	t := &traffic{}
	cfg := metrics.DefaultConfig("bench")
	cfg.EnableHostname, cfg.EnableRuntimeMetrics = false, false
	if _, err := metrics.NewGlobal(cfg, t); err != nil {
		return fmt.Errorf("counting memberlist's traffic: %w", err)
	}
	var rows []gossipRow
	for _, n := range o.sizes {
		start := time.Now()
		row, err := runCluster(t, o, n)
		if err != nil {
			return err
		}
		rows = append(rows, row)
		logf("gossip %d members in %.1fs", n, time.Since(start).Seconds())
	}
	printGossip(w, o, rows)
	return nil
}

func printGossip(w io.Writer, o gossipOptions, rows []gossipRow) {
	fmt.Fprintln(w, "### Membership: memberlist with appnode's settings")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "appnode/gossip detectors in one process on 127.0.0.1 (probe every %v, gossip every %v to %d members, push-pull every %v",
		probeInterval, gossipInterval, gossipNodes, pushPullEvery)
	fmt.Fprintln(w, " scaled up past 32 members, encrypted). Sent bytes are memberlist's payload (no IP/UDP/TCP headers).")
	fmt.Fprintf(w, "Steady: counted over %v once every member saw every other; start: from the start until then (each member joins every\n", o.window)
	fmt.Fprintln(w, "configured peer). Detection: one member stopped without leaving; when each other member saw it dead (first, median,")
	fmt.Fprintln(w, "last), beside memberlist's model (see below) for the median and the last member.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| members | steady sent per member | UDP packets/s per member | of it push-pull | CPU per member | false deaths | start: time | start: sent | start: false deaths | detect first | median | last | model median | model 99.9% |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	var perMemberUDP float64
	var stateBytes float64
	for _, r := range rows {
		secs := r.window.Seconds() * float64(r.members)
		sent := float64(r.steady.udpBytes+r.steady.tcpBytes) / secs
		pp := float64(r.steady.tcpBytes) / secs
		if r.unsettled == 0 {
			// The model starts from the largest cluster that settled.
			perMemberUDP = float64(r.steady.udpBytes) / secs
		}
		if r.unsettled == 0 && r.steady.tcpConns > 0 {
			// Each push-pull sends the state both ways.
			stateBytes = float64(r.steady.tcpBytes) / float64(r.steady.tcpConns) / 2 / float64(r.members)
		}
		first, med, last := "-", "-", "-"
		if len(r.detect) > 0 {
			first, med, last = secondsOf(r.detect[0]), secondsOf(r.detect[len(r.detect)/2]), secondsOf(r.detect[len(r.detect)-1])
		}
		if r.missed > 0 {
			last = fmt.Sprintf("%d never (30 s)", r.missed)
		}
		settle := secondsOf(r.settle)
		if r.unsettled > 0 {
			settle = fmt.Sprintf("not in %s (a member saw %d alive)", secondsOf(settleLimit), r.unsettled)
		}
		fmt.Fprintf(w, "| %d | %s/s | %.1f | %s/s | %.0f µs/s | %d | %s | %s | %d | %s | %s | %s | %s | %s |\n", r.members,
			bytesOf(int64(sent)), float64(r.steady.udpPackets)/secs, bytesOf(int64(pp)),
			float64(r.cpu.Microseconds())/secs, r.steadyDeaths, settle, bytesOf(r.burst.udpBytes+r.burst.tcpBytes), r.startDeaths,
			first, med, last, secondsOf(modelDetect(r.members, 0.5)), secondsOf(modelDetect(r.members, 0.999)))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Memberlist's model carried further: probe and gossip traffic per member stays what the largest settled run measured")
	fmt.Fprintf(w, "(%s/s); each push-pull sends the whole member list both ways (%.0f bytes per member listed, measured), every\n", bytesOf(int64(perMemberUDP)), stateBytes)
	fmt.Fprintln(w, "push-pull interval (memberlist's pushPullScale); the suspicion timeout is SuspicionMult × log10(N) × probe interval")
	fmt.Fprintln(w, "(up to 2× that without confirmations); the spread of a death follows Serf's convergence model (fanout 3, no loss).")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| members | push-pull interval | push-pull sent per member | total sent per member | suspicion timeout | detect median | detect 99.9% |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|")
	for _, n := range []int{200, 1000, 2000, 5000, 20000} {
		pp := 2 * stateBytes * float64(n) / pushPullInterval(n).Seconds()
		fmt.Fprintf(w, "| %s | %s | %s/s | %s/s | %s–%s | %s | %s |\n", group(n), secondsOf(pushPullInterval(n)), bytesOf(int64(pp)),
			bytesOf(int64(pp+perMemberUDP)), secondsOf(suspicionTimeout(n)), secondsOf(suspicionMaxMul*suspicionTimeout(n)),
			secondsOf(modelDetect(n, 0.5)), secondsOf(modelDetect(n, 0.999)))
	}
	fmt.Fprintln(w)
}

func secondsOf(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
