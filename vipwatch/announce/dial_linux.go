package announce

import (
	"fmt"
	"net"

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
