// Command dns benchmarks dnslb against NSD: both serve the same zone on
// 127.0.0.1 and Debian's dnsperf loads each in turn, several alternating
// rounds. For each round it prints queries/s, average latency and the
// server's CPU seconds per million answered queries (from the kernel's
// accounting of the server's own processes), then the medians and the
// dnslb/NSD ratios.
//
//	go run ./bench/dns -dnslb bin/dnslb -rounds 5 -seconds 10
//
// Only loopback is used: the health-checked targets are listeners this
// program opens on 127.0.0.x.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

func main() {
	dnslbBin := flag.String("dnslb", "bin/dnslb", "dnslb binary")
	nsdBin := flag.String("nsd", "/usr/sbin/nsd", "NSD binary")
	dnsperfBin := flag.String("dnsperf", "dnsperf", "dnsperf binary")
	rounds := flag.Int("rounds", 5, "alternating rounds")
	seconds := flag.Int("seconds", 10, "dnsperf run length per round, seconds")
	clients := flag.Int("clients", 4, "dnsperf clients (-c)")
	threads := flag.Int("threads", 1, "dnsperf threads (-T)")
	outstanding := flag.Int("outstanding", 200, "dnsperf outstanding queries (-q)")
	edns := flag.Bool("edns", true, "send EDNS0 queries (dnsperf -e)")
	servers := flag.Int("servers", 0, "server sockets/processes for each server; 0 = number of CPUs")
	keep := flag.Bool("keep", false, "keep the work directory")
	flag.Parse()
	if err := run(*dnslbBin, *nsdBin, *dnsperfBin, *rounds, *seconds, *clients, *threads, *outstanding, *edns, *servers, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "bench/dns:", err)
		os.Exit(1)
	}
}

const zoneOrigin = "example.org."

// targets are the service's addresses; each gets a listener so the
// health checks pass.
var targets = []string{"127.0.0.10", "127.0.0.20", "127.0.0.30", "127.0.0.40"}

var statics = []string{
	"mail 300 IN A 198.51.100.25",
	"@ 300 IN MX 10 mail.example.org.",
	"@ 300 IN TXT \"v=spf1 mx -all\"",
	"api 300 IN A 198.51.100.30",
	"ns1 3600 IN A 127.0.0.1",
}

// queries is the query mix: mostly the service name, as a load-balanced
// name gets, plus static names, the apex, and missing names.
var queries = []string{
	"www.example.org A", "www.example.org A", "www.example.org A", "www.example.org A",
	"www.example.org A", "www.example.org A", "www.example.org AAAA",
	"mail.example.org A", "example.org MX", "example.org SOA", "api.example.org A",
	"nope.example.org A", "www.example.org MX",
}

type result struct {
	server     string
	qps        float64
	latency    float64 // seconds
	completed  float64
	lost       float64
	cpuSeconds float64
}

func (r result) cpuPerMillion() float64 { return r.cpuSeconds / r.completed * 1e6 }

func run(dnslbBin, nsdBin, dnsperfBin string, rounds, seconds, clients, threads, outstanding int, edns bool, servers int, keep bool) error {
	for _, b := range []string{dnslbBin, nsdBin, dnsperfBin} {
		if _, err := exec.LookPath(b); err != nil {
			return fmt.Errorf("%s not found (run .ci/deps for nsd and dnsperf, make build for dnslb): %w", b, err)
		}
	}
	if servers == 0 {
		servers = cpus()
	}
	dir, err := os.MkdirTemp("", "ringfront-bench-dns-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	checkPort, closeTargets, err := openTargets()
	if err != nil {
		return err
	}
	defer closeTargets()
	dnslbPort, nsdPort := freePort(), freePort()
	if err := writeFiles(dir, dnslbPort, nsdPort, checkPort, servers); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(context.Background())
	dnslb := exec.CommandContext(ctx, dnslbBin, "serve", "-c", filepath.Join(dir, "dnslb.yaml"))
	dnslb.Stderr, _ = os.Create(filepath.Join(dir, "dnslb.log"))
	nsd := exec.CommandContext(ctx, nsdBin, "-d", "-c", filepath.Join(dir, "nsd.conf"))
	nsd.Stderr, _ = os.Create(filepath.Join(dir, "nsd.stderr"))
	for _, c := range []*exec.Cmd{dnslb, nsd} {
		c.Cancel = func() error { return c.Process.Signal(syscall.SIGTERM) }
		c.WaitDelay = 5 * time.Second
		if err := c.Start(); err != nil {
			cancel()
			return fmt.Errorf("starting %s: %w", c.Path, err)
		}
	}
	defer func() {
		cancel() // SIGTERM both servers, then reap them
		dnslb.Wait()
		nsd.Wait()
	}()
	for name, port := range map[string]int{"dnslb": dnslbPort, "nsd": nsdPort} {
		if err := waitAnswer(port, 15*time.Second); err != nil {
			return fmt.Errorf("%s on port %d not answering: %w (logs in %s)", name, port, err, dir)
		}
	}
	fmt.Printf("# dnslb vs NSD %s, %d alternating rounds of %ds, dnsperf -c %d -T %d -q %d, edns=%v, %d sockets/processes each, %d CPUs\n",
		nsdVersion(nsdBin), rounds, seconds, clients, threads, outstanding, edns, servers, cpus())
	var all []result
	for r := range rounds {
		order := []string{"dnslb", "nsd"}
		if r%2 == 1 {
			order = []string{"nsd", "dnslb"}
		}
		for _, name := range order {
			port, pid := dnslbPort, dnslb.Process.Pid
			if name == "nsd" {
				port, pid = nsdPort, nsd.Process.Pid
			}
			res, err := perfRound(dnsperfBin, dir, name, port, pid, seconds, clients, threads, outstanding, edns)
			if err != nil {
				return err
			}
			fmt.Printf("round %d %-5s %9.0f q/s  avg %6.3f ms  %7.2f CPU s per million  lost %.0f\n",
				r+1, name, res.qps, res.latency*1000, res.cpuPerMillion(), res.lost)
			all = append(all, res)
		}
	}
	summarise(all)
	return nil
}

func cpus() int { return runtime.NumCPU() }

func summarise(all []result) {
	med := func(server string, f func(result) float64) float64 {
		var v []float64
		for _, r := range all {
			if r.server == server {
				v = append(v, f(r))
			}
		}
		slices.Sort(v)
		if len(v) == 0 {
			return 0
		}
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	qps := func(r result) float64 { return r.qps }
	lat := func(r result) float64 { return r.latency * 1000 }
	cpu := func(r result) float64 { return r.cpuPerMillion() }
	fmt.Println()
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "median\tqueries/s\tavg latency ms\tCPU s per million queries\t")
	for _, s := range []string{"dnslb", "nsd"} {
		fmt.Fprintf(w, "%s\t%.0f\t%.3f\t%.2f\t\n", s, med(s, qps), med(s, lat), med(s, cpu))
	}
	fmt.Fprintf(w, "dnslb/NSD\t%.2fx\t%.2fx\t%.2fx\t\n", med("dnslb", qps)/med("nsd", qps), med("dnslb", lat)/med("nsd", lat), med("dnslb", cpu)/med("nsd", cpu))
	w.Flush()
	fmt.Println("targets: throughput >= 1.00x NSD, CPU per query <= 1.25x NSD")
}

var perfLine = regexp.MustCompile(`^\s*(Queries completed|Queries lost|Queries per second|Average Latency \(s\)):\s+([0-9.]+)`)

func perfRound(bin, dir, server string, port, pid, seconds, clients, threads, outstanding int, edns bool) (result, error) {
	res := result{server: server}
	before, err := treeCPU(pid)
	if err != nil {
		return res, err
	}
	args := []string{"-s", "127.0.0.1", "-p", strconv.Itoa(port), "-d", filepath.Join(dir, "queries.txt"),
		"-l", strconv.Itoa(seconds), "-c", strconv.Itoa(clients), "-T", strconv.Itoa(threads), "-q", strconv.Itoa(outstanding), "-t", "2"}
	if edns {
		args = append(args, "-e")
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		return res, fmt.Errorf("dnsperf against %s: %w\n%s", server, err, out)
	}
	after, err := treeCPU(pid)
	if err != nil {
		return res, err
	}
	res.cpuSeconds = after - before
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		m := perfLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		v, _ := strconv.ParseFloat(m[2], 64)
		switch m[1] {
		case "Queries completed":
			res.completed = v
		case "Queries lost":
			res.lost = v
		case "Queries per second":
			res.qps = v
		case "Average Latency (s)":
			res.latency = v
		}
	}
	if res.completed == 0 {
		return res, fmt.Errorf("dnsperf against %s completed no queries:\n%s", server, out)
	}
	return res, nil
}

// treeCPU is the user+system CPU seconds of pid and all its descendants
// (NSD forks its server processes).
func treeCPU(pid int) (float64, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	parent := map[int]int{}
	ticks := map[int]float64{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+2:])
		// After the command: state(0) ppid(1) ... utime(11) stime(12).
		if len(f) < 13 {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		parent[p] = pp
		ticks[p] = ut + st
	}
	var total float64
	for p, t := range ticks {
		for q := p; q > 1; q = parent[q] {
			if q == pid {
				total += t
				break
			}
		}
	}
	if _, ok := ticks[pid]; !ok {
		return 0, fmt.Errorf("process %d is gone", pid)
	}
	return total / 100, nil // USER_HZ is 100 on Linux
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

func writeFiles(dir string, dnslbPort, nsdPort, checkPort, servers int) error {
	quoted := make([]string, len(targets))
	for i, t := range targets {
		quoted[i] = `"` + t + `"`
	}
	var recs []string
	for _, r := range statics {
		recs = append(recs, fmt.Sprintf("      - %q", r))
	}
	dnslbCfg := fmt.Sprintf(`listen: ["127.0.0.1:%d"]
admin: {listen: "127.0.0.1:0"}
sockets: %d
zones:
  - origin: example.org.
    ttl: 3600
    soa: {mname: ns1.example.org., rname: hostmaster.example.org., serial: 1, refresh: 3600, retry: 600, expire: 604800, minimum: 60}
    ns: [{name: ns1.example.org., addresses: ["127.0.0.1"]}]
    records:
%s
    services:
      - name: www.example.org.
        ttl: 20
        max_answers: 4
        targets: [%s]
        check: {type: tcp, port: %d, interval: 1s, timeout: 500ms}
`, dnslbPort, servers, strings.Join(recs[:len(recs)-1], "\n"), strings.Join(quoted, ", "), checkPort)
	zone := "$ORIGIN example.org.\n$TTL 3600\n@ IN SOA ns1.example.org. hostmaster.example.org. 1 3600 600 604800 60\n@ IN NS ns1.example.org.\n"
	for _, r := range statics {
		zone += r + "\n"
	}
	for _, t := range targets {
		zone += "www 20 IN A " + t + "\n"
	}
	nsdCfg := fmt.Sprintf(`server:
  ip-address: 127.0.0.1@%d
  port: %d
  server-count: %d
  reuseport: yes
  username: ""
  chroot: ""
  zonesdir: "%s"
  pidfile: "%s/nsd.pid"
  database: ""
  zonelistfile: "%s/zone.list"
  xfrdfile: "%s/xfrd.state"
  xfrdir: "%s"
  logfile: "%s/nsd.log"
  verbosity: 0
  hide-version: yes
  # Debian enables response rate limiting by default; a benchmark from
  # one client address would otherwise measure the limiter.
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: example.org
  zonefile: example.org.zone
`, nsdPort, nsdPort, servers, dir, dir, dir, dir, dir, dir)
	files := map[string]string{
		"dnslb.yaml":       dnslbCfg,
		"example.org.zone": zone,
		"nsd.conf":         nsdCfg,
		"queries.txt":      strings.Join(queries, "\n") + "\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			return err
		}
	}
	return nil
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

func nsdVersion(bin string) string {
	out, _ := exec.Command(bin, "-v").CombinedOutput()
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}
