package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/net/icmp"
	"golang.org/x/sys/unix"

	"github.com/ringfront/ringfront/vipwatch/rawsock"
)

// DialARP opens a raw packet socket for ARP on the interface called
// name (CAP_NET_RAW) and returns an ARP prober on it.
func DialARP(name string) (*ARP, error) {
	ifi, conn, err := rawsock.ARP(name)
	if err != nil {
		return nil, err
	}
	a, err := NewARP(ifi, conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return a, nil
}

// DialNDP opens an ICMPv6 socket on the link-local address of the
// interface called name (CAP_NET_RAW) and returns an NDP prober on it.
func DialNDP(name string) (*NDP, error) {
	ifi, c, err := rawsock.NDP(name)
	if err != nil {
		return nil, err
	}
	return NewNDP(ifi, c), nil
}

// DialICMP opens a raw ICMP socket bound to the interface called name
// (CAP_NET_RAW), so that a witness is reached through that interface or
// not at all. Without CAP_NET_RAW it falls back to an unprivileged ICMP
// datagram socket (net.ipv4.ping_group_range must include the group),
// which cannot be bound to the interface; unprivileged reports that.
func DialICMP(name string) (p *ICMP, unprivileged bool, err error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = unix.BindToDevice(int(fd), name) }); err != nil {
			return err
		}
		return serr
	}}
	c, err := lc.ListenPacket(context.Background(), "ip4:icmp", "0.0.0.0")
	if err == nil {
		return NewICMP(c, uint16(os.Getpid()), false), false, nil
	}
	if !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.EACCES) {
		return nil, false, fmt.Errorf("opening a raw ICMP socket on %s: %w", name, err)
	}
	dc, derr := icmp.ListenPacket("udp4", "0.0.0.0")
	if derr != nil {
		return nil, false, fmt.Errorf("opening an ICMP socket on %s: raw: %w; unprivileged: %w", name, err, derr)
	}
	return NewICMP(dc, 0, true), true, nil
}
