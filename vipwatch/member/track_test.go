package member

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ringfront/ringfront/internal/health"
)

// switchProber answers every probe with the health it is set to, and
// records the target it was asked about.
type switchProber struct {
	ok     atomic.Bool
	target atomic.Value // string
}

func (p *switchProber) Probe(_ context.Context, t health.Target) health.Result {
	p.target.Store(t.Addr.String() + ":" + t.Check.Type)
	r := health.Result{OK: p.ok.Load(), At: time.Now()}
	if !r.OK {
		r.Err = "connection refused"
	}
	return r
}

// TestTrack fails fe1's tracked service: after fall failed probes fe1
// gives its home VIP to fe2 (make before break), and after rise good
// ones it takes it back (preempt is on).
func TestTrack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx, n := newEffects(), newMemNet()
		cfg := testConfig("fe1")
		cfg.Track = &health.Check{Type: "tcp", Port: 8081, Interval: 100 * time.Millisecond, Rise: 2, Fall: 3}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		p := &switchProber{}
		p.ok.Store(true)
		a := startNodeWith(t, n, fx, cfg, func(m *Member) { m.trackProber = p })
		b := startNode(t, n, fx, testConfig("fe2"))
		time.Sleep(time.Second)
		fx.take("")
		if got := p.target.Load(); got != "127.0.0.1:tcp" {
			t.Errorf("track probed %v, want 127.0.0.1:tcp", got)
		}

		// The service fails at 1.050s (between probes, which run every
		// 100ms from 0): probes at 1.1, 1.2, 1.3 fail, the third is the
		// fall.
		time.Sleep(50 * time.Millisecond)
		p.ok.Store(false)
		time.Sleep(time.Second)
		check(t, fx, "garp",
			"1.300s fe2: ip addr replace 198.51.100.10/24 dev eth0 label eth0:vw",
			"1.300s fe1: ip addr del 198.51.100.10/24 dev eth0",
		)
		if s := a.m.Status(); s.ServiceHealthy || s.VIPs[0].Holder != "fe2" {
			t.Errorf("fe1 status with its service down: healthy %v, VIP1 holder %q", s.ServiceHealthy, s.VIPs[0].Holder)
		}
		if s := b.m.Status(); !s.Partner.ServiceFailing {
			t.Errorf("fe2 does not see fe1's service failing: %+v", s.Partner)
		}
		reg := prometheus.NewRegistry()
		if err := a.m.Register(reg); err != nil {
			t.Fatal(err)
		}
		err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP vipwatch_service_healthy 1 while the tracked service is up (always 1 without track).
# TYPE vipwatch_service_healthy gauge
vipwatch_service_healthy 0
`), "vipwatch_service_healthy")
		if err != nil {
			t.Error(err)
		}

		// It recovers at 2.050s: probes at 2.1 and 2.2 pass, the second
		// is the rise.
		p.ok.Store(true)
		time.Sleep(time.Second)
		check(t, fx, "garp",
			"2.200s fe1: ip addr replace 198.51.100.10/24 dev eth0 label eth0:vw",
			"2.200s fe2: ip addr del 198.51.100.10/24 dev eth0",
		)
		if got := a.m.Status().Counters.TrackFailures; got != 1 {
			t.Errorf("track failures = %d, want 1", got)
		}
		a.stop(t)
		b.stop(t)
	})
}
