package replica

import (
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/peer"
	"github.com/ringfront/ringfront/appnode/queue"
	"github.com/ringfront/ringfront/appnode/store"
	"github.com/ringfront/ringfront/appnode/transport"
)

// Options configure a Replica.
type Options struct {
	// Cluster is this member's view of the cluster.
	Cluster *peer.Cluster
	// Store is this member's database.
	Store *store.Store
	// Log is the logger; nil means slog.Default().
	Log *slog.Logger
	// Registry receives the metrics; nil means none are registered.
	Registry prometheus.Registerer
	// WriteAcks is how many durable copies on distinct members (this
	// member's included) a write needs before it is acknowledged; 0
	// means 2, or 1 when the ring has one replica.
	WriteAcks int
	// ReadRepair turns read repair on.
	ReadRepair bool
	// HandoffInterval is how often hints are offered to members that
	// are alive again; 0 means DefaultHandoffInterval.
	HandoffInterval time.Duration
	// FanOut is what fan-out on write needs to know of the records this
	// member stores; nil means nothing.
	FanOut FanOut
}

// FanOut is what replication tells fan-out on write (package fanout):
// the writes that go in a replicated post's batch (its outbox copies),
// and the follower edges stored on a followee's side.
type FanOut interface {
	// PostWrites returns the extra writes for a replicated post's batch.
	PostWrites(rec Record) ([]store.Write, error)
	// LockAuthor locks author's posting (see fanout.Fanout.LockAuthor)
	// and returns the unlock.
	LockAuthor(author string) (unlock func())
	// LateFollow is told of a follow that reached the followee's side
	// other than by its own request; it is called under LockAuthor.
	LateFollow(e feed.Edge)
}

// noFanOut is the FanOut of a member without fan-out.
type noFanOut struct{}

func (noFanOut) PostWrites(Record) ([]store.Write, error) { return nil, nil }
func (noFanOut) LockAuthor(string) func()                 { return func() {} }
func (noFanOut) LateFollow(feed.Edge)                     {}

// Replica keeps this member's records replicated. It is safe for
// concurrent use.
type Replica struct {
	c       *peer.Cluster
	store   *store.Store
	log     *slog.Logger
	fan     FanOut
	hints   *queue.Deliverer
	metrics metrics

	handoffInterval time.Duration
	writeAcks       atomic.Int32
	readRepair      atomic.Bool
	repairSlots     chan struct{}  // one token per running repair
	background      sync.WaitGroup // running repairs and replica calls
}

// New returns the replication of opts.Store's records.
func New(opts Options) *Replica {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.HandoffInterval == 0 {
		opts.HandoffInterval = DefaultHandoffInterval
	}
	if opts.FanOut == nil {
		opts.FanOut = noFanOut{}
	}
	r := &Replica{
		c: opts.Cluster, store: opts.Store, log: opts.Log.With("subsystem", "replica"), fan: opts.FanOut,
		handoffInterval: opts.HandoffInterval,
		repairSlots:     make(chan struct{}, maxRepairs),
	}
	r.metrics = newMetrics(opts.Registry, hintsCollector{r})
	r.hints = r.newHandoff()
	r.SetWriteAcks(opts.WriteAcks)
	r.SetReadRepair(opts.ReadRepair)
	return r
}

// Routes registers the members' replication calls on mux; internal
// authenticates them (transport.Internal).
func (r *Replica) Routes(mux *http.ServeMux, internal func(http.HandlerFunc, int64) http.HandlerFunc) {
	mux.HandleFunc("POST /internal/v1/replicate", internal(r.replicateHandler, MaxRecordsBody))
	mux.HandleFunc("POST /internal/v1/hint", internal(r.hintHandler, MaxRecordsBody))
	mux.HandleFunc("POST /internal/v1/handoff", internal(r.handoffHandler, transport.MaxBody))
	mux.HandleFunc("POST /internal/v1/edge", internal(r.edgeHandler, transport.MaxBody))
	mux.HandleFunc("GET /internal/v1/users/{name}/records", internal(r.recordsHandler, transport.MaxBody))
}

// Wait waits for the read repairs and the replica calls still running
// in the background (each is bounded by transport.CallTimeout).
func (r *Replica) Wait() { r.background.Wait() }

type metrics struct {
	replicated     prometheus.Counter
	replicaErrors  prometheus.Counter
	hinted         prometheus.Counter
	handedOff      prometheus.Counter
	repairs        *prometheus.CounterVec
	hintedCopies   prometheus.Counter
	hintsHeld      prometheus.Counter
	tooFewCopies   prometheus.Counter
	edgeSynced     prometheus.Counter
	edgeSyncErrors prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, hints prometheus.Collector) metrics {
	m := metrics{
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
		edgeSynced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appnode_edge_notes_delivered_total",
			Help: "Edge notes delivered to the other side of a follow edge.",
		}),
		edgeSyncErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "appnode_edge_note_errors_total",
			Help: "Edge note deliveries that failed (retried).",
		}),
	}
	for _, res := range []string{"same", "repaired", "failed", "skipped"} {
		m.repairs.WithLabelValues(res)
	}
	if reg != nil {
		reg.MustRegister(m.replicated, m.replicaErrors, m.hinted, m.handedOff, m.repairs,
			m.hintedCopies, m.hintsHeld, m.tooFewCopies, m.edgeSynced, m.edgeSyncErrors, hints)
	}
	return m
}

// hintsCollector reports the hints waiting here per member when
// scraped (appnode_hints_waiting): every other ring member, at zero
// when none wait, and members that left the ring while hints for them
// wait; counted up to CountLimit in all, as the outbox is.
type hintsCollector struct{ r *Replica }

var hintsWaitingDesc = prometheus.NewDesc("appnode_hints_waiting", "Writes kept here as hints for a member, waiting for it to answer (counted up to 100000 in all).", []string{"member"}, nil)

func (c hintsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- hintsWaitingDesc }

func (c hintsCollector) Collect(ch chan<- prometheus.Metric) {
	counts, err := c.r.store.Hints().Counts(CountLimit)
	if err != nil {
		return // a failed store: appnode_store_failed says so
	}
	for _, m := range c.r.c.Ring().Members() {
		if _, ok := counts[m]; !ok && m != c.r.c.Self() {
			counts[m] = 0
		}
	}
	for m, n := range counts {
		ch <- prometheus.MustNewConstMetric(hintsWaitingDesc, prometheus.GaugeValue, float64(n), m)
	}
}
