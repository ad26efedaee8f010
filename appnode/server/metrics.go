package server

import (
	"strconv"
	"sync"
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
	// Issue-13 additions: sloppy quorum, catch-up, edge notes.
	hintedCopies   prometheus.Counter
	hintsHeld      prometheus.Counter
	tooFewCopies   prometheus.Counter
	catchingUp     prometheus.GaugeFunc
	catchUps       prometheus.Counter
	edgeSynced     prometheus.Counter
	edgeSyncErrors prometheus.Counter

	// The series every request touches, looked up once: a lookup by
	// label values hashes them and takes the vector's lock, a good part
	// of a 307's own CPU.
	series                          sync.Map           // seriesKey → series
	forwarded, redirected, fellBack prometheus.Counter // routed's
}

func newMetrics(reg prometheus.Registerer, st *store.Store, catchingUp func() bool) *metrics {
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
			Help: "Forwards that got no answer in time (or no connection) from the member answering for a user and went to the next member of its preference list.",
		}),
		replicated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appnode_replicated_records_total",
			Help: "Records received from other members as their replica (writes and delivered hints).",
		}),
		replicaErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appnode_replica_errors_total",
			Help: "Calls to a replica that failed or did not answer in time (the write went to a hinted copy instead).",
		}),
		hinted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appnode_hints_stored_total",
			Help: "Writes kept as hints here (for a replica that was dead or did not answer), whether this member coordinated them or held a hinted copy for another.",
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
		hintedCopies: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appnode_hinted_copies_total",
			Help: "Writes whose copy for an unreachable replica went to another member as a hint (sloppy quorum) and counted towards write_acks.",
		}),
		hintsHeld: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appnode_hinted_copies_held_total",
			Help: "Hinted copies this member took for another member's unreachable replica.",
		}),
		tooFewCopies: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appnode_writes_too_few_copies_total",
			Help: "Writes refused (503) because fewer than write_acks members could store a copy.",
		}),
		catchingUp: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "appnode_catching_up",
			Help: "1 while this member catches up after a start (hints and anti-entropy from the others); it answers for its users only when no caught-up replica can.",
		}, func() float64 {
			if catchingUp() {
				return 1
			}
			return 0
		}),
		catchUps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appnode_catch_ups_total",
			Help: "Catch-ups finished.",
		}),
		edgeSynced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appnode_edge_notes_delivered_total",
			Help: "Edge notes delivered to the other side of a follow edge.",
		}),
		edgeSyncErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appnode_edge_note_errors_total",
			Help: "Edge note deliveries that failed (retried).",
		}),
	}
	m.forwarded = m.routed.WithLabelValues("forward")
	m.redirected = m.routed.WithLabelValues("redirect")
	m.fellBack = m.routed.WithLabelValues("fallback")
	for _, r := range []string{"same", "repaired", "failed", "skipped"} {
		m.repairs.WithLabelValues(r)
	}
	for _, r := range []string{"same", "repaired", "failed"} {
		m.antiEntropy.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.latency, m.routed, m.forwardErrors, m.failovers, m.replicated, m.replicaErrors, m.hinted, m.handedOff, m.repairs, m.antiEntropy,
			m.linksOpened, m.linksServed, m.linkRefused, storeCollector{st},
			m.hintedCopies, m.hintsHeld, m.tooFewCopies, m.catchingUp, m.catchUps, m.edgeSynced, m.edgeSyncErrors)
	}
	return m
}

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
