package member

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/ringfront/ringfront/vipwatch/probe"
)

// staticAsker answers for the addresses in answers, and records what it
// was asked.
type staticAsker struct {
	answers probe.Answers
	err     error
	asked   *[]netip.Addr
}

func (s staticAsker) Ask(targets []netip.Addr, _ time.Duration) (probe.Answers, error) {
	*s.asked = append(*s.asked, targets...)
	out := probe.Answers{}
	for _, t := range targets {
		if hw, ok := s.answers[t]; ok {
			out[t] = hw
		}
	}
	return out, s.err
}

func TestFamilyAsker(t *testing.T) {
	gw4, gw6 := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("fe80::1")
	other6 := netip.MustParseAddr("2001:db8::1")
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	var asked4, asked6 []netip.Addr
	fa := familyAsker{
		v4: staticAsker{asked: &asked4},                                             // the IPv4 gateway is silent
		v6: staticAsker{answers: probe.Answers{gw6: mac}, asked: &asked6, err: nil}, // the router answers NDP
	}
	ans, err := fa.Ask([]netip.Addr{gw4, gw6, other6}, time.Second)
	if err != nil || len(ans) != 1 || ans[gw6].String() != mac.String() {
		t.Errorf("answers = %v, %v; want only %s", ans, err, gw6)
	}
	if !slices.Equal(asked4, []netip.Addr{gw4}) || !slices.Equal(asked6, []netip.Addr{gw6, other6}) {
		t.Errorf("asked ARP %v and NDP %v: each family must go to its own prober", asked4, asked6)
	}
	// A prober's error is reported with whatever the other heard.
	asked4, asked6 = nil, nil
	fa.v4 = staticAsker{answers: probe.Answers{gw4: mac}, asked: &asked4}
	fa.v6 = staticAsker{asked: &asked6, err: errors.New("socket closed")}
	ans, err = fa.Ask([]netip.Addr{gw4, gw6}, time.Second)
	if len(ans) != 1 || err == nil {
		t.Errorf("with the NDP prober failing: %v, %v", ans, err)
	}
	// A family without a prober is an error, not a silent witness.
	if _, err := (familyAsker{v4: fa.v4}).Ask([]netip.Addr{gw6}, time.Second); err == nil {
		t.Error("an IPv6 target without an NDP prober gave no error")
	}
}
