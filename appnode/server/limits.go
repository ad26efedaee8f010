package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringfront/ringfront/appnode/limits"
	"github.com/ringfront/ringfront/appnode/transport"
	"github.com/ringfront/ringfront/internal/daemon"
)

// Rate limits (appnode/limits). A client's request is charged to its
// network where it enters the cluster: the member it reached, before
// that member reads, forwards or stores anything (admitAddress, from
// serveRouted); a forwarded request is not charged again. Each member
// enforces its share of the cluster's address rules, so a client that
// spreads its requests over the members is held to the cluster's rate.
// A signed-in user's request is charged to the user where its token is
// checked: the member that answers for the user (admitUser, from
// authorize), which every request of the user reaches. Both answer 429
// with Retry-After and a JSON error. Requests from an exempt network
// (the client address a forwarding member names, HeaderClient) are not
// limited.

// requestKinds maps the client routes that are limited to their kind.
var requestKinds = map[string]limits.Kind{
	"POST /v1/users":                            limits.Signup,
	"POST /v1/users/{name}/posts":               limits.Post,
	"POST /v1/users/{name}/tokens":              limits.Signup, // a new credential, like a sign-up
	"PUT /v1/users/{name}/following/{other}":    limits.Follow,
	"DELETE /v1/users/{name}/following/{other}": limits.Follow,
	"GET /v1/users/{name}":                      limits.Read,
	"GET /v1/users/{name}/posts":                limits.Read,
	"GET /v1/users/{name}/following":            limits.Read,
	"GET /v1/users/{name}/followers":            limits.Read,
	"GET /v1/users/{name}/timeline":             limits.Read,
	"GET /v1/users/{name}/timeline/stream":      limits.Read,
}

// admitAddress charges a client's request to its network and answers
// it (429) when the network is over its rule; a request from another
// member passes.
func (s *Server) admitAddress(w http.ResponseWriter, r *http.Request) bool {
	k, ok := requestKinds[r.Pattern]
	if !ok || transport.FromMember(r) {
		return true
	}
	if d := s.limits.AllowAddress(k, transport.ClientAddr(r), time.Now()); d != nil {
		s.refuse(w, d)
		return false
	}
	return true
}

// admitUser charges a request of user name, whose token was checked,
// and answers it (429) when the user is over its rule.
func (s *Server) admitUser(w http.ResponseWriter, r *http.Request, name string) bool {
	k, ok := requestKinds[r.Pattern]
	if !ok || s.limits.Exempt(transport.ClientAddr(r)) {
		return true
	}
	if d := s.limits.AllowUser(k, name, time.Now()); d != nil {
		s.refuse(w, d)
		return false
	}
	return true
}

// refuse answers a limited request.
func (s *Server) refuse(w http.ResponseWriter, d *limits.Denied) {
	s.limited.WithLabelValues(d.Kind.String(), d.By).Inc()
	w.Header().Set("Retry-After", strconv.Itoa(d.RetryAfterSeconds()))
	writeError(w, http.StatusTooManyRequests, d)
}

// Limits is the member's rate limiter.
func (s *Server) Limits() *limits.Limiter { return s.limits }

// registerLimits makes the limiter and its metrics: requests refused
// (appnode_rate_limited_total, every kind and scope at zero from the
// start) and the tables' sizes.
func (s *Server) registerLimits(reg prometheus.Registerer) {
	s.limits = limits.New()
	s.limits.SetMembers(len(s.c.Ring().Members()))
	s.limited = newLimitedMetric()
	if reg != nil {
		reg.MustRegister(s.limited, limitEntries{s.limits})
	}
}

func newLimitedMetric() *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "appnode_rate_limited_total",
		Help: "Client requests answered 429 by this member's rate limits, by kind (signup, post, follow, read) and by what was over its rule (address: the client's network, user: the signed-in user).",
	}, []string{"kind", "by"})
	for _, k := range limits.Kinds {
		v.WithLabelValues(k.String(), "address")
		if k != limits.Signup {
			v.WithLabelValues(k.String(), "user")
		}
	}
	return v
}

// limitEntries is appnode_rate_limit_entries, the limiter tables' sizes.
type limitEntries struct{ l *limits.Limiter }

var limitEntriesDesc = prometheus.NewDesc("appnode_rate_limit_entries",
	"Buckets in the rate limiter's tables (address, user); each holds at most limits.table_size.", []string{"table"}, nil)

func (c limitEntries) Describe(ch chan<- *prometheus.Desc) { ch <- limitEntriesDesc }

func (c limitEntries) Collect(ch chan<- prometheus.Metric) {
	a, u := c.l.Entries()
	ch <- prometheus.MustNewConstMetric(limitEntriesDesc, prometheus.GaugeValue, float64(a), "address")
	ch <- prometheus.MustNewConstMetric(limitEntriesDesc, prometheus.GaugeValue, float64(u), "user")
}

// DefaultBounds are the API listener's bounds (daemon.HTTPBounds) when
// Options.Bounds leaves one zero. Every API request is bounded by a
// few member timeouts (seconds), so 30s to write an answer is generous;
// a live stream moves its write deadline on at each write.
var DefaultBounds = daemon.HTTPBounds{
	MaxHeaderBytes:    16 << 10, // a token and a few headers; no cookies
	ReadHeaderTimeout: 5 * time.Second,
	ReadTimeout:       30 * time.Second,
	WriteTimeout:      30 * time.Second,
	IdleTimeout:       120 * time.Second,
}

// clientBodies refuses a client request whose announced body is over
// transport.MaxBody (413, before it is read); the members' internal
// routes bound their own bodies.
func clientBodies(h http.Handler) http.Handler {
	limited := daemon.LimitBody(h, transport.MaxBody)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > transport.MaxBody && !internalPath(r.URL.Path) {
			limited.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func internalPath(p string) bool { return len(p) >= 10 && p[:10] == "/internal/" }
