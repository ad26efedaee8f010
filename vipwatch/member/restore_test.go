package member

import (
	"context"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"
)

// TestRestoreRemoved deletes fe1's VIP behind its back: fe1 puts it
// back at once, announces it with a full burst and counts it. The
// report of a VIP it does not hold changes nothing.
func TestRestoreRemoved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx, n := newEffects(), newMemNet()
		removed := make(chan netip.Prefix, 4)
		a := startNodeWith(t, n, fx, testConfig("fe1"), func(m *Member) {
			m.removals = func(context.Context) (<-chan netip.Prefix, error) { return removed, nil }
		})
		b := startNode(t, n, fx, testConfig("fe2"))
		time.Sleep(time.Second)
		fx.take("")

		a.addrs.mu.Lock()
		delete(a.addrs.set, vip1) // `ip addr del` by someone else
		a.addrs.mu.Unlock()
		removed <- vip1
		removed <- vip2 // fe2's: fe1 does not hold it
		time.Sleep(time.Second)
		check(t, fx, "",
			"1.000s fe1: ip addr replace 198.51.100.10/24 dev eth0 label eth0:vw",
			"1.000s fe1: garp 198.51.100.10",
			"1.100s fe1: garp 198.51.100.10",
		)
		if !a.addrs.has(vip1) {
			t.Error("fe1's VIP is not back on its interface")
		}
		if got := a.m.Status().Counters.AddressesRestored; got != 1 {
			t.Errorf("addresses restored = %d, want 1", got)
		}
		a.stop(t)
		b.stop(t)
	})
}
