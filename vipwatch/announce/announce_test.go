package announce

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
)

// recordConn is a net.PacketConn that records every frame written to
// it as text, and refuses reads.
type recordConn struct {
	sent []string
}

func (c *recordConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	var f ethernet.Frame
	if err := f.UnmarshalBinary(b); err != nil {
		return 0, err
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(f.Payload); err != nil {
		return 0, err
	}
	c.sent = append(c.sent, fmt.Sprintf("to=%v eth %v->%v type=%#04x arp op=%v sender=%v/%v target=%v/%v",
		addr, f.Source, f.Destination, uint16(f.EtherType), p.Operation, p.SenderHardwareAddr, p.SenderIP, p.TargetHardwareAddr, p.TargetIP))
	return len(b), nil
}
func (c *recordConn) ReadFrom([]byte) (int, net.Addr, error) { return 0, nil, net.ErrClosed }
func (c *recordConn) Close() error                           { return nil }
func (c *recordConn) LocalAddr() net.Addr                    { return nil }
func (c *recordConn) SetDeadline(time.Time) error            { return nil }
func (c *recordConn) SetReadDeadline(time.Time) error        { return nil }
func (c *recordConn) SetWriteDeadline(time.Time) error       { return nil }

func TestAnnounce(t *testing.T) {
	// mdlayher/arp wants an interface with an IPv4 address; loopback has
	// one. The MAC is ours to choose.
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skipf("no loopback interface: %v", err)
	}
	ifi := *lo
	ifi.HardwareAddr = net.HardwareAddr{0x02, 0, 0x5e, 0x10, 0, 0x01}
	conn := &recordConn{}
	a, err := New(&ifi, conn)
	if err != nil {
		t.Fatal(err)
	}
	n, err := a.Announce(netip.MustParseAddr("198.51.100.10"))
	if err != nil || n != 2 {
		t.Fatalf("Announce = %d, %v", n, err)
	}
	// The packet socket's address type prints as the hardware address.
	want := []string{
		"to=ff:ff:ff:ff:ff:ff eth 02:00:5e:10:00:01->ff:ff:ff:ff:ff:ff type=0x0806 arp op=OperationRequest sender=02:00:5e:10:00:01/198.51.100.10 target=00:00:00:00:00:00/198.51.100.10",
		"to=ff:ff:ff:ff:ff:ff eth 02:00:5e:10:00:01->ff:ff:ff:ff:ff:ff type=0x0806 arp op=OperationReply sender=02:00:5e:10:00:01/198.51.100.10 target=02:00:5e:10:00:01/198.51.100.10",
	}
	if diff := cmp.Diff(want, conn.sent); diff != "" {
		t.Errorf("frames (-want +got):\n%s", diff)
	}
	if _, err := a.Announce(netip.MustParseAddr("2001:db8::10")); err == nil || !strings.Contains(err.Error(), "not an IPv4") {
		t.Errorf("Announce(IPv6) error = %v", err)
	}
}
