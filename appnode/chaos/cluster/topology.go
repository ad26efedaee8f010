package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/ringfront/ringfront/appnode/chaos/history"
	"github.com/vishvananda/netns"
)

// The LAN: member i at 198.51.100.(11+i), the clients at .100, all on
// one bridge (198.51.100.0/24 is TEST-NET-2, never routed).
var clientAddr = netip.MustParseAddr("198.51.100.100")

func memberAddr(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 51, 100, byte(11 + i)}) }

// namePrefix starts every namespace this package makes; the digits
// after it are the pid of the process that made it (see CleanStale).
const namePrefix = "rfc"

// dev is the LAN interface inside each host namespace.
const dev = "eth0"

// Topology is a bridge namespace and one namespace per member and for
// the clients, cabled to the bridge with veth pairs. Nothing is added
// to the caller's own namespace. Its methods are safe for concurrent
// use.
type Topology struct {
	Bridge  string   // namespace names
	Members []string // by member index
	Client  string

	clientNS netns.NsHandle
}

// RequireTools returns an error that says why a topology cannot be
// built here, or nil.
func RequireTools() error {
	if os.Geteuid() != 0 {
		return errors.New("the chaos test needs root (it creates network namespaces, veth pairs, a bridge and nftables rules)")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("the chaos test needs %s (Debian: iproute2, nftables)", tool)
		}
	}
	return nil
}

// NewTopology builds a LAN of members member namespaces and a client
// namespace; every name starts with namePrefix, the caller's pid and
// tag (a letter or two). On error it removes what it built.
func NewTopology(tag string, members int) (*Topology, error) {
	if members < 1 || members > 80 {
		return nil, fmt.Errorf("building the chaos LAN: %d members is not from 1 to 80", members)
	}
	p := namePrefix + strconv.Itoa(os.Getpid()) + tag + "-"
	t := &Topology{Bridge: p + "br", Client: p + "cl", clientNS: -1}
	for i := range members {
		t.Members = append(t.Members, p+history.MemberName(i))
	}
	if err := t.build(); err != nil {
		t.Close()
		return nil, fmt.Errorf("building the chaos LAN %s*: %w", p, err)
	}
	return t, nil
}

func (t *Topology) build() error {
	if err := ip("netns", "add", t.Bridge); err != nil {
		return err
	}
	steps := [][]string{
		{"-n", t.Bridge, "link", "set", "lo", "up"},
		// forward_delay 0: ports forward at once; one switch, no STP.
		{"-n", t.Bridge, "link", "add", "br0", "type", "bridge", "forward_delay", "0"},
		{"-n", t.Bridge, "link", "set", "br0", "up"},
	}
	hosts := append([]string{t.Client}, t.Members...)
	addrs := []netip.Addr{clientAddr}
	for i := range t.Members {
		addrs = append(addrs, memberAddr(i))
	}
	for i, ns := range hosts {
		if err := ip("netns", "add", ns); err != nil {
			return err
		}
		// The bridge end is named after the host (≤ 15 characters),
		// made in the bridge namespace with its peer moved straight
		// into the host's: no link ever appears in the caller's.
		port := "p" + ns[strings.LastIndexByte(ns, '-')+1:]
		steps = append(steps,
			[]string{"-n", ns, "link", "set", "lo", "up"},
			[]string{"-n", t.Bridge, "link", "add", port, "type", "veth", "peer", "name", dev, "netns", ns},
			[]string{"-n", t.Bridge, "link", "set", port, "master", "br0"},
			[]string{"-n", t.Bridge, "link", "set", port, "up"},
			[]string{"-n", ns, "addr", "add", addrs[i].String() + "/24", "dev", dev},
			[]string{"-n", ns, "link", "set", dev, "up"},
		)
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return err
		}
	}
	for _, ns := range t.Members {
		if err := nft(ns, nftSetup()); err != nil {
			return err
		}
	}
	h, err := netns.GetFromName(t.Client)
	if err != nil {
		return fmt.Errorf("opening namespace %s: %w", t.Client, err)
	}
	t.clientNS = h
	return nil
}

// Close deletes the namespaces (their links and rules go with them).
// The processes in them must be gone first. It is safe to call twice.
func (t *Topology) Close() error {
	if t.clientNS >= 0 {
		t.clientNS.Close()
		t.clientNS = -1
	}
	var errs []error
	for _, ns := range append([]string{t.Client, t.Bridge}, t.Members...) {
		if _, err := os.Stat("/run/netns/" + ns); err != nil {
			continue
		}
		if err := ip("netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Cut makes member's namespace drop every packet to and from addrs;
// none lets everything through again.
func (t *Topology) Cut(member int, addrs []netip.Addr) error {
	return nft(t.Members[member], nftCut(addrs))
}

// DialContext opens a connection from the client namespace. The socket
// is made on a thread switched into that namespace; the thread is never
// switched back but ends with its goroutine, so no other code ever runs
// in the namespace by mistake.
func (t *Topology) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		if err := netns.Set(t.clientNS); err != nil {
			ch <- result{nil, fmt.Errorf("entering namespace %s: %w", t.Client, err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// CleanStale removes what runs of this package left behind when they
// were killed before cleaning up: namespaces named after a pid that no
// longer runs, and the processes inside them (found by namespace, so
// only processes such a run started).
func CleanStale() error {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return fmt.Errorf("listing namespaces: %w", err)
	}
	var errs []error
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		ns := f[0]
		pid, ok := namespacePID(ns)
		if !ok || syscall.Kill(pid, 0) == nil || pid == os.Getpid() {
			continue // its run is still going
		}
		pids, _ := exec.Command("ip", "netns", "pids", ns).Output()
		for _, p := range strings.Fields(string(pids)) {
			if n, err := strconv.Atoi(p); err == nil {
				syscall.Kill(n, syscall.SIGKILL)
			}
		}
		if err := ip("netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// namespacePID returns the pid in a namespace name this package made
// ("rfc1234a-m1": 1234), and whether it is such a name.
func namespacePID(ns string) (int, bool) {
	rest, ok := strings.CutPrefix(ns, namePrefix)
	if !ok {
		return 0, false
	}
	tail := strings.TrimLeft(rest, "0123456789")
	pid, err := strconv.Atoi(rest[:len(rest)-len(tail)])
	if err != nil || !strings.Contains(tail, "-") {
		return 0, false
	}
	return pid, true
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// nft runs an nft script in namespace ns.
func nft(ns, script string) error {
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft in %s: %v: %s (script: %q)", ns, err, bytes.TrimSpace(out), script)
	}
	return nil
}
