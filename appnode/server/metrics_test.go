package server

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/live"
)

// TestMetricsFromTheStart: a fresh member exports every labelled series
// whose labels it knows, at zero, so rate() and increase() alerts have a
// series to work on; the metrics pass promlint.
func TestMetricsFromTheStart(t *testing.T) {
	regs := []*prometheus.Registry{prometheus.NewPedanticRegistry(), prometheus.NewPedanticRegistry()}
	ms := newCluster(t, clusterOpts{n: 2, registry: func(i int) prometheus.Registerer { return regs[i] }})
	other := ms[1].addr
	want := fmt.Sprintf(`
# HELP appnode_hints_waiting Writes kept here as hints for a member, waiting for it to answer (counted up to 100000 in all).
# TYPE appnode_hints_waiting gauge
appnode_hints_waiting{member=%q} 0
# HELP appnode_live_streams_dropped_total Live timeline streams this member ended, by reason: write_failed (the client took no events for the write timeout, 30s by default, or its connection broke), replay_failed (the inbox could not be read), shutdown, token_revoked (a rotation revoked the stream's token).
# TYPE appnode_live_streams_dropped_total counter
appnode_live_streams_dropped_total{reason="replay_failed"} 0
appnode_live_streams_dropped_total{reason="shutdown"} 0
appnode_live_streams_dropped_total{reason="token_revoked"} 0
appnode_live_streams_dropped_total{reason="write_failed"} 0
`, other)
	if err := testutil.GatherAndCompare(regs[0], strings.NewReader(want), "appnode_hints_waiting", "appnode_live_streams_dropped_total"); err != nil {
		t.Error(err)
	}
	for name, n := range map[string]int{"appnode_read_repairs_total": 4, "appnode_anti_entropy_rounds_total": 3, "appnode_routed_total": 3, "appnode_rate_limited_total": 7, "appnode_rate_limit_entries": 2} {
		if got, err := testutil.GatherAndCount(regs[0], name); err != nil || got != n {
			t.Errorf("%s: %d series (%v), want %d at the start", name, got, err, n)
		}
	}
	problems, err := promlint.NewWithMetricFamilies(gather(t, regs[0])).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

func gather(t *testing.T, reg *prometheus.Registry) []*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// TestHintsWaitingMetric: hints for a dead replica show in
// appnode_hints_waiting for that member until they are delivered.
func TestHintsWaitingMetric(t *testing.T) {
	var dead atomic.Value
	dead.Store("")
	regs := []*prometheus.Registry{prometheus.NewRegistry(), prometheus.NewRegistry(), prometheus.NewRegistry()}
	ms := newCluster(t, clusterOpts{n: 3, writeAcks: 1, alive: func(m string) bool { return m != dead.Load().(string) },
		registry: func(i int) prometheus.Registerer { return regs[i] }})
	pref := ms[0].srv.Ring().Preference(nil, "joe")
	coord, replica := byAddr(ms, pref[0]), byAddr(ms, pref[1])
	var reg *prometheus.Registry
	for i, m := range ms {
		if m == coord {
			reg = regs[i]
		}
	}
	waiting := func() float64 {
		t.Helper()
		for _, mf := range gather(t, reg) {
			if mf.GetName() != "appnode_hints_waiting" {
				continue
			}
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == replica.addr {
					return m.GetGauge().GetValue()
				}
			}
		}
		t.Fatalf("no appnode_hints_waiting{member=%q}", replica.addr)
		return 0
	}
	dead.Store(replica.addr)
	token := createUser(t, coord, "joe")
	for i := range 3 {
		if a := do(t, nil, "POST", coord.url("/v1/users/joe/posts"), token, api.PostRequest{Text: fmt.Sprint("while down ", i)}); a.code != 201 {
			t.Fatalf("post while the replica is dead = %d %s", a.code, a.body)
		}
	}
	if got := waiting(); got != 4 { // the user and three posts
		t.Errorf("hints waiting for the dead replica = %v, want 4", got)
	}
	dead.Store("")
	coord.srv.Replica().Handoff(context.Background())
	if got := waiting(); got != 0 {
		t.Errorf("hints waiting after the handoff = %v, want 0", got)
	}
}

// TestStreamDroppedMetric: a client that closes its stream is not
// counted; streams the member ends as it stops are, as shutdown.
func TestStreamDroppedMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	ms := newCluster(t, clusterOpts{n: 1, registry: func(int) prometheus.Registerer { return reg }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ms[0].srv.Fanout().Run(ctx) }()
	defer func() { cancel(); <-done }()
	token := createUser(t, ms[0], "reader")
	dropped := func(reason string) float64 {
		t.Helper()
		return testutil.ToFloat64(ms[0].srv.metrics.dropped.WithLabelValues(reason))
	}

	left := openStream(t, ms[0], "reader", token, "")
	left.comment(t, "timeline of reader", 2*time.Second)
	left.close()
	if err := waitUntil(5*time.Second, func() bool { return ms[0].srv.Fanout().Hub().Streams() == 0 }); err != nil {
		t.Fatalf("the stream the client left has not ended: %v", err)
	}

	kept := openStream(t, ms[0], "reader", token, "")
	kept.comment(t, "timeline of reader", 2*time.Second)
	cancel() // the member stops: fan-out ends the live streams
	<-done
	done <- nil
	if err := waitUntil(5*time.Second, func() bool { return ms[0].srv.Fanout().Hub().Streams() == 0 }); err != nil {
		t.Fatalf("the member has not ended the stream: %v", err)
	}
	for reason, want := range map[string]float64{live.DropShutdown: 1, live.DropWriteFailed: 0, live.DropReplayFailed: 0} {
		if got := dropped(reason); got != want {
			t.Errorf("streams dropped for %s = %v, want %v", reason, got, want)
		}
	}
}

// TestAPIRoutesRegistered: every route whose metrics are exported from
// the start is one the server serves.
func TestAPIRoutesRegistered(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 1})
	for _, route := range apiRoutes {
		method, path, _ := strings.Cut(route, " ")
		path = strings.NewReplacer("{name}", "joe", "{other}", "ann").Replace(path)
		r := httptest.NewRequest(method, path, nil)
		if _, pattern := ms[0].srv.mux.Handler(r); pattern != route {
			t.Errorf("%s %s is served by %q, want %q", method, path, pattern, route)
		}
	}
}
