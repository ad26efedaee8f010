package probe

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// lan is a fake segment behind a connection: hosts answer for the
// addresses in hosts, after delay. Reads block until an answer is due
// or the read deadline passes.
type lan struct {
	mu       sync.Mutex
	hosts    map[netip.Addr]net.HardwareAddr
	queue    []queued
	deadline time.Time
	sent     int
}

type queued struct {
	due  time.Time
	data []byte
	from net.Addr
	msg  ndp.Message
}

func (l *lan) answer(data []byte, from net.Addr, msg ndp.Message) {
	l.queue = append(l.queue, queued{due: time.Now().Add(time.Millisecond), data: data, from: from, msg: msg})
}

// next waits for the next due answer or the deadline.
func (l *lan) next() (queued, error) {
	for {
		l.mu.Lock()
		if len(l.queue) > 0 && !time.Now().Before(l.queue[0].due) {
			q := l.queue[0]
			l.queue = l.queue[1:]
			l.mu.Unlock()
			return q, nil
		}
		d := l.deadline
		l.mu.Unlock()
		if !d.IsZero() && time.Now().After(d) {
			return queued{}, timeoutErr{}
		}
		time.Sleep(time.Millisecond)
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func (l *lan) SetReadDeadline(t time.Time) error {
	l.mu.Lock()
	l.deadline = t
	l.mu.Unlock()
	return nil
}
func (l *lan) SetDeadline(t time.Time) error      { return l.SetReadDeadline(t) }
func (l *lan) SetWriteDeadline(t time.Time) error { return nil }
func (l *lan) Close() error                       { return nil }
func (l *lan) LocalAddr() net.Addr                { return nil }

// arpLAN carries ethernet frames with ARP.
type arpLAN struct{ lan }

func (l *arpLAN) WriteTo(b []byte, _ net.Addr) (int, error) {
	var f ethernet.Frame
	if err := f.UnmarshalBinary(b); err != nil {
		return 0, err
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(f.Payload); err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent++
	if mac, ok := l.hosts[p.TargetIP]; ok && p.Operation == arp.OperationRequest {
		rep, _ := arp.NewPacket(arp.OperationReply, mac, p.TargetIP, p.SenderHardwareAddr, p.SenderIP)
		pb, _ := rep.MarshalBinary()
		fb, _ := (&ethernet.Frame{Destination: p.SenderHardwareAddr, Source: mac, EtherType: ethernet.EtherTypeARP, Payload: pb}).MarshalBinary()
		l.answer(fb, nil, nil)
	}
	return len(b), nil
}

func (l *arpLAN) ReadFrom(b []byte) (int, net.Addr, error) {
	q, err := l.next()
	if err != nil {
		return 0, nil, err
	}
	return copy(b, q.data), nil, nil
}

var (
	ownMAC   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	otherMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
)

func TestARPAsk(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skipf("no loopback interface: %v", err)
	}
	ifi := *lo // mdlayher/arp wants an interface with an IPv4 address
	ifi.HardwareAddr = ownMAC
	gw, vip, self := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.20"), netip.MustParseAddr("198.51.100.30")
	conn := &arpLAN{lan{hosts: map[netip.Addr]net.HardwareAddr{gw: otherMAC, self: ownMAC}}}
	a, err := NewARP(&ifi, conn)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	got, err := a.Ask([]netip.Addr{gw, vip, self}, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// The gateway answers; nobody holds the VIP; this interface's own
	// answer does not count.
	if diff := cmp.Diff(Answers{gw: otherMAC}, got); diff != "" {
		t.Errorf("answers (-want +got):\n%s", diff)
	}
	if el := time.Since(start); el < 100*time.Millisecond {
		t.Errorf("Ask returned after %v with a target unanswered; want it to wait out the timeout", el)
	}
	// All answered: no waiting for the timeout.
	start = time.Now()
	got, err = a.Ask([]netip.Addr{gw}, 5*time.Second)
	if err != nil || len(got) != 1 {
		t.Fatalf("Ask(gw) = %v, %v", got, err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Ask with every target answered took %v", el)
	}
	if _, err := a.Ask([]netip.Addr{netip.MustParseAddr("2001:db8::1")}, time.Millisecond); err == nil {
		t.Error("Ask(IPv6) with ARP: no error")
	}

	// The gateway is cut off, but its answer to an earlier request (the
	// kernel's, say) still waits in the socket: it does not count.
	conn.mu.Lock()
	delete(conn.hosts, gw)
	rep, _ := arp.NewPacket(arp.OperationReply, otherMAC, gw, ownMAC, netip.MustParseAddr("127.0.0.1"))
	pb, _ := rep.MarshalBinary()
	fb, _ := (&ethernet.Frame{Destination: ownMAC, Source: otherMAC, EtherType: ethernet.EtherTypeARP, Payload: pb}).MarshalBinary()
	conn.queue = append(conn.queue, queued{due: time.Now(), data: fb})
	conn.mu.Unlock()
	got, err = a.Ask([]netip.Addr{gw}, 20*time.Millisecond)
	if err != nil || len(got) != 0 {
		t.Errorf("Ask with only a stale answer queued = %v, %v; want no answers", got, err)
	}
}

// ndpLAN carries NDP messages.
type ndpLAN struct{ lan }

func (l *ndpLAN) WriteTo(m ndp.Message, _ *ipv6.ControlMessage, dst netip.Addr) error {
	ns, ok := m.(*ndp.NeighborSolicitation)
	if !ok {
		return nil
	}
	if want, _ := ndp.SolicitedNodeMulticast(ns.TargetAddress); dst != want {
		return nil // not sent where the target listens
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent++
	if mac, ok := l.hosts[ns.TargetAddress]; ok {
		l.answer(nil, nil, &ndp.NeighborAdvertisement{Solicited: true, Override: true, TargetAddress: ns.TargetAddress,
			Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: mac}}})
	}
	return nil
}

func (l *ndpLAN) ReadFrom() (ndp.Message, *ipv6.ControlMessage, netip.Addr, error) {
	q, err := l.next()
	if err != nil {
		return nil, nil, netip.Addr{}, err
	}
	return q.msg, nil, netip.Addr{}, nil
}

func TestNDPAsk(t *testing.T) {
	held, free := netip.MustParseAddr("2001:db8::10"), netip.MustParseAddr("2001:db8::20")
	conn := &ndpLAN{lan{hosts: map[netip.Addr]net.HardwareAddr{held: otherMAC}}}
	n := NewNDP(&net.Interface{Name: "eth0", HardwareAddr: ownMAC}, conn)
	got, err := n.Ask([]netip.Addr{held, free}, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Answers{held: otherMAC}, got); diff != "" {
		t.Errorf("answers (-want +got):\n%s", diff)
	}
	if conn.sent != 2 {
		t.Errorf("%d solicitations reached their solicited-node group, want 2", conn.sent)
	}
}

// pingLAN answers echo requests from the hosts in it.
type pingLAN struct {
	lan
	datagram bool
}

func (l *pingLAN) WriteTo(b []byte, to net.Addr) (int, error) {
	m, err := icmp.ParseMessage(1, b)
	if err != nil {
		return 0, err
	}
	echo := m.Body.(*icmp.Echo)
	dst := addrOf(to)
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.hosts[dst]; ok {
		// Another process's reply first: a raw socket sees it too.
		other, _ := (&icmp.Message{Type: ipv4.ICMPTypeEchoReply, Body: &icmp.Echo{ID: echo.ID + 1, Seq: echo.Seq}}).Marshal(nil)
		rep, _ := (&icmp.Message{Type: ipv4.ICMPTypeEchoReply, Body: &icmp.Echo{ID: echo.ID, Seq: echo.Seq, Data: echo.Data}}).Marshal(nil)
		var from net.Addr = &net.IPAddr{IP: dst.AsSlice()}
		if l.datagram {
			from = &net.UDPAddr{IP: dst.AsSlice()}
		} else {
			l.answer(other, from, nil)
		}
		l.answer(rep, from, nil)
	}
	return len(b), nil
}

func (l *pingLAN) ReadFrom(b []byte) (int, net.Addr, error) {
	q, err := l.next()
	if err != nil {
		return 0, nil, err
	}
	return copy(b, q.data), q.from, nil
}

func TestICMPAsk(t *testing.T) {
	up, down := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2")
	for _, datagram := range []bool{false, true} {
		conn := &pingLAN{lan: lan{hosts: map[netip.Addr]net.HardwareAddr{up: nil}}, datagram: datagram}
		p := NewICMP(conn, 4242, datagram)
		got, err := p.Ask([]netip.Addr{up, down}, 50*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(Answers{up: nil}, got); diff != "" {
			t.Errorf("datagram=%v: answers (-want +got):\n%s", datagram, diff)
		}
	}
}
