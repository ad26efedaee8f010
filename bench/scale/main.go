//go:build linux

// Command scale measures how far ringfront's two tiers go as they grow,
// on this machine, and prints the figures as Markdown tables (the
// README's "How far it goes" cites them):
//
//   - ring: appnode's md5 ring at 20 to 20,000 members with 128, 256
//     and 1,024 vnodes — balance (peak/mean share over many random
//     member sets), the share of users moved by a join or a leave
//     against the optimum, owner lookup time, build time, memory, the
//     hinted-copy walk and the share of anti-entropy leaves cut — beside
//     jump hash and Maglev's table (reference implementations in this
//     program only);
//   - dns: dnslb's answers for a service of 20, 100 and 1,000
//     frontends: wire size with and without EDNS at max_answers 8 and
//     64, whether they fit 512 and 1232 bytes, queries per CPU-second
//     (dnsperf, dnslb pinned to one CPU) and what the health checks of
//     that many frontends cost;
//   - gossip: appnode's memberlist (its own settings, through
//     appnode/gossip) at 5, 50 and 200 members in this process on
//     loopback: traffic per member, the burst when they start, the time
//     until every member sees a killed one dead; and memberlist's own
//     formulas carried to larger clusters.
//
// The redirect tier (appnode's 307 and forward against nginx on one
// CPU) is bench/appnode -tier; `make bench-scale` runs both. Run it
// under the benchmark lock on a shared machine (make bench-scale takes
// it). Every load is bounded in time and count and stays on loopback.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

func main() {
	var (
		parts   = flag.String("parts", "ring,dns,gossip", "what to measure, comma-separated: ring, dns, gossip")
		members = flag.String("members", "20,200,2000,20000", "ring sizes")
		vnodes  = flag.String("vnodes", "128,256,1024", "vnodes per member")
		budget  = flag.Int("budget", 30_000_000, "ring positions hashed per ring cell across its random member sets (more: more sets)")
		maxSets = flag.Int("max-sets", 500, "most random member sets per cell")
		seed    = flag.Uint64("seed", 1, "seed of the random member sets")
		dnslb   = flag.String("dnslb", "bin/dnslb", "dnslb binary")
		dnsperf = flag.String("dnsperf", "dnsperf", "dnsperf binary")
		fronts  = flag.String("frontends", "20,100,1000", "service sizes for the DNS figures")
		dnsDur  = flag.Duration("dns-duration", 5*time.Second, "each dnsperf run")
		cpu     = flag.String("server-cpu", "0", "CPU dnslb is pinned to (taskset -c)")
		loadCPU = flag.String("load-cpu", "1", "CPU dnsperf is pinned to")
		gsizes  = flag.String("gossip-members", "5,50,200", "cluster sizes for the gossip figures")
		gwindow = flag.Duration("gossip-window", 10*time.Second, "how long gossip traffic is counted once a cluster has settled")
	)
	flag.Parse()
	want := map[string]bool{}
	for _, p := range strings.Split(*parts, ",") {
		switch p = strings.TrimSpace(p); p {
		case "ring", "dns", "gossip":
			want[p] = true
		default:
			fail(fmt.Errorf("-parts: unknown part %q (want ring, dns, gossip)", p))
		}
	}
	out := os.Stdout
	fmt.Fprintf(out, "## bench/scale, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(out, "%d CPUs, %s, load average %s\n\n", runtime.NumCPU(), runtime.Version(), loadAverage())
	if want["ring"] {
		ms, err := ints("-members", *members, 2, 1<<indexBits-1)
		fail(err)
		vs, err := ints("-vnodes", *vnodes, 1, 4096)
		fail(err)
		runRing(out, ringOptions{members: ms, vnodes: vs, budget: *budget, minSets: 3, maxSets: *maxSets, seed: *seed, lookups: 200_000})
	}
	if want["dns"] {
		fs, err := ints("-frontends", *fronts, 1, 60_000)
		fail(err)
		fail(runDNS(out, dnsOptions{dnslb: *dnslb, dnsperf: *dnsperf, frontends: fs, duration: *dnsDur, cpu: *cpu, loadCPU: *loadCPU}))
	}
	if want["gossip"] {
		gs, err := ints("-gossip-members", *gsizes, 2, 500)
		fail(err)
		fail(runGossip(out, gossipOptions{sizes: gs, window: *gwindow}))
	}
	fmt.Fprintf(out, "Done %s, load average %s\n", time.Now().UTC().Format("15:04 MST"), loadAverage())
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/scale:", err)
		os.Exit(1)
	}
}

// logf reports progress on stderr; the tables go to stdout.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// ints parses a comma-separated list of integers in [lo, hi].
func ints(flagName, s string, lo, hi int) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < lo || n > hi {
			return nil, fmt.Errorf("%s: %q is not a number from %d to %d", flagName, f, lo, hi)
		}
		out = append(out, n)
	}
	return out, nil
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// group writes n with thousands separators.
func group(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// duration rounds d to three significant figures.
func duration(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	case d >= time.Microsecond:
		return fmt.Sprintf("%.1f µs", float64(d)/1e3)
	}
	return fmt.Sprintf("%d ns", d.Nanoseconds())
}

// bytesOf writes a byte count in B, KiB, MiB.
func bytesOf(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
