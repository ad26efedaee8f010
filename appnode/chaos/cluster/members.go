package cluster

import (
	"context"
	"crypto/rand"
	"debug/buildinfo"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ringfront/ringfront/appnode/chaos/history"
	"github.com/ringfront/ringfront/appnode/node"
)

// Ports on each member's address.
const (
	apiPort    = 8081
	gossipPort = 8181
	adminPort  = 9081
)

// startTimeout bounds a member's start until it serves: gossip's first
// round of joins and opening the store.
const startTimeout = 20 * time.Second

// memberConfig is the part of appnode's config the chaos cluster sets;
// everything else keeps its default.
type memberConfig struct {
	Node              string   `yaml:"node"`
	Listen            string   `yaml:"listen"`
	Advertise         string   `yaml:"advertise"`
	Members           []string `yaml:"members"`
	Replicas          int      `yaml:"replicas"`
	ReadRepair        bool     `yaml:"read_repair"`
	DataDir           string   `yaml:"data_dir"`
	ClusterSecretFile string   `yaml:"cluster_secret_file"`
	Gossip            struct {
		Bind      string `yaml:"bind"`
		Advertise string `yaml:"advertise"`
	} `yaml:"gossip"`
	Admin struct {
		Listen string `yaml:"listen"`
	} `yaml:"admin"`
	// Limits exempts the clients: their load is one address at far
	// more than a person's rate, and the checker counts 429s as
	// failures.
	Limits struct {
		Exempt []string `yaml:"exempt"`
	} `yaml:"limits"`
}

// Cluster is the appnode members of a run, one per namespace of a
// topology, each with its config, data dir, clock file and log in its
// own folder. It is the nemesis's target. Its methods are safe for
// concurrent use.
type Cluster struct {
	topo  *Topology
	bin   string
	dir   string
	addrs []string // host:port of each member's API
	http  *http.Client

	mu    sync.Mutex // guards procs
	procs []*memberProc
}

// memberProc is a running member process.
type memberProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
}

// CheckBinary returns an error unless bin is an appnode built with
// -tags chaos: without it the clock fault would silently do nothing.
func CheckBinary(bin string) error {
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return fmt.Errorf("reading the build info of %s: %w", bin, err)
	}
	for _, s := range info.Settings {
		if s.Key == "-tags" && strings.Contains(","+s.Value+",", ",chaos,") {
			return nil
		}
	}
	return fmt.Errorf("%s was not built with -tags chaos (go build -tags chaos -o %s ./appnode): its clock cannot be moved", bin, bin)
}

// New writes the configs of one member per namespace of topo,
// with the given replicas, under dir. It starts nothing.
func New(topo *Topology, bin, dir string, replicas int) (*Cluster, error) {
	c := &Cluster{topo: topo, bin: bin, dir: dir, procs: make([]*memberProc, len(topo.Members)),
		http: &http.Client{Timeout: time.Second, Transport: &http.Transport{DialContext: topo.DialContext, DisableKeepAlives: true}}}
	for i := range topo.Members {
		c.addrs = append(c.addrs, netipPort(memberAddr(i), apiPort))
	}
	var raw [32]byte
	rand.Read(raw[:])
	secret := filepath.Join(dir, "cluster.key")
	if err := os.WriteFile(secret, []byte(base64.StdEncoding.EncodeToString(raw[:])+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("writing the cluster secret: %w", err)
	}
	for i := range topo.Members {
		cfg := memberConfig{
			Node: history.MemberName(i), Listen: c.addrs[i], Advertise: c.addrs[i], Members: c.addrs,
			Replicas: replicas, ReadRepair: true, DataDir: c.dataDir(i), ClusterSecretFile: secret,
		}
		// Gossip on the member's own address, as a deployment would.
		cfg.Gossip.Bind = netipPort(memberAddr(i), gossipPort)
		cfg.Gossip.Advertise = cfg.Gossip.Bind
		cfg.Admin.Listen = netipPort(memberAddr(i), adminPort)
		cfg.Limits.Exempt = []string{netip.PrefixFrom(clientAddr, 32).String()}
		b, err := yaml.Marshal(cfg)
		if err != nil {
			return nil, fmt.Errorf("encoding %s's config: %w", history.MemberName(i), err)
		}
		if err := os.MkdirAll(c.memberDir(i), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(c.configFile(i), b, 0o644); err != nil {
			return nil, fmt.Errorf("writing %s's config: %w", history.MemberName(i), err)
		}
	}
	return c, nil
}

func netipPort(a netip.Addr, port int) string { return netip.AddrPortFrom(a, uint16(port)).String() }

// Addrs are the members' API addresses, by index.
func (c *Cluster) Addrs() []string { return c.addrs }

// AdminAddr is member i's admin listener.
func (c *Cluster) AdminAddr(i int) string { return netipPort(memberAddr(i), adminPort) }

func (c *Cluster) memberDir(i int) string  { return filepath.Join(c.dir, history.MemberName(i)) }
func (c *Cluster) dataDir(i int) string    { return filepath.Join(c.memberDir(i), "data") }
func (c *Cluster) configFile(i int) string { return filepath.Join(c.memberDir(i), "appnode.yaml") }
func (c *Cluster) clockFile(i int) string  { return filepath.Join(c.memberDir(i), "clock-offset") }
func (c *Cluster) logFile(i int) string    { return filepath.Join(c.memberDir(i), "appnode.log") }

// Start starts member i in its namespace and waits until it answers
// /healthz.
func (c *Cluster) Start(ctx context.Context, i int) error {
	c.mu.Lock()
	if p := c.procs[i]; p != nil {
		select {
		case <-p.done:
		default:
			c.mu.Unlock()
			return fmt.Errorf("starting %s: it is running (pid %d)", history.MemberName(i), p.cmd.Process.Pid)
		}
	}
	logf, err := os.OpenFile(c.logFile(i), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.mu.Unlock()
		return fmt.Errorf("starting %s: %w", history.MemberName(i), err)
	}
	fmt.Fprintf(logf, "--- chaos: starting %s at %s\n", history.MemberName(i), time.Now().Format(time.RFC3339Nano))
	// ip netns exec execs appnode, so the pid is appnode's own.
	cmd := exec.Command("ip", "netns", "exec", c.topo.Members[i], c.bin, "serve", "-c", c.configFile(i))
	cmd.Env = append(memberEnv(os.Environ()), node.ChaosClockEnv+"="+c.clockFile(i))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a Ctrl-C reaches the harness only, which cleans up
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.mu.Unlock()
		return fmt.Errorf("starting %s: %w", history.MemberName(i), err)
	}
	p := &memberProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	c.procs[i] = p
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.addrs[i]+"/healthz", nil)
		if resp, err := c.http.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited at start: %s; its log: %s", history.MemberName(i), p.cmd.ProcessState, c.logTail(i))
		case <-ctx.Done():
			return fmt.Errorf("%s does not serve %v after start: %w; its log: %s", history.MemberName(i), startTimeout, ctx.Err(), c.logTail(i))
		case <-tick.C:
		}
	}
}

// memberEnv is the caller's environment without APPNODE_ overrides,
// which would silently change every member's config.
func memberEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "APPNODE_") {
			out = append(out, kv)
		}
	}
	return out
}

// logTail is the end of member i's log, for an error message.
func (c *Cluster) logTail(i int) string {
	b, _ := os.ReadFile(c.logFile(i))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// proc returns member i's process, or an error when it is not running.
func (c *Cluster) proc(i int) (*memberProc, error) {
	c.mu.Lock()
	p := c.procs[i]
	c.mu.Unlock()
	if p == nil {
		return nil, fmt.Errorf("%s was never started", history.MemberName(i))
	}
	select {
	case <-p.done:
		return nil, fmt.Errorf("%s is not running (%s)", history.MemberName(i), p.cmd.ProcessState)
	default:
		return p, nil
	}
}

// Signal sends sig to member i's process.
func (c *Cluster) Signal(i int, sig syscall.Signal) error {
	p, err := c.proc(i)
	if err != nil {
		return fmt.Errorf("sending %v: %w", sig, err)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("sending %v to %s (pid %d): %w", sig, history.MemberName(i), p.cmd.Process.Pid, err)
	}
	return nil
}

// Kill sends SIGKILL to member i and waits for it to exit.
func (c *Cluster) Kill(i int) error {
	p, err := c.proc(i)
	if err != nil {
		return fmt.Errorf("killing: %w", err)
	}
	p.cmd.Process.Kill()
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) still runs 10s after SIGKILL", history.MemberName(i), p.cmd.Process.Pid)
	}
}

// Wipe removes member i's data dir.
func (c *Cluster) Wipe(i int) error {
	if _, err := c.proc(i); err == nil {
		return fmt.Errorf("wiping %s's data: it is running", history.MemberName(i))
	}
	if err := os.RemoveAll(c.dataDir(i)); err != nil {
		return fmt.Errorf("wiping %s's data: %w", history.MemberName(i), err)
	}
	return nil
}

// SetClock moves member i's clock by offset (the member re-reads the
// file within 50 ms). The file is replaced whole.
func (c *Cluster) SetClock(i int, offset time.Duration) error {
	tmp := c.clockFile(i) + ".new"
	if err := os.WriteFile(tmp, []byte(offset.String()+"\n"), 0o644); err != nil {
		return fmt.Errorf("moving %s's clock: %w", history.MemberName(i), err)
	}
	if err := os.Rename(tmp, c.clockFile(i)); err != nil {
		return fmt.Errorf("moving %s's clock: %w", history.MemberName(i), err)
	}
	return nil
}

// Cut makes member i drop all traffic to and from the given members,
// and the clients' when clients is set.
func (c *Cluster) Cut(i int, peers []int, clients bool) error {
	var addrs []netip.Addr
	for _, p := range peers {
		addrs = append(addrs, memberAddr(p))
	}
	if clients {
		addrs = append(addrs, clientAddr)
	}
	return c.topo.Cut(i, addrs)
}

// Heal lets all of member i's traffic through again.
func (c *Cluster) Heal(i int) error { return c.topo.Cut(i, nil) }

// Close kills every member still running (SIGKILL reaches a stopped
// process too) and waits for each.
func (c *Cluster) Close() error {
	c.mu.Lock()
	procs := append([]*memberProc(nil), c.procs...)
	c.mu.Unlock()
	var errs []error
	for i, p := range procs {
		if p == nil {
			continue
		}
		p.cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			errs = append(errs, fmt.Errorf("%s (pid %d) still runs 10s after SIGKILL", history.MemberName(i), p.cmd.Process.Pid))
		}
	}
	return errors.Join(errs...)
}

// OutboxEntries reads member i's fan-out outbox gauge from its metrics.
func (c *Cluster) OutboxEntries(ctx context.Context, i int) (float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.AdminAddr(i)+"/metrics", nil)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("reading %s's metrics: %w", history.MemberName(i), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, fmt.Errorf("reading %s's metrics: %w", history.MemberName(i), err)
	}
	return metricValue(string(b), "appnode_fanout_outbox_entries")
}

// metricValue finds an unlabelled sample in Prometheus text.
func metricValue(text, name string) (float64, error) {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("no sample of %s", name)
}
