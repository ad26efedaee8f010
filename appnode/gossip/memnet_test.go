package gossip

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/memberlist"
)

// memNet is an in-memory network for memberlist: packets arrive after
// latency, or are lost when their receiver is gone or behind (as UDP's
// are); streams are net.Pipe pairs; a dial to an address nobody holds is
// refused. Every wait in it is on a channel or a timer, so members on it
// run in a testing/synctest bubble, on the bubble's clock.
type memNet struct {
	mu    sync.Mutex // guards next and hosts
	next  int
	hosts map[string]*memTransport
}

// newNet returns an empty network for a test in a synctest bubble. Once
// the test's members are stopped (its other cleanups, which run first),
// it lets what they left behind end on the bubble's clock: a bubble ends
// only when all of its goroutines have. An hour is far longer than any
// of those waits (a probe waiting out its timeout; the 400 catch-up
// announcements TestCatchingUpFlipsSettle queues, each waiting up to a
// second for a broadcast that a stopped member never sends) and costs
// nothing on that clock.
func newNet(t *testing.T) *memNet {
	t.Cleanup(func() {
		time.Sleep(time.Hour)
		synctest.Wait()
	})
	return &memNet{}
}

// transport returns a new member's transport, at an address of its own.
func (n *memNet) transport() *memTransport {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.hosts == nil {
		n.hosts, n.next = map[string]*memTransport{}, 20000
	}
	n.next++
	t := &memTransport{
		net:     n,
		addr:    netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(n.next)),
		packets: make(chan *memberlist.Packet, 256),
		streams: make(chan net.Conn, 16),
	}
	n.hosts[t.addr.String()] = t
	return t
}

func (n *memNet) host(addr string) *memTransport {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.hosts[addr]
}

// memTransport is one member's memberlist.Transport on a memNet.
type memTransport struct {
	net     *memNet
	addr    netip.AddrPort
	packets chan *memberlist.Packet
	streams chan net.Conn
}

var errRefused = errors.New("connection refused")

func (t *memTransport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return t.addr.Addr().AsSlice(), int(t.addr.Port()), nil
}

// latency is how long a packet takes on a memNet: not zero, so that a
// probe measures a round trip on the bubble's clock.
const latency = time.Millisecond

func (t *memTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	p := &memberlist.Packet{Buf: append([]byte(nil), b...), From: net.UDPAddrFromAddrPort(t.addr)}
	time.AfterFunc(latency, func() {
		dst := t.net.host(addr)
		if dst == nil {
			return // nobody there: lost, as a datagram would be
		}
		p.Timestamp = time.Now()
		select {
		case dst.packets <- p:
		default: // the receiver is behind: lost too
		}
	})
	return time.Now(), nil
}

func (t *memTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

func (t *memTransport) DialTimeout(addr string, _ time.Duration) (net.Conn, error) {
	dst := t.net.host(addr)
	if dst == nil {
		return nil, fmt.Errorf("dial tcp %s: %w", addr, errRefused)
	}
	ours, theirs := net.Pipe()
	select {
	case dst.streams <- theirs:
		return ours, nil
	default:
		ours.Close()
		theirs.Close()
		return nil, fmt.Errorf("dial tcp %s: %w (backlog full)", addr, errRefused)
	}
}

func (t *memTransport) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown takes the member off the network: packets to it are lost and
// dials to it refused, as for a process that died.
func (t *memTransport) Shutdown() error {
	t.net.mu.Lock()
	defer t.net.mu.Unlock()
	if t.net.hosts[t.addr.String()] == t {
		delete(t.net.hosts, t.addr.String())
	}
	return nil
}
