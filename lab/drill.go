package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// A drill injects one fault while a client load runs, heals the system,
// checks it, and reports what the client saw.
type drill struct {
	name string
	what string
	// hold is how long the fault lasts before healing.
	hold  time.Duration
	fault func(l *lab, d *drillRun) error
	heal  func(l *lab, d *drillRun) error
	// maxFailed, if set, fails the drill when more client requests fail:
	// a planned move must not cost requests.
	maxFailed func(d *drillRun) int
}

// drillRun is one run's state and findings.
type drillRun struct {
	users   string            // prefix of the load's user names
	victim  string            // the host a drill picked (owner-down)
	serials map[string]string // new certificates by frontend (rotate-certs)
	notes   []string
	failed  []string // failed checks
	before  map[string][]string
	during  map[string][]string // at the end of the fault, before healing
	after   map[string][]string
	report  loadReport
	outage  time.Duration
	httpBad int
	httpAll int
	dnsOut  time.Duration
	dnsBad  int
	dnsAll  int
	// The timeline: when the load was ready, when the fault was
	// injected and healed, when the lab was found healed, and which
	// frontend held each VIP, sampled while the load ran.
	start, faultAt, healAt, healedAt, end time.Time
	samples                               []holderSample
}

// holderSample is which frontends held each VIP at one moment.
type holderSample struct {
	At      time.Time
	Holders map[string][]string
}

// holderSampling is how often a drill samples the VIP holders for its
// timeline: 4 ip commands per sample, fine enough to show a move that
// takes a few hundred milliseconds.
const holderSampling = 100 * time.Millisecond

// sampleHolders records the VIP holders into d until stop is closed.
func (d *drillRun) sampleHolders(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(holderSampling)
	defer t.Stop()
	for {
		d.samples = append(d.samples, holderSample{At: time.Now(), Holders: holders()})
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// tally counts what the client saw from the load's report: failed and
// all requests and lookups, and the longest outage of each.
func (d *drillRun) tally() {
	d.outage, d.httpBad, d.httpAll = outage(d.report.Ops, "read", "write")
	d.dnsOut, d.dnsBad, d.dnsAll = outage(d.report.Ops, "dns")
}

func (d *drillRun) note(f string, args ...any) { d.notes = append(d.notes, fmt.Sprintf(f, args...)) }
func (d *drillRun) fail(f string, args ...any) { d.failed = append(d.failed, fmt.Sprintf(f, args...)) }

var drills = []drill{
	{name: "kill-frontend", what: "SIGKILL vipwatch and appnode on fe1 (then release-all, as systemd's ExecStopPost does)", hold: 4 * time.Second,
		fault: func(l *lab, d *drillRun) error { return l.killFrontend("fe1") },
		heal:  func(l *lab, d *drillRun) error { return l.restartHost("fe1", "appnode", "vipwatch") }},
	{name: "link-down", what: "take fe1's link down", hold: 4 * time.Second,
		fault: func(l *lab, d *drillRun) error { return ip("-n", lanNS(), "link", "set", "v-fe1", "down") },
		heal:  func(l *lab, d *drillRun) error { return ip("-n", lanNS(), "link", "set", "v-fe1", "up") }},
	{name: "pair-down", what: "kill both fe1 and fe2: dnslb must stop answering their VIPs", hold: 8 * time.Second,
		fault: func(l *lab, d *drillRun) error {
			if err := l.killFrontend("fe1"); err != nil {
				return err
			}
			if err := l.killFrontend("fe2"); err != nil {
				return err
			}
			dead := []string{hostByName("fe1").vip, hostByName("fe2").vip}
			start := time.Now()
			for time.Since(start) < 7*time.Second {
				a1, a2 := resolve("ns1"), resolve("ns2")
				if len(a1) > 0 && len(a2) > 0 && !overlaps(a1, dead) && !overlaps(a2, dead) {
					d.note("dnslb stopped answering %v after %.1fs", dead, time.Since(start).Seconds())
					return nil
				}
				time.Sleep(100 * time.Millisecond)
			}
			d.fail("dnslb still answers %v 7s after the pair died (ns1 %v, ns2 %v)", dead, resolve("ns1"), resolve("ns2"))
			return nil
		},
		heal: func(l *lab, d *drillRun) error {
			if err := l.restartHost("fe1", "appnode", "vipwatch"); err != nil {
				return err
			}
			return l.restartHost("fe2", "appnode", "vipwatch")
		}},
	{name: "dns-down", what: "SIGKILL dnslb on ns1: resolution goes on through ns2", hold: 4 * time.Second,
		fault: func(l *lab, d *drillRun) error { return l.kill("ns1", "dnslb") },
		heal:  func(l *lab, d *drillRun) error { return l.restartHost("ns1", "dnslb") }},
	{name: "owner-down", what: "SIGKILL the appnode that owns a busy user", hold: 4 * time.Second,
		fault: func(l *lab, d *drillRun) error {
			var look struct {
				Owner string `json:"owner"`
			}
			user := d.users + "_0"
			if err := curl(&look, "https://"+vips()[0]+"/v1/ring/lookup?key="+user); err != nil {
				return fmt.Errorf("looking up the owner of %s: %w", user, err)
			}
			for _, fe := range frontends() {
				if strings.HasPrefix(look.Owner, fe.ip+":") {
					d.victim = fe.name
				}
			}
			if d.victim == "" {
				return fmt.Errorf("owner %q of %s is no frontend", look.Owner, user)
			}
			d.note("%s is owned by %s's appnode", user, d.victim)
			return l.kill(d.victim, "appnode")
		},
		heal: func(l *lab, d *drillRun) error { return l.restartHost(d.victim, "appnode") }},
	{name: "handover", what: "planned move of fe1's VIP to fe2 (vipwatch handover) and back (vipwatch takeback)", hold: 3 * time.Second,
		fault: func(l *lab, d *drillRun) error {
			if err := l.vipwatchCmd("fe1", "handover"); err != nil {
				return err
			}
			if h := holders()[hostByName("fe1").vip]; !slices.Equal(h, []string{"fe2"}) {
				d.fail("after handover VIP %s is held by %v, want fe2 alone", hostByName("fe1").vip, h)
			}
			return nil
		},
		heal: func(l *lab, d *drillRun) error { return l.vipwatchCmd("fe1", "takeback") },
		// An HTTP connection that is open at the very instant the client's
		// neighbour entry moves to the new holder is reset by it: at most
		// one such request per move (vipwatch's own drill measures zero
		// lost probes with a UDP prober).
		maxFailed: func(d *drillRun) int { return 2 }},
	{name: "rotate-certs", what: "new HTTPS certificates for every frontend mid-load: fe1 and fe2 read them when their files change, fe3 and fe4 on SIGHUP", hold: 2 * time.Second,
		fault: func(l *lab, d *drillRun) (err error) {
			if d.serials, err = l.rotateCerts(); err != nil {
				return err
			}
			for _, fe := range []string{"fe3", "fe4"} {
				if err := l.signal(fe, "appnode", syscall.SIGHUP); err != nil {
					return err
				}
			}
			return nil
		},
		heal: func(l *lab, d *drillRun) error {
			for _, fe := range frontends() {
				// A frontend looks at its files at a handshake at most
				// once a second: a few tries.
				var got string
				var err error
				for try := 0; try < 10; try++ {
					if got, err = l.served(fe); err == nil && got == d.serials[fe.name] {
						break
					}
					time.Sleep(300 * time.Millisecond)
				}
				switch {
				case err != nil:
					d.fail("%s: no TLS answer after the rotation: %v", fe.name, err)
				case got != d.serials[fe.name]:
					d.fail("%s serves certificate %s, not its new one %s", fe.name, got, d.serials[fe.name])
				default:
					d.note("%s serves its new certificate %s", fe.name, got)
				}
			}
			return nil
		},
		// A new certificate is met by the next handshake; no request
		// may fail for it.
		maxFailed: func(d *drillRun) int { return 0 }},
}

// signal sends sig to a daemon the lab started on host.
func (l *lab) signal(host, name string, sig syscall.Signal) error {
	i, err := l.find(host, name)
	if err != nil {
		return err
	}
	if err := syscall.Kill(l.procs[i].PID, sig); err != nil {
		return fmt.Errorf("signalling %s on %s: %w", name, host, err)
	}
	return nil
}

// vipwatchCmd runs a vipwatch admin command on a frontend.
func (l *lab) vipwatchCmd(host string, args ...string) error {
	cfg := filepath.Join(l.run, host, "vipwatch.yaml")
	_, err := inNS(host, append([]string{filepath.Join(l.bin, "vipwatch")}, append(args, "-c", cfg)...)...)
	return err
}

func overlaps(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

func findDrill(name string) (drill, error) {
	var names []string
	for _, d := range drills {
		if d.name == name {
			return d, nil
		}
		names = append(names, d.name)
	}
	return drill{}, fmt.Errorf("no drill %q (drills: %s)", name, strings.Join(names, ", "))
}

// find returns the recorded process name on host.
func (l *lab) find(host, name string) (int, error) {
	for i, p := range l.procs {
		if p.Host == host && p.Name == name {
			return i, nil
		}
	}
	return -1, fmt.Errorf("the lab started no %s on %s", name, host)
}

func (l *lab) kill(host, name string) error {
	i, err := l.find(host, name)
	if err != nil {
		return err
	}
	l.procs[i].stop(syscall.SIGKILL, 0)
	return nil
}

// killFrontend kills a frontend's daemons and removes the VIPs vipwatch
// had put on its interface, as systemd's ExecStopPost=vipwatch
// release-all does after any stop, a crash included.
func (l *lab) killFrontend(host string) error {
	for _, name := range []string{"vipwatch", "appnode"} {
		if err := l.kill(host, name); err != nil {
			return err
		}
	}
	cfg := filepath.Join(l.run, host, "vipwatch.yaml")
	if _, err := inNS(host, filepath.Join(l.bin, "vipwatch"), "release-all", "-c", cfg); err != nil {
		return err
	}
	return nil
}

// restartHost starts the named daemons on host again, as systemd's
// Restart= would, and records their new PIDs.
func (l *lab) restartHost(host string, names ...string) error {
	for _, name := range names {
		i, err := l.find(host, name)
		if err != nil {
			return err
		}
		old := l.procs[i]
		if old.alive() {
			continue
		}
		p, err := startDaemon(l.run, host, name, old.Env, old.Args...)
		if err != nil {
			return err
		}
		l.procs[i] = p
		if err := saveProcs(l.run, l.procs); err != nil {
			return err
		}
	}
	return nil
}

// healthy checks the healed lab: every daemon running, every VIP held
// by exactly its home frontend, both DNS servers answering all four.
func (l *lab) healthy() error {
	if err := l.checkProcs(); err != nil {
		return err
	}
	h := holders()
	for _, fe := range frontends() {
		if got := h[fe.vip]; !slices.Equal(got, []string{fe.name}) {
			return fmt.Errorf("VIP %s held by %v, want %s alone", fe.vip, got, fe.name)
		}
	}
	for _, s := range []string{"ns1", "ns2"} {
		if got := resolve(s); !slices.Equal(got, vips()) {
			return fmt.Errorf("%s answers %v, want %v", s, got, vips())
		}
	}
	return nil
}

func (l *lab) waitHealthy(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var err error
	for time.Now().Before(deadline) {
		if err = l.healthy(); err == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return err
}

// runDrill runs one drill and returns its findings.
func (l *lab) runDrill(ctx context.Context, dr drill) (*drillRun, error) {
	ps, err := loadProcs(l.run)
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, errNotUp
	}
	l.procs = ps
	if err := l.waitHealthy(30 * time.Second); err != nil {
		return nil, fmt.Errorf("the lab is not healthy before the drill: %w", err)
	}
	d := &drillRun{users: fmt.Sprintf("d%d", time.Now().Unix()%100000), before: holders()}
	reportPath := filepath.Join(l.run, "drill-"+dr.name+".json")
	readyPath := filepath.Join(l.run, "drill-"+dr.name+".ready")
	os.Remove(reportPath)
	os.Remove(readyPath)
	load := exec.Command("ip", "netns", "exec", ns("client"), filepath.Join(l.bin, "lab"), "-run", l.run, "load", "-prefix", d.users, "-report", reportPath, "-ready", readyPath)
	loadLogPath := filepath.Join(l.run, "drill-"+dr.name+".log")
	loadLog, _ := os.Create(loadLogPath)
	defer loadLog.Close()
	load.Stdout, load.Stderr = loadLog, loadLog
	if err := load.Start(); err != nil {
		return nil, err
	}
	// The fault waits for the load's users to exist: a user whose
	// members the drill takes down could not be created during it.
	loadExited := make(chan error, 1)
	go func() { loadExited <- load.Wait() }()
	stopLoad := func() {
		load.Process.Signal(syscall.SIGTERM)
		select {
		case <-loadExited:
		case <-time.After(60 * time.Second):
			load.Process.Kill()
			<-loadExited
		}
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(readyPath); err == nil {
			break
		}
		select {
		case err := <-loadExited:
			return nil, fmt.Errorf("the client load stopped before the drill (%v); see %s", err, loadLogPath)
		default:
		}
		if time.Now().After(deadline) {
			stopLoad()
			return nil, fmt.Errorf("the client load was not ready within 30s; see %s", loadLogPath)
		}
	}
	fmt.Printf("drill %s: %s\n", dr.name, dr.what)
	d.start = time.Now()
	stopSampling, sampled := make(chan struct{}), make(chan struct{})
	go d.sampleHolders(stopSampling, sampled)
	stopAll := func() {
		stopLoad()
		close(stopSampling)
		<-sampled
		d.end = time.Now()
	}
	time.Sleep(2 * time.Second) // a baseline before the fault
	d.faultAt = time.Now()
	faultErr := dr.fault(l, d)
	if faultErr == nil {
		time.Sleep(dr.hold)
	}
	d.during = holders()
	d.healAt = time.Now()
	healErr := dr.heal(l, d)
	if faultErr != nil || healErr != nil {
		stopAll()
		return d, errors.Join(faultErr, healErr)
	}
	if err := l.waitHealthy(30 * time.Second); err != nil {
		d.fail("not healed within 30s: %v", err)
	}
	d.healedAt = time.Now()
	time.Sleep(2 * time.Second) // the client sees the healed system
	stopAll()
	d.after = holders()
	b, err := os.ReadFile(reportPath)
	if err != nil {
		return d, fmt.Errorf("the client load wrote no report (see %s): %w", loadLogPath, err)
	}
	if err := json.Unmarshal(b, &d.report); err != nil {
		return d, err
	}
	d.tally()
	if dr.maxFailed != nil && d.httpBad > dr.maxFailed(d) {
		d.fail("%d client requests failed across a planned move, want at most %d", d.httpBad, dr.maxFailed(d))
	}
	if len(d.report.Lost) > 0 {
		d.fail("%d acknowledged writes not found afterwards: %v", len(d.report.Lost), d.report.Lost[:min(5, len(d.report.Lost))])
	}
	if d.report.VerifyErr != "" {
		d.fail("reading back: %s", d.report.VerifyErr)
	}
	return d, nil
}

// print writes the drill's findings as text, the table the HTML report
// repeats.
func (d *drillRun) print(out io.Writer) {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "  client HTTP\t%d of %d requests failed; longest outage (one user) %.2fs\n", d.httpBad, d.httpAll, d.outage.Seconds())
	fmt.Fprintf(w, "  client DNS\t%d of %d lookups failed; longest outage %.2fs; answered by %v\n", d.dnsBad, d.dnsAll, d.dnsOut.Seconds(), d.report.DNSByServer)
	fmt.Fprintf(w, "  writes\t%d acknowledged, %d lost\n", d.report.Acked, len(d.report.Lost))
	fmt.Fprintf(w, "  VIPs before\t%s\n", holdersText(d.before))
	fmt.Fprintf(w, "  VIPs in fault\t%s\n", holdersText(d.during))
	fmt.Fprintf(w, "  VIPs after\t%s\n", holdersText(d.after))
	for _, n := range d.notes {
		fmt.Fprintf(w, "  note\t%s\n", n)
	}
	for _, f := range d.failed {
		fmt.Fprintf(w, "  FAILED\t%s\n", f)
	}
	w.Flush()
}

func holdersText(h map[string][]string) string {
	var parts []string
	for _, fe := range frontends() {
		parts = append(parts, fe.vip+"="+strings.Join(h[fe.vip], "+"))
	}
	return strings.Join(parts, " ")
}

// drillAll runs the named drills (all when none) and prints a summary.
func (l *lab) drillAll(ctx context.Context, names []string) error {
	if len(names) == 0 {
		for _, d := range drills {
			names = append(names, d.name)
		}
	}
	var results []drillResult
	for _, n := range names {
		dr, err := findDrill(n)
		if err != nil {
			return err
		}
		run, err := l.runDrill(ctx, dr)
		if run != nil {
			run.print(os.Stdout)
		}
		if err != nil {
			fmt.Printf("  ERROR\t%v\n", err)
		}
		res := drillResult{drill: dr, run: run, err: err}
		path := filepath.Join(l.run, "drill-"+n+".html")
		if err := writeReport(path, res); err != nil {
			return err
		}
		fmt.Printf("  report\t%s\n", path)
		results = append(results, res)
	}
	if len(results) > 1 {
		fmt.Println()
		printSummary(os.Stdout, results)
		path := filepath.Join(l.run, "drills.html")
		if err := writeSummary(path, results); err != nil {
			return err
		}
		fmt.Printf("\nreport: %s\n", path)
	}
	for _, r := range results {
		if !r.ok() {
			return fmt.Errorf("drill %s failed", r.drill.name)
		}
	}
	return nil
}

// drillResult is one drill of a run of drills.
type drillResult struct {
	drill drill
	run   *drillRun // nil when the drill could not start
	err   error
}

func (r drillResult) ok() bool { return r.err == nil && r.run != nil && len(r.run.failed) == 0 }

// printSummary writes the table of several drills' results.
func printSummary(out io.Writer, results []drillResult) {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "DRILL\tHTTP FAILED\tOUTAGE\tDNS FAILED\tWRITES ACKED\tLOST\tRESULT")
	for _, r := range results {
		res := "ok"
		if !r.ok() {
			res = "FAILED"
		}
		if r.run == nil {
			fmt.Fprintf(w, "%s\t-\t-\t-\t-\t-\t%s\n", r.drill.name, res)
			continue
		}
		fmt.Fprintf(w, "%s\t%d/%d\t%.2fs\t%d/%d\t%d\t%d\t%s\n", r.drill.name, r.run.httpBad, r.run.httpAll, r.run.outage.Seconds(),
			r.run.dnsBad, r.run.dnsAll, r.run.report.Acked, len(r.run.report.Lost), res)
	}
	w.Flush()
}
