package announce

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
)

// Announcer sends gratuitous ARP on one interface. It is safe for
// concurrent use as far as its PacketConn is.
type Announcer struct {
	ifi *net.Interface
	c   *arp.Client
}

// New returns an Announcer that writes frames to conn, which must
// deliver them on ifi. ifi must have an IPv4 address (mdlayher/arp's
// requirement). Tests pass a PacketConn that records what is written.
func New(ifi *net.Interface, conn net.PacketConn) (*Announcer, error) {
	c, err := arp.New(ifi, conn)
	if err != nil {
		return nil, fmt.Errorf("ARP client on %s: %w", ifi.Name, err)
	}
	return &Announcer{ifi: ifi, c: c}, nil
}

// Frames are the packets of one announcement, in the order sent.
func (a *Announcer) Frames(ip netip.Addr) ([]*arp.Packet, error) {
	if !ip.Is4() {
		return nil, fmt.Errorf("gratuitous ARP for %v: not an IPv4 address", ip)
	}
	mac := a.ifi.HardwareAddr
	zero := make(net.HardwareAddr, len(mac))
	req, err := arp.NewPacket(arp.OperationRequest, mac, ip, zero, ip)
	if err != nil {
		return nil, fmt.Errorf("building gratuitous ARP request for %v: %w", ip, err)
	}
	rep, err := arp.NewPacket(arp.OperationReply, mac, ip, mac, ip)
	if err != nil {
		return nil, fmt.Errorf("building gratuitous ARP reply for %v: %w", ip, err)
	}
	return []*arp.Packet{req, rep}, nil
}

// Announce sends one announcement for ip and reports how many frames
// went out.
func (a *Announcer) Announce(ip netip.Addr) (int, error) {
	pkts, err := a.Frames(ip)
	if err != nil {
		return 0, err
	}
	for n, p := range pkts {
		if err := a.c.WriteTo(p, ethernet.Broadcast); err != nil {
			return n, fmt.Errorf("sending gratuitous ARP for %v on %s: %w", ip, a.ifi.Name, err)
		}
	}
	return len(pkts), nil
}

// Close closes the underlying connection.
func (a *Announcer) Close() error { return a.c.Close() }
