package limits

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestGate: a limited route is charged to the client's network (and,
// once its token is checked, to the user) and answered 429 with
// Retry-After and a JSON error over the rule; a route that is not
// limited, and an exempt network's user requests, pass; the refusals
// are counted by kind and scope.
func TestGate(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := NewGate(reg, 1)
	var cfg Config
	cfg.Address[Post] = Rule{Rate: 0.001, Burst: 2}
	cfg.User[Read] = Rule{Rate: 0.001, Burst: 1}
	cfg.Exempt = []netip.Prefix{netip.MustParsePrefix("198.51.100.9/32")}
	g.Limiter().Configure(cfg)
	request := func(pattern, from string) *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		r.Pattern, r.RemoteAddr = pattern, from+":4000"
		return r
	}
	for _, tc := range []struct {
		name          string
		pattern, from string
		user          string // "": AdmitAddress; else AdmitUser for user
		want          bool
		wantErr       string
	}{
		{"first post", "POST /v1/users/{name}/posts", "198.51.100.7", "", true, ""},
		{"second post", "POST /v1/users/{name}/posts", "198.51.100.7", "", true, ""},
		{"third post over the burst", "POST /v1/users/{name}/posts", "198.51.100.7", "", false, "too many posts from address 198.51.100.7/32"},
		{"another network", "POST /v1/users/{name}/posts", "198.51.100.8", "", true, ""},
		{"a route not limited", "GET /v1/ring", "198.51.100.7", "", true, ""},
		{"first read of joe", "GET /v1/users/{name}/posts", "198.51.100.7", "joe", true, ""},
		{"second read of joe", "GET /v1/users/{name}/timeline", "198.51.100.8", "joe", false, "too many reads from user joe"},
		{"joe from an exempt network", "GET /v1/users/{name}/posts", "198.51.100.9", "joe", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			r := request(tc.pattern, tc.from)
			var got bool
			if tc.user == "" {
				got = g.AdmitAddress(w, r)
			} else {
				got = g.AdmitUser(w, r, tc.user)
			}
			if got != tc.want {
				t.Fatalf("admitted %v, want %v (answer %d %s)", got, tc.want, w.Code, w.Body)
			}
			if tc.want {
				return
			}
			if w.Code != http.StatusTooManyRequests {
				t.Errorf("status %d, want 429", w.Code)
			}
			if s, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || s < 1 {
				t.Errorf("Retry-After %q, want whole seconds", w.Header().Get("Retry-After"))
			}
			var e struct{ Error string }
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || !strings.Contains(e.Error, tc.wantErr) {
				t.Errorf("answer %s, want a JSON error saying %q", w.Body, tc.wantErr)
			}
		})
	}
	for _, tc := range []struct {
		kind, by string
		want     float64
	}{{"post", "address", 1}, {"read", "user", 1}, {"signup", "address", 0}} {
		if got := testutil.ToFloat64(g.limited.WithLabelValues(tc.kind, tc.by)); got != tc.want {
			t.Errorf("appnode_rate_limited_total{kind=%s,by=%s} = %v, want %v", tc.kind, tc.by, got, tc.want)
		}
	}
}

// TestRateLimitMetricsAtZero: every kind's series exists before the
// first refusal.
func TestRateLimitMetricsAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	NewGate(reg, 1)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() != "appnode_rate_limited_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got[m.GetLabel()[0].GetValue()+"/"+m.GetLabel()[1].GetValue()] = true // by, kind
		}
	}
	for _, want := range []string{"address/signup", "address/post", "address/follow", "address/read", "user/post", "user/follow", "user/read"} {
		if !got[want] {
			t.Errorf("no appnode_rate_limited_total series for %s at start (have %v)", want, got)
		}
	}
}
