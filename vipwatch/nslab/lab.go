package nslab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Addresses on the lab LAN (198.51.100.0/24, TEST-NET-2).
var (
	FE1IP    = netip.MustParsePrefix("198.51.100.11/24")
	FE2IP    = netip.MustParsePrefix("198.51.100.12/24")
	ClientIP = netip.MustParsePrefix("198.51.100.100/24")
	VIP1     = netip.MustParsePrefix("198.51.100.10/24") // fe1's home VIP
	VIP2     = netip.MustParsePrefix("198.51.100.20/24") // fe2's home VIP
	// WitnessIP is the LAN's witness (its "gateway"): the bridge's own
	// address in the bridge namespace, which answers ARP and ping.
	WitnessIP = netip.MustParsePrefix("198.51.100.1/24")

	// IPv6 on the same LAN (2001:db8::/32, documentation).
	FE1IP6    = netip.MustParsePrefix("2001:db8::11/64")
	FE2IP6    = netip.MustParsePrefix("2001:db8::12/64")
	ClientIP6 = netip.MustParsePrefix("2001:db8::100/64")
	VIP6a     = netip.MustParsePrefix("2001:db8::10/64") // fe1's home IPv6 VIP
	VIP6b     = netip.MustParsePrefix("2001:db8::20/64") // fe2's home IPv6 VIP
)

// HeartbeatPort is the UDP port of the lab's vipwatch heartbeats.
const HeartbeatPort = 7201

// Dev is the name of the LAN interface inside every host namespace.
const Dev = "rfvw0"

// Lab is one namespace LAN. Its methods are safe for concurrent use.
type Lab struct {
	Tag              string // unique part of every name
	Bridge           string // namespace names
	FE1, FE2, Client string
	Dir              string // scratch directory for configs and logs

	mu    sync.Mutex // guards procs
	procs []*Proc
}

// RequireRoot returns an error that says why the lab cannot run, or nil.
func RequireRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("network-namespace tests need root (they create namespaces, veth pairs and a bridge)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("network-namespace tests need iproute2's ip command")
	}
	return nil
}

// New builds a lab whose names contain tag (keep it short: the pid and
// a letter). dir receives configs and logs.
func New(tag, dir string) (*Lab, error) {
	l := &Lab{
		Tag:    tag,
		Bridge: "rfvw" + tag + "-br",
		FE1:    "rfvw" + tag + "-fe1",
		FE2:    "rfvw" + tag + "-fe2",
		Client: "rfvw" + tag + "-cl",
		Dir:    dir,
	}
	if err := l.build(); err != nil {
		l.Close()
		return nil, fmt.Errorf("building namespace lab %s: %w", tag, err)
	}
	return l, nil
}

// Port is the bridge-side end of host namespace ns's cable.
func (l *Lab) Port(ns string) string {
	switch ns {
	case l.FE1:
		return "rfvwp1"
	case l.FE2:
		return "rfvwp2"
	}
	return "rfvwpc"
}

func (l *Lab) build() error {
	for _, ns := range []string{l.Bridge, l.FE1, l.FE2, l.Client} {
		if err := ip("netns", "add", ns); err != nil {
			return err
		}
		if err := ip("-n", ns, "link", "set", "lo", "up"); err != nil {
			return err
		}
		// No duplicate address detection on the lab's links: their
		// link-local addresses (which NDP sockets bind to) and the
		// hosts' IPv6 addresses are usable at once.
		out, err := exec.Command("ip", "netns", "exec", ns, "sysctl", "-q", "-w",
			"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0").CombinedOutput()
		if err != nil {
			return fmt.Errorf("turning off DAD in %s: %v: %s", ns, err, bytes.TrimSpace(out))
		}
	}
	// forward_delay 0: ports forward at once; no STP on a one-switch LAN.
	if err := ip("-n", l.Bridge, "link", "add", "rfvwbr", "type", "bridge", "forward_delay", "0"); err != nil {
		return err
	}
	if err := ip("-n", l.Bridge, "link", "set", "rfvwbr", "up"); err != nil {
		return err
	}
	if err := ip("-n", l.Bridge, "addr", "add", WitnessIP.String(), "dev", "rfvwbr"); err != nil {
		return err
	}
	// The witness answers ARP on the bridge only: a port taken off the
	// bridge (Detach) must not reach it through the bridge namespace's
	// own stack, which by default answers ARP for any of its addresses
	// on any interface.
	if out, err := exec.Command("ip", "netns", "exec", l.Bridge, "sysctl", "-q", "-w",
		"net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.default.arp_ignore=1").CombinedOutput(); err != nil {
		return fmt.Errorf("setting arp_ignore in %s: %v: %s", l.Bridge, err, bytes.TrimSpace(out))
	}
	for _, h := range []struct {
		ns          string
		addr, addr6 netip.Prefix
	}{{l.FE1, FE1IP, FE1IP6}, {l.FE2, FE2IP, FE2IP6}, {l.Client, ClientIP, ClientIP6}} {
		port := l.Port(h.ns)
		// The pair is created inside the bridge namespace and one end
		// moved straight to the host: nothing touches the caller's own.
		steps := [][]string{
			{"-n", l.Bridge, "link", "add", port, "type", "veth", "peer", "name", Dev, "netns", h.ns},
			{"-n", l.Bridge, "link", "set", port, "master", "rfvwbr"},
			{"-n", l.Bridge, "link", "set", port, "up"},
			{"-n", h.ns, "addr", "add", h.addr.String(), "dev", Dev},
			{"-n", h.ns, "addr", "add", h.addr6.String(), "dev", Dev, "nodad"},
			{"-n", h.ns, "link", "set", Dev, "up"},
		}
		if h.ns != l.Client {
			// The witness is the frontends' gateway, as on a real LAN
			// (the bridge namespace forwards nothing).
			steps = append(steps, []string{"-n", h.ns, "route", "add", "default", "via", WitnessIP.Addr().String(), "dev", Dev})
		}
		for _, s := range steps {
			if err := ip(s...); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close stops every process the lab started and deletes its
// namespaces (which deletes their links). It is safe to call twice.
func (l *Lab) Close() error {
	l.mu.Lock()
	procs := l.procs
	l.procs = nil
	l.mu.Unlock()
	for _, p := range procs {
		p.Kill()
	}
	var errs []error
	for _, ns := range []string{l.Client, l.FE2, l.FE1, l.Bridge} {
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); err != nil {
			continue
		}
		if err := ip("netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// Run runs a command in namespace ns and returns its combined output.
func (l *Lab) Run(ctx context.Context, ns string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in %s: %s: %w: %s", ns, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// SetCable takes the bridge end of ns's cable down or up: for the host
// it is a pulled cable (its interface loses carrier).
//
// It uses netlink from this process rather than running ip, so that the
// cable is out when SetCable returns and not a process start later: the
// failover benchmark times outages from here.
func (l *Lab) SetCable(ns string, up bool) error {
	return l.Do(l.Bridge, func() error {
		port, err := netlink.LinkByName(l.Port(ns))
		if err != nil {
			return fmt.Errorf("looking up %s in %s: %w", l.Port(ns), l.Bridge, err)
		}
		if up {
			err = netlink.LinkSetUp(port)
		} else {
			err = netlink.LinkSetDown(port)
		}
		if err != nil {
			return fmt.Errorf("setting %s up=%v in %s: %w", l.Port(ns), up, l.Bridge, err)
		}
		return nil
	})
}

// Detach takes ns's cable off the bridge (detached) or puts it back.
// The host keeps carrier: it is a switch port that stops forwarding, or
// a cable cut beyond the first hop, which only a witness notices.
func (l *Lab) Detach(ns string, detached bool) error {
	master := []string{"-n", l.Bridge, "link", "set", l.Port(ns), "master", "rfvwbr"}
	if detached {
		master = []string{"-n", l.Bridge, "link", "set", l.Port(ns), "nomaster"}
	}
	return ip(master...)
}

// nftTable is the table BlockHeartbeats adds in the frontends'
// namespaces.
const nftTable = "rfvwblock"

// BlockHeartbeats drops (block) or lets through again the vipwatch
// heartbeats between fe1 and fe2, with an nftables rule in each of
// their namespaces: the pair's heartbeat path is cut while the LAN
// (ARP, the witness, the client) works. Silent drops, so no ICMP tells
// either side that its partner's daemon is gone.
func (l *Lab) BlockHeartbeats(block bool) error {
	return l.BlockPair(block, fmt.Sprintf("udp dport %d", HeartbeatPort))
}

// BlockPair drops (block) or lets through again the packets that match
// (an nftables match, e.g. "meta l4proto 112" for VRRP) arriving at fe1
// or fe2, with an input rule in each of their namespaces.
func (l *Lab) BlockPair(block bool, match string) error {
	for _, ns := range []string{l.FE1, l.FE2} {
		var script string
		if block {
			script = fmt.Sprintf("add table inet %[1]s\n"+
				"add chain inet %[1]s in { type filter hook input priority 0; policy accept; }\n"+
				"add rule inet %[1]s in %[2]s drop\n", nftTable, match)
		} else {
			script = fmt.Sprintf("delete table inet %s\n", nftTable)
		}
		cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("nft in %s (block=%v): %v: %s", ns, block, err, bytes.TrimSpace(out))
		}
	}
	return nil
}

// familyAll is AF_UNSPEC: AddrList lists IPv4 and IPv6 addresses.
// (netlink.FAMILY_ALL is defined on Linux only, and the lab must build
// everywhere.)
const familyAll = 0

// AddrSampler reads the frontends' addresses through netlink sockets
// opened in their namespaces, so that a sample takes well under a
// millisecond (running ip takes several). It is not safe for
// concurrent use.
type AddrSampler struct {
	handles [2]*netlink.Handle
	links   [2]netlink.Link
}

// NewAddrSampler opens an AddrSampler on fe1 and fe2. Close it.
func (l *Lab) NewAddrSampler() (*AddrSampler, error) {
	s := &AddrSampler{}
	for i, name := range []string{l.FE1, l.FE2} {
		ns, err := netns.GetFromName(name)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("opening namespace %s: %w", name, err)
		}
		h, err := netlink.NewHandleAt(ns)
		ns.Close()
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("opening netlink in %s: %w", name, err)
		}
		s.handles[i] = h
		if s.links[i], err = h.LinkByName(Dev); err != nil {
			s.Close()
			return nil, fmt.Errorf("looking up %s in %s: %w", Dev, name, err)
		}
	}
	return s, nil
}

// Sample reports, for each of vips, whether fe1 and fe2 have it.
func (s *AddrSampler) Sample(vips ...netip.Prefix) (fe1, fe2 []bool, err error) {
	var on [2][]bool
	for i, h := range s.handles {
		addrs, err := h.AddrList(s.links[i], familyAll)
		if err != nil {
			return nil, nil, fmt.Errorf("listing addresses: %w", err)
		}
		on[i] = make([]bool, len(vips))
		for j, v := range vips {
			for _, a := range addrs {
				if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == v.Addr() {
					on[i][j] = true
				}
			}
		}
	}
	return on[0], on[1], nil
}

// Close closes the netlink sockets.
func (s *AddrSampler) Close() {
	for _, h := range s.handles {
		if h != nil {
			h.Close()
		}
	}
}

// Proc is a process the lab started in a namespace.
type Proc struct {
	Name string
	Log  string // file with its stdout and stderr
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start runs a command in namespace ns as a child process in its own
// process group, logging to a file in the lab's directory. ip netns
// exec execs the command, so the process's pid is the command's own.
func (l *Lab) Start(ns, name string, args ...string) (*Proc, error) {
	logPath := filepath.Join(l.Dir, fmt.Sprintf("%s-%d.log", name, time.Now().UnixNano()))
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s in %s: %w", name, ns, err)
	}
	p := &Proc{Name: name, Log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return p, nil
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process's group (the process and anything it
// forked, like keepalived's children).
func (p *Proc) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	return syscall.Kill(-p.cmd.Process.Pid, sig)
}

// Wait waits up to timeout for the process to exit.
func (p *Proc) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("%s (pid %d) still running after %v", p.Name, p.Pid(), timeout)
	}
}

// Kill SIGKILLs the process group and waits for the process.
func (p *Proc) Kill() {
	p.Signal(syscall.SIGKILL)
	p.Wait(5 * time.Second)
}

// Output is what the process has logged so far.
func (p *Proc) Output() string {
	b, _ := os.ReadFile(p.Log)
	return string(b)
}

// Holds reports whether ns has vip on its LAN interface.
func (l *Lab) Holds(ns string, vip netip.Prefix) (bool, error) {
	addrs, err := l.Addrs(ns)
	return addrs[vip.Addr()] != nil, err
}

// AddrInfo is one address on an interface, as ip -j shows it.
type AddrInfo struct {
	Local     string `json:"local"`
	PrefixLen int    `json:"prefixlen"`
	Label     string `json:"label"`
	// NoDAD is set for an IPv6 address added without duplicate address
	// detection (IFA_F_NODAD).
	NoDAD bool `json:"nodad"`
}

// Addrs lists the addresses on ns's LAN interface.
func (l *Lab) Addrs(ns string) (map[netip.Addr]*AddrInfo, error) {
	out, err := exec.Command("ip", "-j", "-n", ns, "addr", "show", "dev", Dev).Output()
	if err != nil {
		return nil, fmt.Errorf("listing addresses in %s: %w", ns, err)
	}
	var links []struct {
		AddrInfo []*AddrInfo `json:"addr_info"`
	}
	if err := json.Unmarshal(out, &links); err != nil {
		return nil, fmt.Errorf("parsing addresses in %s: %w", ns, err)
	}
	addrs := map[netip.Addr]*AddrInfo{}
	for _, li := range links {
		for _, a := range li.AddrInfo {
			if ip, err := netip.ParseAddr(a.Local); err == nil {
				addrs[ip] = a
			}
		}
	}
	return addrs, nil
}

// MAC is the hardware address of ns's LAN interface.
func (l *Lab) MAC(ns string) (string, error) {
	out, err := exec.Command("ip", "-j", "-n", ns, "link", "show", "dev", Dev).Output()
	if err != nil {
		return "", fmt.Errorf("reading MAC in %s: %w", ns, err)
	}
	var links []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) == 0 {
		return "", fmt.Errorf("parsing link in %s: %v", ns, err)
	}
	return links[0].Address, nil
}

// Neighbour is ns's neighbour entry for ip: its MAC and state, or ""
// when there is none.
func (l *Lab) Neighbour(ns string, ip netip.Addr) (mac, state string, err error) {
	out, err := exec.Command("ip", "-j", "-n", ns, "neigh", "show", ip.String(), "dev", Dev).Output()
	if err != nil {
		return "", "", fmt.Errorf("reading neighbours in %s: %w", ns, err)
	}
	var entries []struct {
		LLAddr string   `json:"lladdr"`
		State  []string `json:"state"`
	}
	if err := json.Unmarshal(out, &entries); err != nil {
		return "", "", fmt.Errorf("parsing neighbours in %s: %w", ns, err)
	}
	if len(entries) == 0 {
		return "", "", nil
	}
	return entries[0].LLAddr, strings.Join(entries[0].State, ","), nil
}

// Holders lists which of the frontends hold vip.
func (l *Lab) Holders(vip netip.Prefix) ([]string, error) {
	var out []string
	for _, ns := range []string{l.FE1, l.FE2} {
		ok, err := l.Holds(ns, vip)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, ns)
		}
	}
	return out, nil
}

// WaitFor polls cond every 5ms until it returns true or timeout passes;
// the error says what was awaited and the last error cond gave.
func WaitFor(timeout time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		last = err
		if time.Now().After(deadline) {
			if last != nil {
				return fmt.Errorf("waiting %v for %s: %w", timeout, what, last)
			}
			return fmt.Errorf("waiting %v for %s: timed out", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
