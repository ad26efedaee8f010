package member

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// effects is a shared, ordered record of what fakes did, as text, with
// the (synctest) time since the test began.
type effects struct {
	mu    sync.Mutex
	start time.Time
	lines []string
}

func newEffects() *effects { return &effects{start: time.Now()} }

func (e *effects) add(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lines = append(e.lines, fmt.Sprintf("%.3fs ", time.Since(e.start).Seconds())+fmt.Sprintf(format, args...))
}

// take returns the lines recorded since the last take, leaving out
// those that contain skip.
func (e *effects) take(skip string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, l := range e.lines {
		if skip == "" || !strings.Contains(l, skip) {
			out = append(out, l)
		}
	}
	e.lines = nil
	return out
}

// fakeAddrs is a machine's interface address table.
type fakeAddrs struct {
	node, dev string
	fx        *effects
	mu        sync.Mutex
	set       map[netip.Prefix]bool
}

func (f *fakeAddrs) Add(p netip.Prefix) error {
	f.mu.Lock()
	f.set[p] = true
	f.mu.Unlock()
	f.fx.add("%s: ip addr replace %v dev %s label %s:vw", f.node, p, f.dev, f.dev)
	return nil
}

func (f *fakeAddrs) Delete(p netip.Prefix) error {
	f.mu.Lock()
	delete(f.set, p)
	f.mu.Unlock()
	f.fx.add("%s: ip addr del %v dev %s", f.node, p, f.dev)
	return nil
}

func (f *fakeAddrs) Labelled() ([]netip.Prefix, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []netip.Prefix
	for p := range f.set {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return strings.Compare(a.String(), b.String()) })
	return out, nil
}

func (f *fakeAddrs) has(p netip.Prefix) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.set[p]
}

type fakeAnnouncer struct {
	node string
	fx   *effects
}

func (f *fakeAnnouncer) Announce(ip netip.Addr) (int, error) {
	f.fx.add("%s: garp %v", f.node, ip)
	return 2, nil
}

// memNet is an in-memory datagram network: channel operations block
// durably, which lets synctest advance its fake clock.
type memNet struct {
	mu    sync.Mutex
	conns map[string]*memConn
	mute  map[string]bool // datagrams from these addresses are lost
	// tapes record the datagrams sent from an address (an attacker on
	// the LAN), while it is a key.
	tapes map[string]*[][]byte
}

func newMemNet() *memNet {
	return &memNet{conns: map[string]*memConn{}, mute: map[string]bool{}, tapes: map[string]*[][]byte{}}
}

// record starts recording the datagrams sent from addr (even those
// lost), and returns a function that stops it and returns them.
func (n *memNet) record(addr netip.AddrPort) func() [][]byte {
	key := net.UDPAddrFromAddrPort(addr).String()
	tape := new([][]byte)
	n.mu.Lock()
	n.tapes[key] = tape
	n.mu.Unlock()
	return func() [][]byte {
		n.mu.Lock()
		defer n.mu.Unlock()
		delete(n.tapes, key)
		return *tape
	}
}

func (n *memNet) listen(addr netip.AddrPort) *memConn {
	c := &memConn{net: n, addr: net.UDPAddrFromAddrPort(addr), in: make(chan datagram, 64), closed: make(chan struct{})}
	n.mu.Lock()
	n.conns[c.addr.String()] = c
	n.mu.Unlock()
	return c
}

func (n *memNet) setMute(addr netip.AddrPort, mute bool) {
	n.mu.Lock()
	n.mute[net.UDPAddrFromAddrPort(addr).String()] = mute
	n.mu.Unlock()
}

type datagram struct {
	b    []byte
	from net.Addr
}

type memConn struct {
	net       *memNet
	addr      *net.UDPAddr
	in        chan datagram
	closed    chan struct{}
	closeOnce sync.Once
}

func (c *memConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case d := <-c.in:
		return copy(b, d.b), d.from, nil
	case <-c.closed:
		return 0, nil, net.ErrClosed
	}
}

func (c *memConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	c.net.mu.Lock()
	dst := c.net.conns[addr.String()]
	mute := c.net.mute[c.addr.String()]
	if tape := c.net.tapes[c.addr.String()]; tape != nil {
		*tape = append(*tape, append([]byte(nil), b...))
	}
	c.net.mu.Unlock()
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	if dst == nil || mute {
		return len(b), nil // lost, as UDP loses
	}
	select {
	case dst.in <- datagram{b: append([]byte(nil), b...), from: c.addr}:
	case <-dst.closed:
	default:
	}
	return len(b), nil
}

func (c *memConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}
func (c *memConn) LocalAddr() net.Addr              { return c.addr }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }
