package probe

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// scripted answers every read with the bytes it was given, once, from
// the given address, then times out; writes are swallowed.
type scripted struct {
	lan
	from net.Addr
}

func (s *scripted) WriteTo(b []byte, _ net.Addr) (int, error) { return len(b), nil }
func (s *scripted) ReadFrom(b []byte) (int, net.Addr, error) {
	q, err := s.next()
	if err != nil {
		return 0, nil, err
	}
	return copy(b, q.data), s.from, nil
}

// FuzzAsk feeds arbitrary packets to the ICMP and ARP probers as the
// answer to their requests: they must not fail or panic, and an answer
// counts only when it is a well-formed reply from the target (for ICMP,
// to this prober's identifier and sequence number). A malformed frame
// is no error: it says nothing about the targets.
func FuzzAsk(f *testing.F) {
	reply, _ := (&icmp.Message{Type: ipv4.ICMPTypeEchoReply, Body: &icmp.Echo{ID: 7, Seq: 1}}).Marshal(nil)
	f.Add(reply)
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{})
	target := netip.MustParseAddr("198.51.100.1")
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		f.Skipf("no loopback interface: %v", err)
	}
	ifi := *lo
	ifi.HardwareAddr = ownMAC
	f.Fuzz(func(t *testing.T, b []byte) {
		conn := &scripted{from: &net.IPAddr{IP: target.AsSlice()}}
		conn.queue = []queued{{due: time.Now().Add(-time.Second), data: b}}
		got, err := NewICMP(conn, 7, false).Ask([]netip.Addr{target}, 5*time.Millisecond)
		if err != nil {
			t.Fatalf("ICMP Ask: %v", err)
		}
		if _, ok := got[target]; ok {
			m, perr := icmp.ParseMessage(1, b)
			if perr != nil || m.Type != ipv4.ICMPTypeEchoReply {
				t.Fatalf("ICMP counted %x as an answer", b)
			}
			if e, _ := m.Body.(*icmp.Echo); e == nil || e.ID != 7 || e.Seq != 1 {
				t.Fatalf("ICMP counted %x, not an echo reply for this prober, as an answer", b)
			}
		}
		aconn := &scripted{}
		aconn.queue = []queued{{due: time.Now().Add(5 * time.Millisecond), data: b}} // after the drain
		a, err := NewARP(&ifi, aconn)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Ask([]netip.Addr{target}, 20*time.Millisecond); err != nil {
			t.Fatalf("ARP Ask: %v", err) // a malformed frame is skipped, not an error
		}
	})
}
