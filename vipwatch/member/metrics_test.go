package member

import (
	"bytes"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"
)

// TestVIPHeldMetrics: each daemon says, per VIP of the pair, whether it
// holds it (the sum over the pair is the holder count), and when its
// partner's last heartbeat came as a Unix time.
func TestVIPHeldMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, _, a, b := startPair(t)
		regA, regB := prometheus.NewPedanticRegistry(), prometheus.NewPedanticRegistry()
		if err := a.m.Register(regA); err != nil {
			t.Fatal(err)
		}
		if err := b.m.Register(regB); err != nil {
			t.Fatal(err)
		}
		held := func(reg *prometheus.Registry, want string) {
			t.Helper()
			if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP vipwatch_vip_held 1 while this daemon holds the VIP, 0 while it does not (sum over the pair: how many machines hold it).
# TYPE vipwatch_vip_held gauge
`+want), "vipwatch_vip_held"); err != nil {
				t.Error(err)
			}
		}
		held(regA, "vipwatch_vip_held{vip=\"198.51.100.10\"} 1\nvipwatch_vip_held{vip=\"198.51.100.20\"} 0\n")
		held(regB, "vipwatch_vip_held{vip=\"198.51.100.10\"} 0\nvipwatch_vip_held{vip=\"198.51.100.20\"} 1\n")

		// The partner's heartbeats come every 100ms: the last is at most
		// that old, as a timestamp.
		ts := gauge(t, regA, "vipwatch_partner_last_heartbeat_timestamp_seconds")
		if now := float64(time.Now().UnixNano()) / 1e9; ts > now || ts < now-0.1 {
			t.Errorf("partner's last heartbeat at %.3f, now %.3f: want within the last 100ms", ts, now)
		}
		if err := testutil.GatherAndCompare(regA, strings.NewReader(`
# HELP vipwatch_witness_state 1 for the witness's state (none: no witness configured; unknown: no verdict yet; reachable; unreachable: fault), 0 for the others.
# TYPE vipwatch_witness_state gauge
vipwatch_witness_state{state="none"} 1
vipwatch_witness_state{state="reachable"} 0
vipwatch_witness_state{state="unknown"} 0
vipwatch_witness_state{state="unreachable"} 0
`), "vipwatch_witness_state"); err != nil {
			t.Error(err)
		}

		// fe2 stops: fe1 holds both, and the timestamp stays at fe2's
		// last heartbeat.
		b.stop(t)
		time.Sleep(time.Second)
		held(regA, "vipwatch_vip_held{vip=\"198.51.100.10\"} 1\nvipwatch_vip_held{vip=\"198.51.100.20\"} 1\n")
		if later := gauge(t, regA, "vipwatch_partner_last_heartbeat_timestamp_seconds"); later < ts || later > float64(time.Now().Add(-900*time.Millisecond).UnixNano())/1e9 {
			t.Errorf("partner's last heartbeat at %.3f after it stopped, first seen at %.3f, now %.3f", later, ts, float64(time.Now().UnixNano())/1e9)
		}
		a.stop(t)
	})
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestPromlint: vipwatch's metrics follow Prometheus' naming and
// documentation conventions (client_golang's promlint), with and
// without a witness.
func TestPromlint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx, n := newEffects(), newMemNet()
		a := startNode(t, n, fx, witnessConfig("fe1"))
		b := startNode(t, n, fx, testConfig("fe2"))
		time.Sleep(time.Second)
		for _, node := range []*testNode{a, b} {
			reg := prometheus.NewPedanticRegistry()
			if err := node.m.Register(reg); err != nil {
				t.Fatal(err)
			}
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			for _, mf := range mfs {
				if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
					t.Fatal(err)
				}
			}
			problems, err := promlint.New(&buf).Lint()
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range problems {
				t.Errorf("%s: promlint: %s: %s", node.m.cfg.Node, p.Metric, p.Text)
			}
		}
		a.stop(t)
		b.stop(t)
	})
}
