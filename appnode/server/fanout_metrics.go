package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
)

// fanoutMetrics count fan-out on write and live streams.
type fanoutMetrics struct {
	entries    prometheus.Counter     // inbox entries written here
	delivered  prometheus.Counter     // outbox entries delivered
	failed     prometheus.Counter     // delivery attempts that failed
	notPushed  prometheus.Counter     // posts of authors above fanout_limit
	backfilled prometheus.Counter     // posts back-filled into inboxes after a follow
	partial    prometheus.Counter     // read-time merges that left out authors nobody answered for
	dropped    *prometheus.CounterVec // live streams this member ended, by reason
}

// Why this member ended a live stream (appnode_live_streams_dropped_total).
const (
	dropWriteFailed  = "write_failed"  // the client took no events for the write timeout, or its connection broke
	dropReplayFailed = "replay_failed" // a stream that lagged or resumed could not be replayed from the inbox
	dropShutdown     = "shutdown"      // the member is stopping
)

// streamDropped counts a stream this member ended for reason (none:
// it did not); a client that went away ended its own.
func (m *fanoutMetrics) streamDropped(r *http.Request, reason string) {
	if m == nil || reason == "" || reason != dropShutdown && r.Context().Err() != nil {
		return
	}
	m.dropped.WithLabelValues(reason).Inc()
}

// initFanout sets up fan-out and registers its metrics with reg (none
// when reg is nil).
func (s *Server) initFanout(reg prometheus.Registerer) {
	s.fan.init()
	m := &fanoutMetrics{
		entries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appnode_inbox_entries_written_total",
			Help: "Home-timeline inbox entries written on this member (fan-out on write).",
		}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appnode_fanout_deliveries_total",
			Help: "Outbox entries (inbox deliveries for one member) delivered.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appnode_fanout_delivery_errors_total",
			Help: "Inbox delivery attempts that failed; the entries stay in the outbox and are retried with backoff.",
		}),
		notPushed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appnode_fanout_not_pushed_total",
			Help: "Posts not pushed because their author has more followers than fanout_limit (merged at read time).",
		}),
		backfilled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appnode_fanout_backfilled_posts_total",
			Help: "Posts back-filled into a follower's inbox after a follow.",
		}),
		partial: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appnode_timeline_partial_merges_total",
			Help: "Read-time merges of followees' posts that left out followees none of whose members answered (a partition, or all their replicas down).",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "appnode_live_streams_dropped_total",
			Help: "Live timeline streams this member ended, by reason: write_failed (the client took no events for 30s, or its connection broke), replay_failed (the inbox could not be read), shutdown.",
		}, []string{"reason"}),
	}
	for _, r := range []string{dropWriteFailed, dropReplayFailed, dropShutdown} {
		m.dropped.WithLabelValues(r)
	}
	s.fan.metrics = m
	if reg == nil {
		return
	}
	reg.MustRegister(m.entries, m.delivered, m.failed, m.notPushed, m.backfilled, m.partial, m.dropped,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "appnode_live_streams",
			Help: "Live timeline streams served by this member.",
		}, func() float64 { return float64(s.Streams()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "appnode_fanout_outbox_entries",
			Help: "Inbox deliveries waiting in this member's outbox (counted up to 100000).",
		}, func() float64 {
			n, _ := s.store.OutboxCountUpTo(outboxCountLimit)
			return float64(n)
		}))
}

// outboxCountLimit caps the outbox gauge's count, so a scrape reads at
// most this many entries however long a member has been down.
const outboxCountLimit = 100_000
