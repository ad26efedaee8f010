package server

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ringfront/ringfront/appnode/api"
)

// TestRoutesToFirstLiveMember: with the owner reported dead, requests go
// to the next member of the preference list, from any member.
func TestRoutesToFirstLiveMember(t *testing.T) {
	var dead string
	ms := newCluster(t, clusterOpts{n: 3, alive: func(m string) bool { return m != dead }})
	pref := ms[0].srv.Ring().Preference(nil, "joe")
	dead = pref[0]
	for _, m := range ms {
		if m.addr == dead {
			continue
		}
		a := do(t, nil, "POST", m.url("/v1/users"), "", api.CreateUserRequest{Name: "joe"})
		if got := a.header.Get(HeaderOwner); got != pref[1] {
			t.Errorf("via %s: %s = %s, want the first live member %s", m.addr, HeaderOwner, got, pref[1])
		}
	}
	for _, m := range ms {
		_, err := m.store.User("joe")
		if stored := err == nil; stored != (m.addr == pref[1]) {
			t.Errorf("joe stored on %s: %v; want only on %s", m.addr, stored, pref[1])
		}
	}
}

func TestMetrics(t *testing.T) {
	regs := []*prometheus.Registry{prometheus.NewRegistry(), prometheus.NewRegistry(), prometheus.NewRegistry()}
	ms := newCluster(t, clusterOpts{n: 3, registry: func(i int) prometheus.Registerer { return regs[i] }})
	via := notOwner(ms, "joe")
	do(t, nil, "POST", via.url("/v1/users"), "", api.CreateUserRequest{Name: "joe"})
	do(t, nil, "POST", via.url("/v1/users"), "", api.CreateUserRequest{Name: "Bad"})
	var reg *prometheus.Registry
	for i, m := range ms {
		if m == via {
			reg = regs[i]
		}
	}
	want := `
# HELP appnode_routed_total Requests for users owned by another member, by how they were routed (forward or redirect).
# TYPE appnode_routed_total counter
appnode_routed_total{mode="forward"} 1
# HELP appnode_requests_total API requests by route pattern and status code.
# TYPE appnode_requests_total counter
appnode_requests_total{code="201",route="POST /v1/users"} 1
appnode_requests_total{code="400",route="POST /v1/users"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "appnode_routed_total", "appnode_requests_total"); err != nil {
		t.Error(err)
	}
	n, err := testutil.GatherAndCount(reg, "appnode_request_duration_seconds", "appnode_store_bytes", "appnode_store_failed", "appnode_forward_errors_total")
	if err != nil || n < 4 {
		t.Errorf("latency, store and forward-error series: %d, %v", n, err)
	}
}
