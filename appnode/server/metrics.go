package server

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringfront/ringfront/appnode/live"
	"github.com/ringfront/ringfront/appnode/store"
)

// metrics are the API's own; each subsystem registers its own too.
type metrics struct {
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	routed    *prometheus.CounterVec
	failovers prometheus.Counter
	dropped   *prometheus.CounterVec // live streams this member ended, by reason

	// The series every request touches, looked up once: a lookup by
	// label values hashes them and takes the vector's lock, a good part
	// of a 307's own CPU.
	series                          sync.Map           // seriesKey → series
	forwarded, redirected, fellBack prometheus.Counter // routed's
}

// streamDropped counts a stream this member ended for reason (none:
// it did not); a client that went away ended its own.
func (m *metrics) streamDropped(r *http.Request, reason string) {
	if reason == "" || reason != live.DropShutdown && r.Context().Err() != nil {
		return
	}
	m.dropped.WithLabelValues(reason).Inc()
}

func newMetrics(reg prometheus.Registerer, st *store.Store) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "appnode_requests_total",
			Help: "API requests by route pattern and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "appnode_request_duration_seconds",
			Help: "API request latency by route pattern.",
			// From 100µs (a local read) to 2.5s (a slow forwarded write).
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12),
		}, []string{"route"}),
		routed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "appnode_routed_total",
			Help: "Requests for users answered by another member, by how they were routed (forward, redirect, or fallback: to the previous holder of a user still being streamed here).",
		}, []string{"mode"}),
		failovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appnode_forward_failovers_total",
			Help: "Forwards that got no answer in time (or no connection) from the member answering for a user and went to the next member of its preference list.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "appnode_live_streams_dropped_total",
			Help: "Live timeline streams this member ended, by reason: write_failed (the client took no events for the write timeout, 30s by default, or its connection broke), replay_failed (the inbox could not be read), shutdown, token_revoked (a rotation revoked the stream's token).",
		}, []string{"reason"}),
	}
	m.forwarded = m.routed.WithLabelValues("forward")
	m.redirected = m.routed.WithLabelValues("redirect")
	m.fellBack = m.routed.WithLabelValues("fallback")
	for _, r := range live.Drops {
		m.dropped.WithLabelValues(r)
	}
	for _, route := range apiRoutes {
		for _, code := range initialCodes {
			m.requests.WithLabelValues(route, code)
		}
		m.latency.WithLabelValues(route)
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.latency, m.routed, m.failovers, m.dropped, storeCollector{st})
	}
	return m
}

// apiRoutes are the routes clients use (handlers.go registers them;
// TestAPIRoutesRegistered keeps the two in step). Their request series
// are exported from the start, for initialCodes, so a rate of errors
// has a series before the first error; the members' internal routes
// appear once the members talk, which they do at once.
var apiRoutes = []string{
	"POST /v1/users",
	"GET /v1/users/{name}",
	"POST /v1/users/{name}/posts",
	"GET /v1/users/{name}/posts",
	"PUT /v1/users/{name}/following/{other}",
	"DELETE /v1/users/{name}/following/{other}",
	"GET /v1/users/{name}/following",
	"GET /v1/users/{name}/followers",
	"GET /v1/users/{name}/timeline",
	"GET /v1/users/{name}/timeline/stream",
	"GET /healthz",
	"GET /v1/ring",
	"GET /v1/ring/lookup",
}

// initialCodes are the status codes exported at zero for apiRoutes:
// success, and the server errors an operator alerts on.
var initialCodes = []string{"200", "500", "503"}

// seriesKey names a request's series: its route pattern (a bounded
// set: the mux's patterns and "unmatched") and status code.
type seriesKey struct {
	route string
	code  int
}

// series are the counter and the histogram of one seriesKey.
type series struct {
	requests prometheus.Counter
	latency  prometheus.Observer
}

// observe counts a request and its latency.
func (m *metrics) observe(route string, code int, d time.Duration) {
	k := seriesKey{route, code}
	v, ok := m.series.Load(k)
	if !ok {
		v, _ = m.series.LoadOrStore(k, series{m.requests.WithLabelValues(route, strconv.Itoa(code)), m.latency.WithLabelValues(route)})
	}
	sr := v.(series)
	sr.requests.Inc()
	sr.latency.Observe(d.Seconds())
}

// storeCollector reports store sizes when scraped.
type storeCollector struct{ st *store.Store }

var (
	storeBytesDesc = prometheus.NewDesc("appnode_store_bytes", "Estimated bytes on disk by record kind (total: the whole database).", []string{"kind"}, nil)
	storeFailDesc  = prometheus.NewDesc("appnode_store_failed", "1 when the store failed after a disk error and refuses requests.", nil, nil)
)

func (c storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- storeBytesDesc
	ch <- storeFailDesc
}

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.st.Stats()
	ch <- prometheus.MustNewConstMetric(storeBytesDesc, prometheus.GaugeValue, float64(st.DiskBytes), "total")
	for kind, n := range st.KindBytes {
		ch <- prometheus.MustNewConstMetric(storeBytesDesc, prometheus.GaugeValue, float64(n), kind)
	}
	failed := 0.0
	if st.WritesFail {
		failed = 1
	}
	ch <- prometheus.MustNewConstMetric(storeFailDesc, prometheus.GaugeValue, failed)
}
