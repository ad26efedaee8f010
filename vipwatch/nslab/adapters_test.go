package nslab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"

	"github.com/ringfront/ringfront/vipwatch/announce"
	"github.com/ringfront/ringfront/vipwatch/iface"
	"github.com/ringfront/ringfront/vipwatch/probe"
)

// TestAdapters exercises the real OS adapters in the lab: netlink
// addresses with vipwatch's label, the link watch, and gratuitous ARP
// as another host on the LAN receives it.
func TestAdapters(t *testing.T) {
	if err := RequireRoot(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	lab, err := New(fmt.Sprintf("%da", os.Getpid()%100000), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lab.Close() })
	ctx := t.Context()

	t.Run("addresses", func(t *testing.T) {
		err := lab.Do(lab.FE1, func() error {
			ifc, err := iface.Open(Dev, t.TempDir())
			if err != nil {
				return err
			}
			for range 2 { // idempotent
				if err := ifc.Add(VIP1); err != nil {
					return err
				}
			}
			// Someone else's address on the same interface.
			if _, err := lab.Run(ctx, lab.FE1, "ip", "addr", "add", "198.51.100.30/24", "dev", Dev); err != nil {
				return err
			}
			out, err := lab.Run(ctx, lab.FE1, "ip", "-o", "addr", "show", "dev", Dev, "label", Dev+":vw")
			if err != nil {
				return err
			}
			if !containsAll(out, VIP1.String()) || containsAll(out, "198.51.100.30") {
				t.Errorf("addresses labelled %s:vw:\n%s", Dev, out)
			}
			got, err := ifc.Labelled()
			if err != nil {
				return err
			}
			if !slices.Equal(got, []netip.Prefix{VIP1}) {
				t.Errorf("Labelled = %v, want [%v]", got, VIP1)
			}
			for range 2 { // absent is not an error
				if err := ifc.Delete(VIP1); err != nil {
					return err
				}
			}
			if ok, _ := lab.Holds(lab.FE1, VIP1); ok {
				t.Error("VIP1 still on the interface after Delete")
			}
			if ok, _ := lab.Holds(lab.FE1, netip.MustParsePrefix("198.51.100.30/24")); !ok {
				t.Error("Delete removed an address that is not vipwatch's")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("link watch", func(t *testing.T) {
		err := lab.Do(lab.FE1, func() error {
			ifc, err := iface.Open(Dev, t.TempDir())
			if err != nil {
				return err
			}
			wctx, cancel := context.WithCancel(ctx)
			defer cancel()
			links, err := ifc.WatchLink(wctx)
			if err != nil {
				return err
			}
			next := func() (bool, error) {
				select {
				case up := <-links:
					return up, nil
				case <-time.After(3 * time.Second):
					return false, fmt.Errorf("no link event in 3s")
				}
			}
			// The current state comes first, then every change.
			if up, err := next(); err != nil || !up {
				t.Errorf("initial link state = %v, %v; want up", up, err)
			}
			for _, cable := range []bool{false, true} {
				if err := lab.SetCable(lab.FE1, cable); err != nil {
					return err
				}
				up, err := next()
				if err != nil {
					return err
				}
				if up != cable {
					t.Errorf("cable in = %v: link up = %v", cable, up)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("gratuitous ARP", func(t *testing.T) {
		// A raw ARP listener on the client, another host on the LAN.
		var conn *packet.Conn
		err := lab.Do(lab.Client, func() error {
			ifi, err := net.InterfaceByName(Dev)
			if err != nil {
				return err
			}
			conn, err = packet.Listen(ifi, packet.Raw, 0x0806, nil)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var mac string
		err = lab.Do(lab.FE1, func() error {
			a, err := announce.Dial(Dev)
			if err != nil {
				return err
			}
			defer a.Close()
			ifi, _ := net.InterfaceByName(Dev)
			mac = ifi.HardwareAddr.String()
			_, err = a.Announce(VIP1.Addr())
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 1500)
		for len(got) < 2 {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				t.Fatalf("reading ARP on the client: %v (got %v)", err, got)
			}
			var f ethernet.Frame
			var p arp.Packet
			if f.UnmarshalBinary(buf[:n]) != nil || p.UnmarshalBinary(f.Payload) != nil || p.SenderIP != VIP1.Addr() {
				continue // other ARP traffic on the LAN
			}
			got = append(got, fmt.Sprintf("%v->%v %v %v/%v -> %v/%v", f.Source, f.Destination, p.Operation,
				p.SenderHardwareAddr, p.SenderIP, p.TargetHardwareAddr, p.TargetIP))
		}
		want := []string{
			fmt.Sprintf("%s->ff:ff:ff:ff:ff:ff OperationRequest %s/198.51.100.10 -> 00:00:00:00:00:00/198.51.100.10", mac, mac),
			fmt.Sprintf("%s->ff:ff:ff:ff:ff:ff OperationReply %s/198.51.100.10 -> %s/198.51.100.10", mac, mac, mac),
		}
		if !slices.Equal(got, want) {
			t.Errorf("frames on the LAN:\n got %q\nwant %q", got, want)
		}
	})
}

// TestProbes looks up fe1's default gateway (the witness when
// witness.targets is empty) and runs the real probers (ARP, NDP, ICMP)
// from fe1 across the lab LAN: the witness and fe2 answer, an address nobody holds does not,
// and nothing answers once fe1's port is off the bridge.
func TestProbes(t *testing.T) {
	if err := RequireRoot(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	lab, err := New(fmt.Sprintf("%dp", os.Getpid()%100000), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lab.Close() })
	fe2MAC, err := lab.MAC(lab.FE2)
	if err != nil {
		t.Fatal(err)
	}
	var (
		arpP   *probe.ARP
		ndpP   *probe.NDP
		icmpP  *probe.ICMP
		unpriv bool
	)
	err = lab.Do(lab.FE1, func() error {
		var err error
		if arpP, err = probe.DialARP(Dev); err != nil {
			return err
		}
		if ndpP, err = probe.DialNDP(Dev); err != nil {
			return err
		}
		icmpP, unpriv, err = probe.DialICMP(Dev)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer arpP.Close()
	defer ndpP.Close()
	defer icmpP.Close()
	if unpriv {
		t.Error("DialICMP fell back to an unprivileged socket as root")
	}
	nobody4, nobody6 := netip.MustParseAddr("198.51.100.99"), netip.MustParseAddr("2001:db8::99")
	keys := func(a probe.Answers) []string {
		var out []string
		for ip, mac := range a {
			out = append(out, ip.String()+"="+mac.String())
		}
		slices.Sort(out)
		return out
	}
	check := func(what string, got probe.Answers, err error, want ...string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		slices.Sort(want)
		if g := keys(got); !slices.Equal(g, want) {
			t.Errorf("%s answered %v, want %v", what, g, want)
		}
	}
	got, err := arpP.Ask([]netip.Addr{WitnessIP.Addr(), FE2IP.Addr(), nobody4}, 200*time.Millisecond)
	bridgeMAC := got[WitnessIP.Addr()].String()
	check("ARP", got, err, "198.51.100.1="+bridgeMAC, "198.51.100.12="+fe2MAC)
	if bridgeMAC == "" {
		t.Error("the witness did not answer ARP")
	}
	got, err = ndpP.Ask([]netip.Addr{FE2IP6.Addr(), nobody6}, 200*time.Millisecond)
	check("NDP", got, err, "2001:db8::12="+fe2MAC)
	got, err = icmpP.Ask([]netip.Addr{WitnessIP.Addr(), nobody4}, 200*time.Millisecond)
	check("ICMP", got, err, "198.51.100.1=")

	if err := lab.Detach(lab.FE1, true); err != nil {
		t.Fatal(err)
	}
	got, err = arpP.Ask([]netip.Addr{WitnessIP.Addr(), FE2IP.Addr()}, 100*time.Millisecond)
	check("ARP, cut off", got, err)
	got, err = icmpP.Ask([]netip.Addr{WitnessIP.Addr()}, 100*time.Millisecond)
	check("ICMP, cut off", got, err)
	got, err = ndpP.Ask([]netip.Addr{FE2IP6.Addr()}, 100*time.Millisecond)
	check("NDP, cut off", got, err)
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
