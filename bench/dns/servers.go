//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ringfront/ringfront/bench/internal/cputime"
)

// server is one DNS server under test.
type server struct {
	name    string
	version string
	port    int
	cmd     *exec.Cmd
	dir     string
}

// zoneFile is the zone every peer serves, with the service name's four
// targets as static A records (dnslb answers them from its health view).
func zoneFile() string {
	var b strings.Builder
	b.WriteString("$ORIGIN example.org.\n$TTL 3600\n")
	b.WriteString("@ IN SOA ns1.example.org. hostmaster.example.org. 1 3600 600 604800 60\n")
	b.WriteString("@ IN NS ns1.example.org.\n")
	for _, r := range statics {
		b.WriteString(r + "\n")
	}
	for _, t := range targets {
		b.WriteString("www 20 IN A " + t + "\n")
	}
	return b.String()
}

// targets are the service's addresses; each gets a listener so dnslb's
// health checks pass.
var targets = []string{"127.0.0.10", "127.0.0.20", "127.0.0.30", "127.0.0.40"}

var statics = []string{
	"ns1 3600 IN A 127.0.0.1",
	"mail 300 IN A 198.51.100.25",
	"api 300 IN A 198.51.100.30",
	"@ 300 IN MX 10 mail.example.org.",
	"@ 300 IN TXT \"v=spf1 mx -all\"",
}

// setup writes a server's files into its own directory under dir and
// returns the command that runs it in the foreground on cpu.
func setup(name, bin, dir string, port, checkPort int, cpu string) (*server, error) {
	sd := filepath.Join(dir, name)
	if err := os.MkdirAll(sd, 0o700); err != nil {
		return nil, err
	}
	files := map[string]string{}
	var args []string
	switch name {
	case "dnslb":
		var recs []string
		for _, r := range statics[1:] { // ns1's glue comes from the ns section
			recs = append(recs, fmt.Sprintf("      - %q", r))
		}
		quoted := make([]string, len(targets))
		for i, t := range targets {
			quoted[i] = `"` + t + `"`
		}
		files["dnslb.yaml"] = fmt.Sprintf(`listen: ["127.0.0.1:%d"]
admin: {listen: "127.0.0.1:0"}
log: {level: warn}
sockets: 1
rrl: {responses_per_second: 0}
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
`, port, strings.Join(recs, "\n"), strings.Join(quoted, ", "), checkPort)
		args = []string{bin, "serve", "-c", filepath.Join(sd, "dnslb.yaml")}
	case "nsd":
		files["example.org.zone"] = zoneFile()
		files["nsd.conf"] = fmt.Sprintf(`server:
  ip-address: 127.0.0.1@%d
  port: %d
  server-count: 1
  reuseport: no
  username: ""
  chroot: ""
  zonesdir: "%[3]s"
  pidfile: "%[3]s/nsd.pid"
  database: ""
  zonelistfile: "%[3]s/zone.list"
  xfrdfile: "%[3]s/xfrd.state"
  xfrdir: "%[3]s"
  logfile: "%[3]s/nsd.log"
  verbosity: 0
  hide-version: yes
  # Debian builds NSD with response rate limiting on: off, as for the
  # others.
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: example.org
  zonefile: example.org.zone
`, port, port, sd)
		args = []string{bin, "-d", "-c", filepath.Join(sd, "nsd.conf")}
	case "knot":
		files["example.org.zone"] = zoneFile()
		// Knot has no rate limiting unless the rrl module is loaded.
		files["knot.conf"] = fmt.Sprintf(`server:
  listen: 127.0.0.1@%d
  rundir: "%[2]s"
  udp-workers: 1
  tcp-workers: 1
  background-workers: 1
log:
  - target: stderr
    any: warning
database:
  storage: "%[2]s"
template:
  - id: default
    storage: "%[2]s"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
  - domain: example.org
    file: example.org.zone
`, port, sd)
		args = []string{bin, "-c", filepath.Join(sd, "knot.conf"), "-s", filepath.Join(sd, "knot.sock")}
	case "gdnsd":
		// gdnsd has no rate limiting.
		files["config"] = fmt.Sprintf(`options => {
  listen => [ 127.0.0.1:%d ]
  udp_threads => 1
  tcp_threads => 1
  run_dir => "%[2]s/run"
  state_dir => "%[2]s/state"
}
`, port, sd)
		files["zones/example.org"] = zoneFile()
		for _, d := range []string{"zones", "run", "state"} {
			if err := os.MkdirAll(filepath.Join(sd, d), 0o700); err != nil {
				return nil, err
			}
		}
		args = []string{bin, "-c", sd, "start"}
	default:
		return nil, fmt.Errorf("unknown server %q", name)
	}
	for f, body := range files {
		if err := os.WriteFile(filepath.Join(sd, f), []byte(body), 0o600); err != nil {
			return nil, err
		}
	}
	// The server runs on its own CPU, the load on the other.
	cmd := exec.Command("taskset", append([]string{"-c", cpu}, args...)...)
	cmd.Dir = sd
	logf, err := os.Create(filepath.Join(sd, "stderr.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	return &server{name: name, version: version(name, bin), port: port, cmd: cmd, dir: sd}, nil
}

func (s *server) start() error {
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", s.name, err)
	}
	if err := waitAnswer(s.port, 20*time.Second); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "stderr.log"))
		return fmt.Errorf("%s on port %d not answering: %w\n%s", s.name, s.port, err, log)
	}
	return nil
}

// stop ends the server (taskset execs it, so the PID is the server's)
// and reaps it.
func (s *server) stop() {
	if s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

func version(name, bin string) string {
	var out []byte
	switch name {
	case "dnslb":
		b, _ := exec.Command("git", "describe", "--always", "--dirty").Output()
		return "dnslb " + string(bytes.TrimSpace(b))
	case "nsd":
		out, _ = exec.Command(bin, "-v").CombinedOutput()
	case "knot":
		out, _ = exec.Command(bin, "-V").CombinedOutput()
	case "gdnsd":
		out, _ = exec.Command(bin, "-V").CombinedOutput() // prints the version before the usage
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(strings.ToLower(line), "version") {
			return strings.TrimSpace(line)
		}
	}
	return name
}

// threadUse is one thread's share of the scheduler's accounting
// (/proc/PID/task/TID/schedstat): CPU time and how many times it was
// put on a CPU, which below saturation is how many times it woke.
type threadUse struct {
	comm string
	ns   int64
	runs int64
}

// usage is the scheduler's accounting of a server's threads (and of its
// child processes' threads: NSD forks its servers), by PID/TID.
type usage map[string]threadUse

// total is the CPU time (user + system, nanoseconds) and run count of
// every thread.
func (u usage) total() (ns, runs int64) {
	for _, t := range u {
		ns += t.ns
		runs += t.runs
	}
	return ns, runs
}

// since is what each thread did between before and u; a thread that
// started in between counts from zero. A thread that ended in between is
// lost: servers keep their threads.
func (u usage) since(before usage) usage {
	d := usage{}
	for id, t := range u {
		b := before[id]
		d[id] = threadUse{comm: t.comm, ns: t.ns - b.ns, runs: t.runs - b.runs}
	}
	return d
}

// cpuUsage reads the accounting of pid's threads and of all its
// descendants' threads.
func cpuUsage(pid int) (usage, error) {
	threads, err := cputime.Threads(pid)
	if err != nil {
		return nil, err
	}
	u := usage{}
	for id, t := range threads {
		u[id] = threadUse{comm: t.Comm, ns: t.CPU.Nanoseconds(), runs: t.Runs}
	}
	return u, nil
}
