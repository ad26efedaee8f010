package announce

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

// naRecorder records every message written as text, after a round trip
// through the wire format.
type naRecorder struct{ sent []string }

func (r *naRecorder) WriteTo(m ndp.Message, cm *ipv6.ControlMessage, dst netip.Addr) error {
	b, err := ndp.MarshalMessage(m)
	if err != nil {
		return err
	}
	back, err := ndp.ParseMessage(b)
	if err != nil {
		return err
	}
	na, ok := back.(*ndp.NeighborAdvertisement)
	if !ok {
		return fmt.Errorf("wrote a %T", back)
	}
	var opts []string
	for _, o := range na.Options {
		if l, ok := o.(*ndp.LinkLayerAddress); ok {
			opts = append(opts, fmt.Sprintf("lla(dir=%d)=%v", l.Direction, l.Addr))
		}
	}
	r.sent = append(r.sent, fmt.Sprintf("to=%v na target=%v router=%v solicited=%v override=%v %s",
		dst, na.TargetAddress, na.Router, na.Solicited, na.Override, strings.Join(opts, " ")))
	return nil
}
func (r *naRecorder) Close() error { return nil }

func TestNDPAnnounce(t *testing.T) {
	ifi := &net.Interface{Name: "eth0", HardwareAddr: net.HardwareAddr{0x02, 0, 0x5e, 0x10, 0, 0x01}}
	rec := &naRecorder{}
	a := NewNDP(ifi, rec)
	n, err := a.Announce(netip.MustParseAddr("2001:db8::10"))
	if err != nil || n != 1 {
		t.Fatalf("Announce = %d, %v", n, err)
	}
	want := []string{fmt.Sprintf("to=ff02::1 na target=2001:db8::10 router=false solicited=false override=true lla(dir=%d)=02:00:5e:10:00:01", ndp.Target)}
	if diff := cmp.Diff(want, rec.sent); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}
	if _, err := a.Announce(netip.MustParseAddr("198.51.100.10")); err == nil || !strings.Contains(err.Error(), "not an IPv6") {
		t.Errorf("Announce(IPv4) error = %v", err)
	}
	var m Mux
	if _, err := m.Announce(netip.MustParseAddr("2001:db8::10")); err == nil {
		t.Error("Mux without an IPv6 announcer announced an IPv6 VIP")
	}
	m.V6 = a
	if n, err := m.Announce(netip.MustParseAddr("2001:db8::10")); err != nil || n != 1 {
		t.Errorf("Mux.Announce(IPv6) = %d, %v", n, err)
	}
}
