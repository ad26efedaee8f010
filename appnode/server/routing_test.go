package server

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/store"
	"github.com/ringfront/ringfront/appnode/transport"
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
		if got := a.header.Get(api.HeaderOwner); got != pref[1] {
			t.Errorf("via %s: %s = %s, want the first live member %s", m.addr, api.HeaderOwner, got, pref[1])
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
	// A member outside joe's preference list: it only forwards.
	var via *member
	for _, m := range ms {
		if !m.srv.Ring().InPreference("joe", m.addr) {
			via = m
		}
	}
	do(t, nil, "POST", via.url("/v1/users"), "", api.CreateUserRequest{Name: "joe"})
	do(t, nil, "POST", via.url("/v1/users"), "", api.CreateUserRequest{Name: "Bad"})
	var reg *prometheus.Registry
	for i, m := range ms {
		if m == via {
			reg = regs[i]
		}
	}
	want := `
# HELP appnode_routed_total Requests for users answered by another member, by how they were routed (forward, redirect, or fallback: to the previous holder of a user still being streamed here).
# TYPE appnode_routed_total counter
appnode_routed_total{mode="fallback"} 0
appnode_routed_total{mode="forward"} 1
appnode_routed_total{mode="redirect"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "appnode_routed_total"); err != nil {
		t.Error(err)
	}
	// The requests counted (the client routes' other series are there
	// at zero from the start).
	counted := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "appnode_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if v := m.GetCounter().GetValue(); v != 0 {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				counted[labels["route"]+" "+labels["code"]] = v
			}
		}
	}
	if diff := cmp.Diff(map[string]float64{"POST /v1/users 201": 1, "POST /v1/users 400": 1}, counted); diff != "" {
		t.Errorf("requests counted (-want +got):\n%s", diff)
	}
	n, err := testutil.GatherAndCount(reg, "appnode_request_duration_seconds", "appnode_store_bytes", "appnode_store_failed", "appnode_forward_errors_total")
	if err != nil || n < 4 {
		t.Errorf("latency, store and forward-error series: %d, %v", n, err)
	}
}

// TestWrongClusterSecret: a member with another secret is refused by the
// others; the user sees 502 and nothing half-done is stored. Writes
// need one copy only here, so users can be created at all.
func TestWrongClusterSecret(t *testing.T) {
	t.Run("links", func(t *testing.T) { testWrongClusterSecret(t, false) })
	t.Run("http", func(t *testing.T) { testWrongClusterSecret(t, true) })
}

func testWrongClusterSecret(t *testing.T, httpForward bool) {
	ms := newCluster(t, clusterOpts{n: 2, writeAcks: 1, httpForward: httpForward, secret: func(i int) []byte {
		if i == 1 {
			return []byte("another secret")
		}
		return testSecret
	}})
	// Users owned by different members.
	var a, b string
	for i := 0; a == "" || b == ""; i++ {
		u := fmt.Sprintf("u%d", i)
		if owner(ms, u) == ms[0] && a == "" {
			a = u
		} else if owner(ms, u) == ms[1] && b == "" {
			b = u
		}
	}
	ta := createUser(t, ms[0], a)
	createUser(t, ms[1], b)
	ans := do(t, nil, "PUT", ms[0].url("/v1/users/"+a+"/following/"+b), ta, nil)
	if ans.code != http.StatusBadGateway || !strings.Contains(ans.errorText(t), "cluster credentials") {
		t.Errorf("follow across mismatched secrets = %d %s, want 502", ans.code, ans.body)
	}
	if edges, _ := ms[0].store.Edges(store.Following, a); len(edges) != 0 {
		t.Errorf("refused follow left an edge: %v", edges)
	}
	// A forwarded request still works: hops are then not believed, but
	// the owner answers anyway.
	if ans := do(t, nil, "GET", ms[0].url("/v1/users/"+b+"/posts"), "", nil); ans.code != 200 {
		t.Errorf("forward across mismatched secrets = %d %s", ans.code, ans.body)
	}
	if httpForward {
		return
	}
	// The operator sees why forwards to that member go over HTTP.
	st := ms[0].srv.Status()
	if len(st.Links) != 1 || st.Links[0].Member != ms[1].addr || st.Links[0].HTTPUntil.IsZero() || !strings.Contains(st.Links[0].Reason, "cluster secret") {
		t.Errorf("status links = %+v, want %s over HTTP for the cluster secret", st.Links, ms[1].addr)
	}
}

// TestHeaderNamesCanonical: setHeader and headerValue index a Header
// directly, which finds a header only by its canonical name.
func TestHeaderNamesCanonical(t *testing.T) {
	for _, k := range []string{api.HeaderCluster, api.HeaderHops, api.HeaderUnreachable, api.HeaderFallback, api.HeaderBudget, api.HeaderOwner,
		api.HeaderRingVersion, api.HeaderEdgeClock, api.HeaderClock, transport.HeaderLinkChallenge, "Location"} {
		if c := http.CanonicalHeaderKey(k); c != k {
			t.Errorf("header %q is not canonical (%q)", k, c)
		}
	}
}

// TestRequestTarget: a redirect keeps the path and query as the client
// sent them; a request without an origin-form target is rebuilt from
// its URL.
func TestRequestTarget(t *testing.T) {
	for _, c := range []struct{ raw, url, want string }{
		{"/v1/users/joe/posts?limit=5&before=a%2Fb", "", "/v1/users/joe/posts?limit=5&before=a%2Fb"},
		{"http://127.0.0.1:1/v1/users/joe?x=1", "http://127.0.0.1:1/v1/users/joe?x=1", "/v1/users/joe?x=1"},
		{"", "http://127.0.0.1:1/v1/users/joe/timeline?limit=2", "/v1/users/joe/timeline?limit=2"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if c.url != "" {
			u, err := url.Parse(c.url)
			if err != nil {
				t.Fatal(err)
			}
			r.URL = u
		}
		r.RequestURI = c.raw
		if got := requestTarget(r); got != c.want {
			t.Errorf("requestTarget(RequestURI %q, URL %q) = %q, want %q", c.raw, c.url, got, c.want)
		}
	}
}
