// Package rawsock opens the link-layer sockets vipwatch speaks ARP and
// NDP on: the announcer's gratuitous ARP and unsolicited neighbour
// advertisements, and the prober's questions to witnesses and VIPs.
// Both need CAP_NET_RAW.
package rawsock

import (
	"fmt"
	"net"

	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
)

// etherTypeARP is ARP's EtherType (RFC 826).
const etherTypeARP = 0x0806

// ARP opens a raw packet socket for ARP frames on the interface called
// name.
func ARP(name string) (*net.Interface, *packet.Conn, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, nil, fmt.Errorf("looking up interface %s: %w", name, err)
	}
	conn, err := packet.Listen(ifi, packet.Raw, etherTypeARP, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("opening a raw ARP socket on %s: %w", name, err)
	}
	return ifi, conn, nil
}

// NDP opens an ICMPv6 socket on the link-local address of the interface
// called name: the source RFC 4861 wants for neighbour discovery.
func NDP(name string) (*net.Interface, *ndp.Conn, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, nil, fmt.Errorf("looking up interface %s: %w", name, err)
	}
	c, _, err := ndp.Listen(ifi, ndp.LinkLocal)
	if err != nil {
		return nil, nil, fmt.Errorf("opening an NDP socket on %s's link-local address: %w", name, err)
	}
	return ifi, c, nil
}
