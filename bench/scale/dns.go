//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/ringfront/ringfront/bench/internal/cputime"
	"github.com/ringfront/ringfront/bench/internal/dnsperf"
)

// dnsOptions says how to measure dnslb's answers for large services.
type dnsOptions struct {
	dnslb, dnsperf string
	frontends      []int
	duration       time.Duration // each dnsperf run
	cpu            string        // CPU dnslb runs on
	loadCPU        string        // CPU dnsperf runs on
}

// The service names: the same frontends behind max_answers 8 (dnslb's
// default) and 64 (its largest).
var dnsServices = []struct {
	name string
	max  int
}{{"www.example.org.", 8}, {"wide.example.org.", 64}}

// dnsSize is one answer's wire size.
type dnsSize struct {
	frontends, max int
	qtype          string
	answers        int // records in the full answer
	plain, edns    int // UDP reply bytes, without and with EDNS (1232)
	plainTC        bool
	ednsTC         bool
	full           int // the whole answer over TCP
}

// dnsRate is dnslb's throughput for one name and type.
type dnsRate struct {
	frontends, max int
	qtype          string
	qps            float64 // answered queries per second
	perCPU         float64 // answered queries per CPU-second of dnslb
	lost           int
}

// dnsChecks is what health-checking the frontends costs dnslb.
type dnsChecks struct {
	frontends int
	core      float64       // share of one CPU, at one check per frontend per second
	perCheck  time.Duration // CPU per check
}

// dnslbProc is one dnslb this benchmark started.
type dnslbProc struct {
	cmd  *exec.Cmd
	port int
	done chan error
}

// frontendV4 is frontend i's IPv4 address: on loopback (127.1.0.0/16),
// where this program listens for the TCP checks.
func frontendV4(i int) string { return fmt.Sprintf("127.1.%d.%d", i/250, i%250+1) }

// frontendV6 is frontend i's IPv6 address, from the documentation
// prefix: only answered, never checked over the network.
func frontendV6(i int) string { return fmt.Sprintf("2001:db8::%x", i+1) }

// startDNSLB writes a config for a service of n frontends and starts
// dnslb on it, pinned to o.cpu. checkPort > 0 gives the IPv4 frontends
// a TCP check every second on that port (the listeners must be open);
// otherwise every frontend has an exec check of /bin/true once an hour,
// so no check runs while queries are measured.
func startDNSLB(o dnsOptions, dir string, n, checkPort int) (*dnslbProc, error) {
	port, err := freeUDPPort()
	if err != nil {
		return nil, err
	}
	quote := func(f func(int) string) string {
		q := make([]string, n)
		for i := range q {
			q[i] = `"` + f(i) + `"`
		}
		return strings.Join(q, ", ")
	}
	var services strings.Builder
	if checkPort > 0 {
		fmt.Fprintf(&services, `      - name: www.example.org.
        ttl: 20
        targets: [%s]
        check: {type: tcp, port: %d, interval: 1s, timeout: 500ms}
`, quote(frontendV4), checkPort)
	} else {
		for _, s := range dnsServices {
			fmt.Fprintf(&services, `      - name: %s
        ttl: 20
        max_answers: %d
        targets: [%s, %s]
        check: {type: exec, command: ["/bin/true"], interval: 1h, timeout: 10s}
`, s.name, s.max, quote(frontendV4), quote(frontendV6))
		}
	}
	cfg := fmt.Sprintf(`listen: ["127.0.0.1:%d"]
admin: {listen: "127.0.0.1:0"}
log: {level: warn}
sockets: 1
rrl: {responses_per_second: 0}
startup_timeout: 2m
zones:
  - origin: example.org.
    soa: {mname: ns1.example.org., rname: hostmaster.example.org., serial: 1, refresh: 3600, retry: 600, expire: 604800, minimum: 60}
    ns: [{name: ns1.example.org., addresses: ["127.0.0.1"]}]
    services:
%s`, port, services.String())
	path := filepath.Join(dir, fmt.Sprintf("dnslb-%d-%d.yaml", n, checkPort))
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(path + ".log")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("taskset", "-c", o.cpu, o.dnslb, "serve", "-c", path)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting dnslb: %w", err)
	}
	p := &dnslbProc{cmd: cmd, port: port, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); logf.Close() }()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, _, err := p.query("example.org.", dns.TypeSOA, false, "udp"); err == nil {
			return p, nil
		}
		select {
		case err := <-p.done:
			log, _ := os.ReadFile(path + ".log")
			return nil, fmt.Errorf("dnslb with %d frontends exited (%v):\n%s", n, err, log)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("dnslb with %d frontends did not answer within 2m", n)
		}
	}
}

// stop ends dnslb (taskset execs it: the PID is dnslb's) and reaps it.
func (p *dnslbProc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// query asks dnslb for name and type over network ("udp" or "tcp"),
// with EDNS (1232 bytes) or without, and returns the reply's wire size
// and the reply.
func (p *dnslbProc) query(name string, qtype uint16, edns bool, network string) (int, *dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.RecursionDesired = false
	if edns {
		q.SetEdns0(1232, false)
	}
	wire, err := q.Pack()
	if err != nil {
		return 0, nil, err
	}
	c, err := net.DialTimeout(network, net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)), time.Second)
	if err != nil {
		return 0, nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 65535)
	var n int
	if network == "tcp" {
		wire = append(binary.BigEndian.AppendUint16(nil, uint16(len(wire))), wire...)
		if _, err := c.Write(wire); err != nil {
			return 0, nil, err
		}
		if _, err := io.ReadFull(c, buf[:2]); err != nil {
			return 0, nil, err
		}
		n = int(binary.BigEndian.Uint16(buf[:2]))
		if _, err := io.ReadFull(c, buf[:n]); err != nil {
			return 0, nil, err
		}
	} else {
		if _, err := c.Write(wire); err != nil {
			return 0, nil, err
		}
		if n, err = c.Read(buf); err != nil {
			return 0, nil, err
		}
	}
	r := new(dns.Msg)
	if err := r.Unpack(buf[:n]); err != nil {
		return 0, nil, fmt.Errorf("unpacking the answer to %s: %w", name, err)
	}
	if r.Id != q.Id || r.Rcode != dns.RcodeSuccess {
		return 0, nil, fmt.Errorf("answer to %s: id %d (sent %d), rcode %s", name, r.Id, q.Id, dns.RcodeToString[r.Rcode])
	}
	return n, r, nil
}

func freeUDPPort() (int, error) {
	for range 50 {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			l.Close()
			return port, nil
		}
	}
	return 0, errors.New("no port free on both UDP and TCP")
}

// sizes measures every service's A and AAAA answers.
func (p *dnslbProc) sizes(n int) ([]dnsSize, error) {
	var out []dnsSize
	for _, s := range dnsServices {
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
			sz := dnsSize{frontends: n, max: s.max, qtype: dns.TypeToString[qt]}
			full, r, err := p.query(s.name, qt, true, "tcp")
			if err != nil {
				return nil, err
			}
			sz.full, sz.answers = full, len(r.Answer)
			if sz.plain, r, err = p.query(s.name, qt, false, "udp"); err != nil {
				return nil, err
			}
			sz.plainTC = r.Truncated
			if sz.edns, r, err = p.query(s.name, qt, true, "udp"); err != nil {
				return nil, err
			}
			sz.ednsTC = r.Truncated
			out = append(out, sz)
		}
	}
	return out, nil
}

// rate loads dnslb with dnsperf (4 clients, 200 queries outstanding,
// EDNS) asking name and type, and measures its CPU meanwhile.
func (p *dnslbProc) rate(o dnsOptions, dir, name, qtype string) (float64, float64, int, error) {
	qfile := filepath.Join(dir, "queries.txt")
	if err := os.WriteFile(qfile, []byte(name+" "+qtype+"\n"), 0o600); err != nil {
		return 0, 0, 0, err
	}
	before, err := cputime.Tree(p.cmd.Process.Pid)
	if err != nil {
		return 0, 0, 0, err
	}
	secs := max(1, int(o.duration/time.Second))
	out, err := exec.Command("taskset", "-c", o.loadCPU, o.dnsperf, "-s", "127.0.0.1", "-p", strconv.Itoa(p.port), "-d", qfile,
		"-l", strconv.Itoa(secs), "-c", "4", "-T", "1", "-q", "200", "-t", "2", "-e").CombinedOutput()
	if err != nil {
		return 0, 0, 0, fmt.Errorf("dnsperf: %w\n%s", err, out)
	}
	after, err := cputime.Tree(p.cmd.Process.Pid)
	if err != nil {
		return 0, 0, 0, err
	}
	sum, err := dnsperf.Parse(out)
	if err != nil {
		return 0, 0, 0, err
	}
	return sum.QPS, sum.Completed / (after - before).Seconds(), sum.Lost, nil
}

// openFrontends listens on port at every IPv4 frontend address (loopback)
// and accepts and closes connections, so TCP checks pass.
func openFrontends(n int) (int, func(), error) {
	var lns []net.Listener
	closeAll := func() {
		for _, l := range lns {
			l.Close()
		}
	}
	port, err := freeUDPPort()
	if err != nil {
		return 0, nil, err
	}
	for i := range n {
		l, err := net.Listen("tcp", net.JoinHostPort(frontendV4(i), strconv.Itoa(port)))
		if err != nil {
			closeAll()
			return 0, nil, fmt.Errorf("listening for frontend %d's checks: %w", i, err)
		}
		lns = append(lns, l)
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	return port, closeAll, nil
}

// checkCost runs dnslb with n TCP-checked frontends (one check each a
// second) and no queries, and measures its CPU over a few seconds.
func checkCost(o dnsOptions, dir string, n int) (dnsChecks, error) {
	port, closeAll, err := openFrontends(n)
	if err != nil {
		return dnsChecks{}, err
	}
	defer closeAll()
	p, err := startDNSLB(o, dir, n, port)
	if err != nil {
		return dnsChecks{}, err
	}
	defer p.stop()
	time.Sleep(2 * time.Second) // past the start's first rounds
	const idle = 5 * time.Second
	before, err := cputime.Tree(p.cmd.Process.Pid)
	if err != nil {
		return dnsChecks{}, err
	}
	time.Sleep(idle)
	after, err := cputime.Tree(p.cmd.Process.Pid)
	if err != nil {
		return dnsChecks{}, err
	}
	used := after - before
	return dnsChecks{frontends: n, core: used.Seconds() / idle.Seconds(), perCheck: used / time.Duration(n*int(idle/time.Second))}, nil
}

// runDNS measures dnslb for each service size and prints the tables.
func runDNS(w io.Writer, o dnsOptions) error {
	for _, bin := range []*string{&o.dnslb, &o.dnsperf} {
		p, err := exec.LookPath(*bin)
		if err != nil {
			return fmt.Errorf("%s not found (make dnslb; .ci/deps installs dnsperf): %w", *bin, err)
		}
		*bin = p
	}
	dir, err := os.MkdirTemp("", "ringfront-bench-scale-dns-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var sizes []dnsSize
	var rates []dnsRate
	var checks []dnsChecks
	for _, n := range o.frontends {
		start := time.Now()
		p, err := startDNSLB(o, dir, n, 0)
		if err != nil {
			return err
		}
		sz, err := p.sizes(n)
		if err != nil {
			p.stop()
			return err
		}
		sizes = append(sizes, sz...)
		for _, q := range []struct {
			name, qtype string
			max         int
		}{{dnsServices[0].name, "A", dnsServices[0].max}, {dnsServices[1].name, "A", dnsServices[1].max}, {dnsServices[0].name, "AAAA", dnsServices[0].max}} {
			qps, perCPU, lost, err := p.rate(o, dir, q.name, q.qtype)
			if err != nil {
				p.stop()
				return fmt.Errorf("%d frontends, %s %s: %w", n, q.name, q.qtype, err)
			}
			rates = append(rates, dnsRate{frontends: n, max: q.max, qtype: q.qtype, qps: qps, perCPU: perCPU, lost: lost})
		}
		p.stop()
		c, err := checkCost(o, dir, n)
		if err != nil {
			return err
		}
		checks = append(checks, c)
		logf("dns %d frontends in %.1fs", n, time.Since(start).Seconds())
	}
	printDNS(w, o, sizes, rates, checks)
	return nil
}

func printDNS(w io.Writer, o dnsOptions, sizes []dnsSize, rates []dnsRate, checks []dnsChecks) {
	fmt.Fprintln(w, "### DNS answers for large services")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Reply bytes over UDP without EDNS (512-byte limit) and with EDNS (1232), and the whole answer over TCP; TC = truncated,")
	fmt.Fprintln(w, "the resolver retries over TCP. Every frontend has an IPv4 and an IPv6 address; dnslb answers at most max_answers, rotated.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| frontends | max_answers | type | records | no EDNS bytes | EDNS bytes | TCP bytes | fits 512 | fits 1232 |")
	fmt.Fprintln(w, "|---:|---:|---|---:|---:|---:|---:|---|---|")
	yes := func(tc bool) string {
		if tc {
			return "no (TC)"
		}
		return "yes"
	}
	for _, s := range sizes {
		fmt.Fprintf(w, "| %s | %d | %s | %d | %d%s | %d%s | %d | %s | %s |\n", group(s.frontends), s.max, s.qtype, s.answers,
			s.plain, tcMark(s.plainTC), s.edns, tcMark(s.ednsTC), s.full, yes(s.plainTC), yes(s.ednsTC))
	}
	fmt.Fprintln(w)
	for _, qt := range []string{"A", "AAAA"} {
		if base, per, ok := recordCost(sizes, qt); ok {
			fmt.Fprintf(w, "%s: %d bytes + %d per record (EDNS adds 11): at most %d records fit 512 bytes, %d fit 1232 with EDNS.\n",
				qt, base, per, (512-base)/per, (1232-base-11)/per)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "dnslb pinned to CPU %s, one socket; dnsperf (4 clients, 200 outstanding, EDNS) for %v per row on CPU %s,\n", o.cpu, o.duration, o.loadCPU)
	fmt.Fprintln(w, "every query for the same name and type; health checks not running (exec checks once an hour).")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| frontends | max_answers | type | answered q/s | q per CPU-s | lost |")
	fmt.Fprintln(w, "|---:|---:|---|---:|---:|---:|")
	for _, r := range rates {
		fmt.Fprintf(w, "| %s | %d | %s | %.0f | %.0fk | %d |\n", group(r.frontends), r.max, r.qtype, r.qps, r.perCPU/1e3, r.lost)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Health checks: dnslb with the service's IPv4 frontends TCP-checked once a second each (listeners on 127.1.0.0/16), no")
	fmt.Fprintln(w, "queries, CPU over 5 s.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| frontends | checks/s | CPU per check | share of one CPU |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|")
	for _, c := range checks {
		fmt.Fprintf(w, "| %s | %s | %s | %.1f%% |\n", group(c.frontends), group(c.frontends), duration(c.perCheck), 100*c.core)
	}
	fmt.Fprintln(w)
}

// recordCost derives, from two full answers of the same type with
// different record counts, the bytes of an answer without records and
// of each record (compressed: the name is a pointer).
func recordCost(sizes []dnsSize, qtype string) (base, per int, ok bool) {
	var a, b *dnsSize
	for i := range sizes {
		s := &sizes[i]
		if s.qtype != qtype {
			continue
		}
		if a == nil {
			a = s
		} else if s.answers != a.answers {
			b = s
			break
		}
	}
	if a == nil || b == nil {
		return 0, 0, false
	}
	// full is over TCP with EDNS: take its OPT record (11 bytes) off.
	per = (b.full - a.full) / (b.answers - a.answers)
	return a.full - 11 - per*a.answers, per, true
}

func tcMark(tc bool) string {
	if tc {
		return " TC"
	}
	return ""
}
