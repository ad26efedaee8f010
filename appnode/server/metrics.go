package server

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringfront/ringfront/appnode/store"
)

type metrics struct {
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	routed        *prometheus.CounterVec
	forwardErrors prometheus.Counter
	failovers     prometheus.Counter
	replicated    prometheus.Counter
	replicaErrors prometheus.Counter
	hinted        prometheus.Counter
	handedOff     prometheus.Counter
	repairs       *prometheus.CounterVec
	antiEntropy   *prometheus.CounterVec
	linksOpened   prometheus.Counter
	linksServed   prometheus.Gauge
	linkRefused   prometheus.Counter
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
		forwardErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appnode_forward_errors_total",
			Help: "Forwarded requests that got no answer from the owner.",
		}),
		failovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appnode_forward_failovers_total",
			Help: "Forwards that could not connect to the member answering for a user and went to the next live member of its preference list.",
		}),
		replicated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appnode_replicated_records_total",
			Help: "Records received from other members as their replica (writes and delivered hints).",
		}),
		replicaErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appnode_replica_errors_total",
			Help: "Calls to a replica that the failure detector saw alive that failed (the write was hinted).",
		}),
		hinted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appnode_hints_stored_total",
			Help: "Writes kept as hints for a replica that was dead or did not answer.",
		}),
		handedOff: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appnode_hints_delivered_total",
			Help: "Hints delivered to their member once it was alive again.",
		}),
		repairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "appnode_read_repairs_total",
			Help: "Read repairs by result: same (replicas agreed), repaired, failed, skipped (too many running).",
		}, []string{"result"}),
		antiEntropy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "appnode_anti_entropy_rounds_total",
			Help: "Anti-entropy comparisons with another member by result: same, repaired, failed.",
		}, []string{"result"}),
		linksOpened: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appnode_links_opened_total",
			Help: "Member links this member opened to forward requests.",
		}),
		linksServed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "appnode_links_served",
			Help: "Member links other members have open to this one.",
		}),
		linkRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appnode_links_refused_total",
			Help: "Member links refused for a wrong answer to the challenge (a wrong cluster secret).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.latency, m.routed, m.forwardErrors, m.failovers, m.replicated, m.replicaErrors, m.hinted, m.handedOff, m.repairs, m.antiEntropy,
			m.linksOpened, m.linksServed, m.linkRefused, storeCollector{st})
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
