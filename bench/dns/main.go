//go:build linux

// Command dns benchmarks dnslb against the C authoritative servers
// gdnsd, Knot and NSD (Debian's packages): all serve the same zone on
// 127.0.0.1 with rate limiting off, each pinned to one CPU (taskset) while
// the load runs on the other, in alternating rounds.
//
// Two loads per server and round:
//   - saturated: Debian's dnsperf with many queries outstanding; the
//     figure is answered queries per second of the server's CPU time;
//   - fixed rates (100, 1k, 20k and 50k q/s by default): this program's own
//     paced generator (load.go), which measures every answer's latency
//     (p50, p99, p99.9) from the kernel's receive timestamp; the figure is
//     the server's CPU time per answered query.
//
// The server's CPU time is the scheduler's per-thread accounting
// (/proc/PID/task/*/schedstat) of the server and its child processes,
// so it counts everything the server does, its idle wake-ups included.
// The query mix is 80% A (60% the load-balanced name), 10% AAAA NODATA
// and 10% NXDOMAIN, all with EDNS0; an answer of the wrong kind counts as
// wrong and is reported.
//
// It prints each run, then the medians over the rounds: every server's
// figures side by side with the ratio to the best peer (the best of the
// C servers at that load).
//
//	bench/dns/run -rounds 3 -duration 10s
//
// Only loopback is used: the health-checked targets are listeners this
// program opens on 127.0.0.x.
package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ringfront/ringfront/bench/internal/dnsperf"
)

func main() {
	var o options
	flag.StringVar(&o.dnslb, "dnslb", "bin/dnslb", "dnslb binary")
	flag.StringVar(&o.nsd, "nsd", "/usr/sbin/nsd", "NSD binary")
	flag.StringVar(&o.knot, "knot", "/usr/sbin/knotd", "Knot binary")
	flag.StringVar(&o.gdnsd, "gdnsd", "/usr/sbin/gdnsd", "gdnsd binary")
	flag.StringVar(&o.dnsperf, "dnsperf", "dnsperf", "dnsperf binary (the saturated load)")
	flag.StringVar(&o.servers, "servers", "dnslb,gdnsd,knot,nsd", "servers to run, comma-separated")
	flag.IntVar(&o.rounds, "rounds", 3, "alternating rounds")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each run")
	flag.StringVar(&o.rates, "rates", "100,1000,20000,50000", "fixed rates, queries per second, comma-separated")
	flag.BoolVar(&o.saturated, "saturated", true, "run the saturated load (dnsperf)")
	flag.StringVar(&o.serverCPU, "server-cpu", "0", "CPU the servers are pinned to (taskset -c); run this program on another")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory")
	flag.BoolVar(&o.threads, "threads", false, "print each run's CPU time and wake-ups per second by server thread")
	flag.Parse()
	// The paced sender and the receiver block in system calls on locked
	// threads; enough Ps that neither ever waits for one, although the
	// whole program runs on one CPU.
	runtime.GOMAXPROCS(4)
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench/dns:", err)
		os.Exit(1)
	}
}

type options struct {
	dnslb, nsd, knot, gdnsd, dnsperf string
	servers                          string
	rounds                           int
	duration                         time.Duration
	rates                            string
	saturated                        bool
	serverCPU                        string
	keep                             bool
	threads                          bool
}

// sample is one run of one server at one load.
type sample struct {
	server string
	load   string // "saturated" or "20000 q/s"
	qps    float64
	cpuPer float64 // server CPU µs per answered query
	runs   float64 // times a server thread was put on a CPU, per answered query
	p50    float64 // µs; fixed rates only
	p99    float64
	p999   float64
	lost   int
	wrong  int
}

func run(o options) error {
	names := strings.Split(o.servers, ",")
	bins := map[string]string{"dnslb": o.dnslb, "nsd": o.nsd, "knot": o.knot, "gdnsd": o.gdnsd}
	for _, n := range names {
		if _, ok := bins[n]; !ok {
			return fmt.Errorf("-servers: unknown server %q (want dnslb, gdnsd, knot, nsd)", n)
		}
		p, err := exec.LookPath(bins[n])
		if err != nil {
			return fmt.Errorf("%s not found (run .ci/deps for the peers, make dnslb for dnslb): %w", bins[n], err)
		}
		if bins[n], err = filepath.Abs(p); err != nil {
			return err
		}
	}
	if o.saturated {
		if _, err := exec.LookPath(o.dnsperf); err != nil {
			return fmt.Errorf("dnsperf not found (run .ci/deps): %w", err)
		}
	}
	var rates []int
	for _, r := range strings.Split(o.rates, ",") {
		if r = strings.TrimSpace(r); r == "" {
			continue
		}
		n, err := strconv.Atoi(r)
		if err != nil || n <= 0 || n > 1_000_000 {
			return fmt.Errorf("-rates: %q is not a rate between 1 and 1000000", r)
		}
		rates = append(rates, n)
	}
	if o.rounds < 1 || o.duration < time.Second || o.duration > 2*time.Minute {
		return fmt.Errorf("-rounds must be at least 1 and -duration between 1s and 2m")
	}

	dir, err := os.MkdirTemp("", "ringfront-bench-dns-")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	checkPort, closeTargets, err := openTargets()
	if err != nil {
		return err
	}
	defer closeTargets()
	var servers []*server
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()
	for _, n := range names {
		s, err := setup(n, bins[n], dir, freePort(), checkPort, o.serverCPU)
		if err != nil {
			return err
		}
		servers = append(servers, s)
		if err := s.start(); err != nil {
			return err
		}
	}
	queries := filepath.Join(dir, "queries.txt")
	if err := writeQueries(queries); err != nil {
		return err
	}

	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("# %s, load average %s", time.Now().Format(time.RFC3339), load)
	for _, s := range servers {
		fmt.Printf("# %s\n", s.version)
	}
	fmt.Printf("# servers pinned to CPU %s, one socket/thread each; load on the other CPU; %d alternating rounds of %v per load\n",
		o.serverCPU, o.rounds, o.duration)

	var all []sample
	for r := range o.rounds {
		// Rotate the order each round so no server always runs first.
		order := slices.Clone(servers)
		for range r % len(order) {
			order = append(order[1:], order[0])
		}
		for _, s := range order {
			if o.saturated {
				smp, err := saturated(o, s, queries)
				if err != nil {
					return err
				}
				report(r, smp)
				all = append(all, smp)
			}
			for _, rate := range rates {
				smp, err := fixed(o, s, rate)
				if err != nil {
					return err
				}
				report(r, smp)
				all = append(all, smp)
			}
		}
	}
	loads := []string{}
	if o.saturated {
		loads = append(loads, "saturated")
	}
	for _, r := range rates {
		loads = append(loads, rateName(r))
	}
	summarise(all, names, loads)
	load, _ = os.ReadFile("/proc/loadavg")
	fmt.Printf("# done %s, load average %s", time.Now().Format(time.RFC3339), load)
	return nil
}

func rateName(r int) string { return fmt.Sprintf("%d q/s", r) }

func report(round int, s sample) {
	if s.load == "saturated" {
		fmt.Printf("round %d  %-6s %-10s %9.0f q/s  %6.2f µs CPU/query  %5.3f runs/query  lost %d\n", round+1, s.server, s.load, s.qps, s.cpuPer, s.runs, s.lost)
		return
	}
	fmt.Printf("round %d  %-6s %-10s %9.0f q/s  %6.2f µs CPU/query  %5.3f runs/query  p50 %5.0f  p99 %6.0f  p99.9 %6.0f µs  lost %d  wrong %d\n",
		round+1, s.server, s.load, s.qps, s.cpuPer, s.runs, s.p50, s.p99, s.p999, s.lost, s.wrong)
}

// account fills in the sample's CPU and run figures from the server's
// accounting before and after a run of elapsed that answered n queries,
// and prints them by thread if asked to.
func account(o options, smp *sample, before, after usage, elapsed time.Duration, n float64) {
	d := after.since(before)
	ns, runs := d.total()
	smp.cpuPer = float64(ns) / 1e3 / n
	smp.runs = float64(runs) / n
	if !o.threads {
		return
	}
	ids := slices.Collect(maps.Keys(d))
	slices.SortFunc(ids, func(a, b string) int { return cmp.Compare(d[b].ns, d[a].ns) })
	secs := elapsed.Seconds()
	for _, id := range ids {
		t := d[id]
		if t.runs == 0 {
			continue
		}
		fmt.Printf("    %-6s %-10s thread %-14s %-15s %8.0f µs CPU/s  %7.0f runs/s  %6.1f µs/run\n",
			smp.server, smp.load, id, t.comm, float64(t.ns)/1e3/secs, float64(t.runs)/secs, float64(t.ns)/1e3/float64(t.runs))
	}
}

// fixed runs the paced generator at rate against s.
func fixed(o options, s *server, rate int) (sample, error) {
	smp := sample{server: s.name, load: rateName(rate)}
	before, err := cpuUsage(s.cmd.Process.Pid)
	if err != nil {
		return smp, err
	}
	res, err := fixedRate(s.port, rate, o.duration, 300*time.Millisecond)
	if err != nil {
		return smp, fmt.Errorf("%s at %d q/s: %w", s.name, rate, err)
	}
	after, err := cpuUsage(s.cmd.Process.Pid)
	if err != nil {
		return smp, err
	}
	if res.answered == 0 {
		return smp, fmt.Errorf("%s at %d q/s answered nothing", s.name, rate)
	}
	smp.qps = float64(res.answered) / res.elapsed.Seconds()
	account(o, &smp, before, after, res.elapsed, float64(res.answered))
	smp.p50 = float64(res.percentile(0.50)) / 1e3
	smp.p99 = float64(res.percentile(0.99)) / 1e3
	smp.p999 = float64(res.percentile(0.999)) / 1e3
	smp.lost, smp.wrong = res.lost, res.wrong
	return smp, nil
}

// saturated loads s with dnsperf (4 clients, 200 outstanding queries)
// for the run's length.
func saturated(o options, s *server, queries string) (sample, error) {
	smp := sample{server: s.name, load: "saturated"}
	before, err := cpuUsage(s.cmd.Process.Pid)
	if err != nil {
		return smp, err
	}
	began := time.Now()
	secs := int(o.duration / time.Second)
	out, err := exec.Command(o.dnsperf, "-s", "127.0.0.1", "-p", strconv.Itoa(s.port), "-d", queries,
		"-l", strconv.Itoa(secs), "-c", "4", "-T", "1", "-q", "200", "-t", "2", "-e").CombinedOutput()
	if err != nil {
		return smp, fmt.Errorf("dnsperf against %s: %w\n%s", s.name, err, out)
	}
	after, err := cpuUsage(s.cmd.Process.Pid)
	if err != nil {
		return smp, err
	}
	elapsed := time.Since(began)
	sum, err := dnsperf.Parse(out)
	if err != nil {
		return smp, fmt.Errorf("%s: %w", s.name, err)
	}
	smp.qps, smp.lost = sum.QPS, sum.Lost
	account(o, &smp, before, after, elapsed, sum.Completed)
	return smp, nil
}

// writeQueries writes the mix as a dnsperf data file, 80 lines: the
// same cycle the paced generator sends.
func writeQueries(path string) error {
	var b strings.Builder
	for i := range 10 * len(nxNames) {
		m := mix(i)
		t := "A"
		if m.qtype == 28 {
			t = "AAAA"
		}
		fmt.Fprintf(&b, "%s %s\n", m.name, t)
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// summarise prints the medians: for each load, every server with its
// figures and the ratio of its CPU per query (and p99) to the best peer's.
func summarise(all []sample, names, loads []string) {
	med := func(server, load string, f func(sample) float64) float64 {
		var v []float64
		for _, s := range all {
			if s.server == server && s.load == load {
				v = append(v, f(s))
			}
		}
		return median(v)
	}
	fmt.Println()
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "median\tserver\tanswered q/s\tq per CPU-s\tCPU µs/query\tx best peer\tp50 µs\tp99 µs\tp99 x best peer\tp99.9 µs\tlost\twrong\t")
	for _, load := range loads {
		bestCPU, bestP99 := 0.0, 0.0
		for _, n := range names {
			if n == "dnslb" {
				continue
			}
			c, p := med(n, load, func(s sample) float64 { return s.cpuPer }), med(n, load, func(s sample) float64 { return s.p99 })
			if bestCPU == 0 || c < bestCPU {
				bestCPU = c
			}
			if bestP99 == 0 || p < bestP99 {
				bestP99 = p
			}
		}
		for _, n := range names {
			cpu := med(n, load, func(s sample) float64 { return s.cpuPer })
			ratio, p99ratio := "-", "-"
			if bestCPU > 0 {
				ratio = fmt.Sprintf("%.2f", cpu/bestCPU)
			}
			p50, p99, p999 := "-", "-", "-"
			if load != "saturated" {
				p50 = fmt.Sprintf("%.0f", med(n, load, func(s sample) float64 { return s.p50 }))
				p99v := med(n, load, func(s sample) float64 { return s.p99 })
				p99 = fmt.Sprintf("%.0f", p99v)
				p999 = fmt.Sprintf("%.0f", med(n, load, func(s sample) float64 { return s.p999 }))
				if bestP99 > 0 {
					p99ratio = fmt.Sprintf("%.2f", p99v/bestP99)
				}
			}
			fmt.Fprintf(w, "%s\t%s\t%.0f\t%.0fk\t%.2f\t%s\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t\n", load, n,
				med(n, load, func(s sample) float64 { return s.qps }), 1e3/cpu, cpu, ratio, p50, p99, p99ratio, p999,
				med(n, load, func(s sample) float64 { return float64(s.lost) }),
				med(n, load, func(s sample) float64 { return float64(s.wrong) }))
		}
	}
	w.Flush()
}

func openTargets() (port int, closeAll func(), err error) {
	for attempt := 0; attempt < 20; attempt++ {
		var lns []net.Listener
		port = freePort()
		ok := true
		for _, t := range targets {
			ln, err := net.Listen("tcp", net.JoinHostPort(t, strconv.Itoa(port)))
			if err != nil {
				ok = false
				break
			}
			lns = append(lns, ln)
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
		}
		closeAll = func() {
			for _, ln := range lns {
				ln.Close()
			}
		}
		if ok {
			return port, closeAll, nil
		}
		closeAll()
	}
	return 0, nil, errors.New("no free port for the health-check targets")
}

func freePort() int {
	for {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			continue
		}
		p := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		return p
	}
}

// waitAnswer waits until a server answers a SOA query on port.
func waitAnswer(port int, limit time.Duration) error {
	// A minimal SOA query for example.org, ID 0x4242.
	q := []byte{0x42, 0x42, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'o', 'r', 'g', 0, 0, 6, 0, 1}
	deadline := time.Now().Add(limit)
	var lastErr error
	for time.Now().Before(deadline) {
		c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return err
		}
		c.SetDeadline(time.Now().Add(200 * time.Millisecond))
		c.Write(q)
		buf := make([]byte, 512)
		n, err := c.Read(buf)
		c.Close()
		if err == nil && n > 12 && buf[0] == 0x42 {
			return nil
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no answer within %v: %v", limit, lastErr)
}
