package announce

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

// allNodes is the link-local all-nodes multicast group: unsolicited
// neighbour advertisements go to every host on the link (RFC 4861,
// section 7.2.6).
var allNodes = netip.MustParseAddr("ff02::1")

// naWriter is the part of an ndp.Conn an NDP announcer uses; tests
// record what is written.
type naWriter interface {
	WriteTo(m ndp.Message, cm *ipv6.ControlMessage, dst netip.Addr) error
	Close() error
}

// NDP sends unsolicited neighbour advertisements for IPv6 VIPs on one
// interface, the IPv6 counterpart of gratuitous ARP. It is safe for
// concurrent use as far as its connection is.
type NDP struct {
	ifi *net.Interface
	c   naWriter
}

// NewNDP returns an NDP announcer that writes to c, which must send on
// ifi.
func NewNDP(ifi *net.Interface, c naWriter) *NDP { return &NDP{ifi: ifi, c: c} }

// Message is the advertisement for ip: not solicited, with the
// override flag set, so that neighbours replace a cached link-layer
// address (the previous holder's), and the interface's MAC in the
// target link-layer address option.
func (n *NDP) Message(ip netip.Addr) (*ndp.NeighborAdvertisement, error) {
	if !ip.Is6() || ip.Is4In6() {
		return nil, fmt.Errorf("neighbour advertisement for %v: not an IPv6 address", ip)
	}
	return &ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: ip,
		Options: []ndp.Option{
			&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: n.ifi.HardwareAddr},
		},
	}, nil
}

// Announce sends one unsolicited neighbour advertisement for ip to all
// nodes and reports how many messages went out.
func (n *NDP) Announce(ip netip.Addr) (int, error) {
	na, err := n.Message(ip)
	if err != nil {
		return 0, err
	}
	if err := n.c.WriteTo(na, nil, allNodes); err != nil {
		return 0, fmt.Errorf("sending neighbour advertisement for %v on %s: %w", ip, n.ifi.Name, err)
	}
	return 1, nil
}

// Close closes the underlying connection.
func (n *NDP) Close() error { return n.c.Close() }

// Mux announces each VIP the way its family needs: gratuitous ARP for
// IPv4, neighbour advertisements for IPv6. Either may be nil when no
// VIP of that family is configured.
type Mux struct {
	V4 *Announcer
	V6 *NDP
}

// Announce sends one announcement for ip.
func (m Mux) Announce(ip netip.Addr) (int, error) {
	switch {
	case ip.Is4() && m.V4 != nil:
		return m.V4.Announce(ip)
	case ip.Is6() && m.V6 != nil:
		return m.V6.Announce(ip)
	}
	return 0, fmt.Errorf("announcing %v: no announcer for its address family", ip)
}
