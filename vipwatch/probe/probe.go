package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Answers maps each address that answered to the hardware address it
// answered from (nil for ICMP, which does not say).
type Answers map[netip.Addr]net.HardwareAddr

// timedOut reports whether err is the read deadline passing.
func timedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// socketError reports whether err came from the socket (as opposed to
// parsing what it read).
func socketError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed)
}

// wanted is the set of targets still waiting for an answer.
func wanted(targets []netip.Addr) map[netip.Addr]bool {
	w := make(map[netip.Addr]bool, len(targets))
	for _, t := range targets {
		w[t] = true
	}
	return w
}

// drainFor and drainMax bound how long and how many frames a prober
// discards before it asks: a raw socket queues every ARP or NDP frame
// for the interface, including answers to the kernel's own requests
// that arrived before this round (a witness that answered then may be
// cut off now). A millisecond is ample for frames already queued.
const (
	drainFor = time.Millisecond
	drainMax = 1024
)

// ARP asks IPv4 addresses with ARP requests on one interface.
type ARP struct {
	mu  sync.Mutex // one Ask at a time on c
	c   *arp.Client
	ifi *net.Interface
}

// NewARP returns an ARP prober that sends and reads frames on conn,
// which must carry ifi's ARP traffic. ifi must have an IPv4 address
// (the requests' sender address; mdlayher/arp's requirement).
func NewARP(ifi *net.Interface, conn net.PacketConn) (*ARP, error) {
	c, err := arp.New(ifi, conn)
	if err != nil {
		return nil, fmt.Errorf("ARP prober on %s: %w", ifi.Name, err)
	}
	return &ARP{c: c, ifi: ifi}, nil
}

// Ask sends one ARP request for each target and returns those that
// answered within timeout, with their MACs. Answers from this
// interface's own MAC do not count.
func (a *ARP) Ask(targets []netip.Addr, timeout time.Duration) (Answers, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	want := wanted(targets)
	got := Answers{}
	if err := a.c.SetReadDeadline(time.Now().Add(drainFor)); err != nil {
		return got, fmt.Errorf("probing %v with ARP on %s: %w", targets, a.ifi.Name, err)
	}
	for range drainMax {
		if _, _, err := a.c.Read(); err != nil {
			break
		}
	}
	if err := a.c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return got, fmt.Errorf("probing %v with ARP on %s: %w", targets, a.ifi.Name, err)
	}
	for _, t := range targets {
		if !t.Is4() {
			return got, fmt.Errorf("probing %v with ARP: not an IPv4 address", t)
		}
		if err := a.c.Request(t); err != nil {
			return got, fmt.Errorf("sending an ARP request for %v on %s: %w", t, a.ifi.Name, err)
		}
	}
	for len(want) > 0 {
		p, _, err := a.c.Read()
		if timedOut(err) {
			return got, nil
		}
		if err != nil && !socketError(err) {
			continue // a malformed frame on the LAN says nothing about the targets
		}
		if err != nil {
			return got, fmt.Errorf("reading ARP replies on %s: %w", a.ifi.Name, err)
		}
		if p.Operation != arp.OperationReply || !want[p.SenderIP] || string(p.SenderHardwareAddr) == string(a.ifi.HardwareAddr) {
			continue
		}
		delete(want, p.SenderIP)
		got[p.SenderIP] = p.SenderHardwareAddr
	}
	return got, nil
}

// Close closes the connection.
func (a *ARP) Close() error { return a.c.Close() }

// ndpConn is the part of an ndp.Conn an NDP prober uses.
type ndpConn interface {
	WriteTo(m ndp.Message, cm *ipv6.ControlMessage, dst netip.Addr) error
	ReadFrom() (ndp.Message, *ipv6.ControlMessage, netip.Addr, error)
	SetReadDeadline(time.Time) error
	Close() error
}

// NDP asks IPv6 addresses with neighbour solicitations on one
// interface.
type NDP struct {
	mu  sync.Mutex // one Ask at a time on c
	c   ndpConn
	ifi *net.Interface
}

// NewNDP returns an NDP prober on c, which must send and receive on ifi.
func NewNDP(ifi *net.Interface, c ndpConn) *NDP { return &NDP{c: c, ifi: ifi} }

// Ask sends a neighbour solicitation for each target to its
// solicited-node multicast group and returns those that answered with
// a neighbour advertisement within timeout, with the MACs they gave.
func (n *NDP) Ask(targets []netip.Addr, timeout time.Duration) (Answers, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	want := wanted(targets)
	got := Answers{}
	if err := n.c.SetReadDeadline(time.Now().Add(drainFor)); err != nil {
		return got, fmt.Errorf("probing %v with NDP on %s: %w", targets, n.ifi.Name, err)
	}
	for range drainMax {
		if _, _, _, err := n.c.ReadFrom(); err != nil {
			break
		}
	}
	if err := n.c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return got, fmt.Errorf("probing %v with NDP on %s: %w", targets, n.ifi.Name, err)
	}
	for _, t := range targets {
		group, err := ndp.SolicitedNodeMulticast(t)
		if err != nil {
			return got, fmt.Errorf("probing %v with NDP: %w", t, err)
		}
		ns := &ndp.NeighborSolicitation{TargetAddress: t, Options: []ndp.Option{
			&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: n.ifi.HardwareAddr},
		}}
		if err := n.c.WriteTo(ns, nil, group); err != nil {
			return got, fmt.Errorf("sending a neighbour solicitation for %v on %s: %w", t, n.ifi.Name, err)
		}
	}
	for len(want) > 0 {
		m, _, _, err := n.c.ReadFrom()
		if timedOut(err) {
			return got, nil
		}
		if err != nil {
			return got, fmt.Errorf("reading neighbour advertisements on %s: %w", n.ifi.Name, err)
		}
		na, ok := m.(*ndp.NeighborAdvertisement)
		if !ok || !want[na.TargetAddress] {
			continue
		}
		var mac net.HardwareAddr
		for _, o := range na.Options {
			if l, ok := o.(*ndp.LinkLayerAddress); ok && l.Direction == ndp.Target {
				mac = l.Addr
			}
		}
		if mac != nil && string(mac) == string(n.ifi.HardwareAddr) {
			continue
		}
		delete(want, na.TargetAddress)
		got[na.TargetAddress] = mac
	}
	return got, nil
}

// Close closes the connection.
func (n *NDP) Close() error { return n.c.Close() }

// ICMP asks IPv4 addresses with ICMP echo requests.
type ICMP struct {
	mu  sync.Mutex // one Ask at a time on c; guards seq
	c   net.PacketConn
	id  uint16
	seq uint16
	// datagram: c is an unprivileged ICMP datagram socket: the kernel
	// sets the identifier (the socket's port) and filters replies, and
	// peers are addressed as *net.UDPAddr.
	datagram bool
}

// NewICMP returns an ICMP prober on c: a raw ip4:icmp socket
// (datagram false) or an unprivileged ICMP datagram socket (true).
// id tells a raw socket's replies from other processes'.
func NewICMP(c net.PacketConn, id uint16, datagram bool) *ICMP {
	return &ICMP{c: c, id: id, datagram: datagram}
}

// Ask sends one echo request to each target and returns those that
// replied within timeout.
func (p *ICMP) Ask(targets []netip.Addr, timeout time.Duration) (Answers, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	got := Answers{}
	if err := p.c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return got, fmt.Errorf("pinging %v: %w", targets, err)
	}
	bySeq := map[uint16]netip.Addr{}
	for _, t := range targets {
		if !t.Is4() {
			return got, fmt.Errorf("pinging %v: not an IPv4 address", t)
		}
		p.seq++
		bySeq[p.seq] = t
		payload := make([]byte, 8)
		binary.BigEndian.PutUint64(payload, uint64(time.Now().UnixNano()))
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: int(p.id), Seq: int(p.seq), Data: payload}}
		b, err := msg.Marshal(nil)
		if err != nil {
			return got, fmt.Errorf("pinging %v: %w", t, err)
		}
		var to net.Addr = &net.IPAddr{IP: t.AsSlice()}
		if p.datagram {
			to = &net.UDPAddr{IP: t.AsSlice()}
		}
		if _, err := p.c.WriteTo(b, to); err != nil {
			return got, fmt.Errorf("pinging %v: %w", t, err)
		}
	}
	buf := make([]byte, 1500)
	for len(got) < len(bySeq) {
		n, from, err := p.c.ReadFrom(buf)
		if timedOut(err) {
			return got, nil
		}
		if err != nil {
			return got, fmt.Errorf("reading ICMP replies: %w", err)
		}
		m, err := icmp.ParseMessage(1, buf[:n]) // 1: ICMP for IPv4
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
			continue
		}
		echo, ok := m.Body.(*icmp.Echo)
		if !ok || (!p.datagram && echo.ID != int(p.id)) {
			continue
		}
		t, ok := bySeq[uint16(echo.Seq)]
		if !ok || addrOf(from) != t {
			continue
		}
		got[t] = nil
	}
	return got, nil
}

// addrOf is the IP address of a raw or datagram socket's peer.
func addrOf(a net.Addr) netip.Addr {
	var ip net.IP
	switch a := a.(type) {
	case *net.IPAddr:
		ip = a.IP
	case *net.UDPAddr:
		ip = a.IP
	}
	addr, _ := netip.AddrFromSlice(ip)
	return addr.Unmap()
}

// Close closes the connection.
func (p *ICMP) Close() error { return p.c.Close() }
