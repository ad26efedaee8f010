package announce

import "github.com/ringfront/ringfront/vipwatch/rawsock"

// Dial opens a raw packet socket on the interface called name (this
// needs CAP_NET_RAW) and returns an Announcer on it.
func Dial(name string) (*Announcer, error) {
	ifi, conn, err := rawsock.ARP(name)
	if err != nil {
		return nil, err
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
	ifi, c, err := rawsock.NDP(name)
	if err != nil {
		return nil, err
	}
	return NewNDP(ifi, c), nil
}
