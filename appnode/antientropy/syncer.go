package antientropy

import (
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringfront/ringfront/appnode/peer"
	"github.com/ringfront/ringfront/appnode/replica"
	"github.com/ringfront/ringfront/appnode/ring"
	"github.com/ringfront/ringfront/appnode/store"
)

// Options configure a Syncer.
type Options struct {
	// Cluster is this member's view of the cluster.
	Cluster *peer.Cluster
	// Store is this member's database.
	Store *store.Store
	// Replica reads, fetches and reconciles a user's records.
	Replica *replica.Replica
	// Log is the logger; nil means slog.Default().
	Log *slog.Logger
	// Registry receives the metrics; nil means none are registered.
	Registry prometheus.Registerer
	// Interval is how often Run compares with the other members; 0
	// means DefaultInterval.
	Interval time.Duration
	// Rate is how many records per second anti-entropy compares and
	// copies; 0 means DefaultRate.
	Rate int
}

// Syncer keeps this member's records in step with the other members'
// in the background: anti-entropy, rebalancing after a ring change,
// and catching up after a start. It is safe for concurrent use.
type Syncer struct {
	c       *peer.Cluster
	store   *store.Store
	rep     *replica.Replica
	log     *slog.Logger
	metrics metrics

	interval atomic.Int64 // a time.Duration
	rate     atomic.Int64 // records per second

	mu      sync.Mutex // guards version, classes and next
	version string     // the ring version classes were made for
	classes map[string][]leafClass
	next    time.Time // when the pacer lets the next record through

	rebalance rebalancer

	catchUpKick chan struct{}        // KickCatchUp → RunCatchUp
	kickMu      sync.Mutex           // guards kicked
	kicked      []string             // members to catch up with next
	started     time.Time            // for awake's monotonic clock
	awake       atomic.Int64         // time.Since(started) at RunCatchUp's last tick
	hintsIn     atomic.Pointer[gate] // opened once a catch-up's hints have arrived
}

// New returns a Syncer for opts.
func New(opts Options) *Syncer {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	s := &Syncer{
		c: opts.Cluster, store: opts.Store, rep: opts.Replica, log: opts.Log.With("subsystem", "antientropy"),
		catchUpKick: make(chan struct{}, 1),
		started:     time.Now(),
	}
	if opts.Cluster.CatchingUp() {
		// A catch-up is due from the start: a request that comes before
		// it has begun waits for its hints too.
		s.hintsIn.Store(newGate())
	}
	s.rebalance.settled = opts.Cluster.Ring()
	s.rebalance.kick = make(chan struct{}, 1)
	s.SetInterval(opts.Interval)
	s.SetRate(opts.Rate)
	s.metrics = newMetrics(opts.Registry, opts.Store, opts.Cluster.CatchingUp)
	return s
}

// Routes registers anti-entropy's member calls on mux; internal
// authenticates them (transport.Internal).
func (s *Syncer) Routes(mux *http.ServeMux, internal func(http.HandlerFunc, int64) http.HandlerFunc) {
	mux.HandleFunc("POST /internal/v1/digests", internal(s.digests, maxDigestBody))
}

// Shares reports whether name's preference list under rg holds this
// member and peer (the users anti-entropy compares with peer).
func (s *Syncer) Shares(rg *ring.Ring, name, peer string) bool { return s.shares(rg, name, peer) }

type metrics struct {
	rounds      *prometheus.CounterVec
	records     prometheus.Counter
	digestReads prometheus.CounterFunc
	catchingUp  prometheus.GaugeFunc
	catchUps    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, st *store.Store, catchingUp func() bool) metrics {
	m := metrics{
		rounds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "appnode_anti_entropy_rounds_total",
			Help: "Anti-entropy comparisons with another member by result: same, repaired, failed.",
		}, []string{"result"}),
		records: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appnode_anti_entropy_records_total",
			Help: "Records compared or copied by anti-entropy (what anti_entropy_rate limits).",
		}),
		digestReads: prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "appnode_digest_reads_total",
			Help: "Per-user digest entries read from the store (anti-entropy and rebalance planning).",
		}, func() float64 { return float64(st.DigestReads()) }),
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
	}
	for _, r := range []string{"same", "repaired", "failed"} {
		m.rounds.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.rounds, m.records, m.digestReads, m.catchingUp, m.catchUps)
	}
	return m
}
