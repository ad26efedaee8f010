package limits

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringfront/ringfront/appnode/transport"
)

// Gate applies a member's Limiter to the API's requests. A client's
// request is charged to its network where it enters the cluster: the
// member it reached, before that member reads, forwards or stores
// anything (AdmitAddress, from the server's routing); a forwarded
// request is not charged again. Each member enforces its share of the
// cluster's address rules, so a client that spreads its requests over
// the members is held to the cluster's rate. A signed-in user's request
// is charged to the user where its token is checked: the member that
// answers for the user (AdmitUser, from package account's Authorize),
// which every request of the user reaches. Both answer 429 with
// Retry-After and a JSON error. Requests from an exempt network (the
// client address a forwarding member names, api.HeaderClient) are not
// limited. A Gate is safe for concurrent use.
type Gate struct {
	l       *Limiter
	limited *prometheus.CounterVec // appnode_rate_limited_total
}

// requestKinds maps the client routes that are limited to their kind.
var requestKinds = map[string]Kind{
	"POST /v1/users":                            Signup,
	"POST /v1/users/{name}/posts":               Post,
	"POST /v1/users/{name}/tokens":              Signup, // a new credential, like a sign-up
	"PUT /v1/users/{name}/following/{other}":    Follow,
	"DELETE /v1/users/{name}/following/{other}": Follow,
	"GET /v1/users/{name}":                      Read,
	"GET /v1/users/{name}/posts":                Read,
	"GET /v1/users/{name}/following":            Read,
	"GET /v1/users/{name}/followers":            Read,
	"GET /v1/users/{name}/timeline":             Read,
	"GET /v1/users/{name}/timeline/stream":      Read,
}

// NewGate makes a limiter for a cluster of members and its metrics,
// registered with reg unless it is nil: requests refused
// (appnode_rate_limited_total, every kind and scope at zero from the
// start) and the tables' sizes (appnode_rate_limit_entries).
func NewGate(reg prometheus.Registerer, members int) *Gate {
	g := &Gate{l: New(), limited: newLimitedMetric()}
	g.l.SetMembers(members)
	if reg != nil {
		reg.MustRegister(g.limited, limitEntries{g.l})
	}
	return g
}

// Limiter is the gate's rate limiter.
func (g *Gate) Limiter() *Limiter { return g.l }

// AdmitAddress charges a client's request to its network and answers
// it (429) when the network is over its rule; a request from another
// member passes.
func (g *Gate) AdmitAddress(w http.ResponseWriter, r *http.Request) bool {
	k, ok := requestKinds[r.Pattern]
	if !ok || transport.FromMember(r) {
		return true
	}
	if d := g.l.AllowAddress(k, transport.ClientAddr(r), time.Now()); d != nil {
		g.refuse(w, d)
		return false
	}
	return true
}

// AdmitUser charges a request of user name, whose token was checked,
// and answers it (429) when the user is over its rule.
func (g *Gate) AdmitUser(w http.ResponseWriter, r *http.Request, name string) bool {
	k, ok := requestKinds[r.Pattern]
	if !ok || g.l.Exempt(transport.ClientAddr(r)) {
		return true
	}
	if d := g.l.AllowUser(k, name, time.Now()); d != nil {
		g.refuse(w, d)
		return false
	}
	return true
}

// refuse answers a limited request.
func (g *Gate) refuse(w http.ResponseWriter, d *Denied) {
	g.limited.WithLabelValues(d.Kind.String(), d.By).Inc()
	w.Header().Set("Retry-After", strconv.Itoa(d.RetryAfterSeconds()))
	transport.WriteError(w, http.StatusTooManyRequests, d)
}

func newLimitedMetric() *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "appnode_rate_limited_total",
		Help: "Client requests answered 429 by this member's rate limits, by kind (signup, post, follow, read) and by what was over its rule (address: the client's network, user: the signed-in user).",
	}, []string{"kind", "by"})
	for _, k := range Kinds {
		v.WithLabelValues(k.String(), "address")
		if k != Signup {
			v.WithLabelValues(k.String(), "user")
		}
	}
	return v
}

// limitEntries is appnode_rate_limit_entries, the limiter tables' sizes.
type limitEntries struct{ l *Limiter }

var limitEntriesDesc = prometheus.NewDesc("appnode_rate_limit_entries",
	"Buckets in the rate limiter's tables (address, user); each holds at most limits.table_size.", []string{"table"}, nil)

func (c limitEntries) Describe(ch chan<- *prometheus.Desc) { ch <- limitEntriesDesc }

func (c limitEntries) Collect(ch chan<- prometheus.Metric) {
	a, u := c.l.Entries()
	ch <- prometheus.MustNewConstMetric(limitEntriesDesc, prometheus.GaugeValue, float64(a), "address")
	ch <- prometheus.MustNewConstMetric(limitEntriesDesc, prometheus.GaugeValue, float64(u), "user")
}
