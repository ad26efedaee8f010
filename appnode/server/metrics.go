package server

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringfront/ringfront/appnode/store"
)

// metrics are the API's own; each subsystem registers its own too.
type metrics struct {
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	routed    *prometheus.CounterVec
	failovers prometheus.Counter
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
	}
	m.routed.WithLabelValues("forward")
	m.routed.WithLabelValues("redirect")
	m.routed.WithLabelValues("fallback")
	if reg != nil {
		reg.MustRegister(m.requests, m.latency, m.routed, m.failovers, storeCollector{st})
	}
	return m
}

func (m *metrics) observe(route string, code int, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
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
