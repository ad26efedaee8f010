package announce

import (
	"fmt"
	"net"

	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
)

// etherTypeARP is ARP's EtherType (RFC 826).
const etherTypeARP = 0x0806

// Dial opens a raw packet socket on the interface called name (this
// needs CAP_NET_RAW) and returns an Announcer on it.
func Dial(name string) (*Announcer, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("looking up interface %s: %w", name, err)
	}
	conn, err := packet.Listen(ifi, packet.Raw, etherTypeARP, nil)
	if err != nil {
		return nil, fmt.Errorf("opening raw socket on %s: %w", name, err)
	}
	a, err := New(ifi, conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return a, nil
}

// DialNDP opens an ICMPv6 socket on the interface called name, bound
// to its link-local address (the source RFC 4861 wants for neighbour
// discovery; this needs CAP_NET_RAW), and returns an NDP announcer on
// it.
func DialNDP(name string) (*NDP, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("looking up interface %s: %w", name, err)
	}
	c, _, err := ndp.Listen(ifi, ndp.LinkLocal)
	if err != nil {
		return nil, fmt.Errorf("opening an NDP socket on %s's link-local address: %w", name, err)
	}
	return NewNDP(ifi, c), nil
}
