package fanout

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
	"github.com/ringfront/ringfront/appnode/replica"
	"github.com/ringfront/ringfront/appnode/store"
	"github.com/ringfront/ringfront/appnode/timeline"
)

// Options configure a Fanout.
type Options struct {
	// Cluster is this member's view of the cluster.
	Cluster *peer.Cluster
	// Store is this member's database.
	Store *store.Store
	// Timeline reads authors' posts for back-fills.
	Timeline *timeline.Timeline
	// Log is the logger; nil means slog.Default().
	Log *slog.Logger
	// Registry receives the metrics; nil means none are registered.
	Registry prometheus.Registerer
}

// Fanout pushes posts into followers' inboxes and hands new inbox
// entries to live streams. It is safe for concurrent use.
type Fanout struct {
	c       *peer.Cluster
	store   *store.Store
	tl      *timeline.Timeline
	log     *slog.Logger
	outbox  *queue.Deliverer
	hub     Hub
	metrics metrics

	limit    atomic.Int64 // fanout_limit; negative: nobody is pushed
	inboxMax atomic.Int64
	inline   int                       // inlineFanout; tests lower it
	authors  [authorStripes]sync.Mutex // see LockAuthor

	mu      sync.Mutex      // guards busy, inserts and celebs
	busy    map[string]bool // members an inline delivery is under way to
	inserts map[string]int  // inbox entries added per user since its last trim
	celebs  map[string]followerCount

	copies copiesState // fan-out copies' delivered notices (copies.go)
}

// followerCount is an author found above the fan-out limit when
// posting.
type followerCount struct {
	n  int
	at time.Time
}

// New returns the fan-out of opts.
func New(opts Options) *Fanout {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	f := &Fanout{
		c: opts.Cluster, store: opts.Store, tl: opts.Timeline, log: opts.Log.With("subsystem", "fanout"),
		inline: inlineFanout, busy: map[string]bool{}, inserts: map[string]int{}, celebs: map[string]followerCount{},
	}
	f.limit.Store(DefaultFanoutLimit)
	f.inboxMax.Store(DefaultInboxMax)
	f.hub.init()
	f.metrics = newMetrics(opts.Registry, f)
	f.outbox = f.newOutbox()
	return f
}

// Routes registers fan-out's member calls on mux; internal
// authenticates them (transport.Internal).
func (s *Fanout) Routes(mux *http.ServeMux, internal func(http.HandlerFunc, int64) http.HandlerFunc) {
	mux.HandleFunc("POST /internal/v1/inbox", internal(s.inboxHandler, maxInboxBody))
	mux.HandleFunc("POST /internal/v1/fanout-done", internal(s.doneHandler, maxDoneRefs*(2*feed.IDLen+64)))
}

// Hub hands the inbox entries stored here to live streams.
func (s *Fanout) Hub() *Hub { return &s.hub }

// InboxMax is inbox_max.
func (s *Fanout) InboxMax() int { return int(s.inboxMax.Load()) }

// SetInline sets the largest fan-out a post delivers before it is
// acknowledged (tests lower it).
func (s *Fanout) SetInline(n int) { s.inline = n }

// Outbox counts the entries waiting in the outbox, up to
// replica.CountLimit.
func (s *Fanout) Outbox() int {
	n, _ := s.store.Outbox().Count(replica.CountLimit)
	return n
}

// metrics count fan-out on write and live streams.
type metrics struct {
	entries    prometheus.Counter // inbox entries written here
	delivered  prometheus.Counter // outbox entries delivered
	failed     prometheus.Counter // delivery attempts that failed
	notPushed  prometheus.Counter // posts of authors above fanout_limit
	backfilled prometheus.Counter // posts back-filled into inboxes after a follow
}

func newMetrics(reg prometheus.Registerer, f *Fanout) metrics {
	m := metrics{
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
	}
	if reg == nil {
		return m
	}
	reg.MustRegister(m.entries, m.delivered, m.failed, m.notPushed, m.backfilled,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "appnode_live_streams",
			Help: "Live timeline streams served by this member.",
		}, func() float64 { return float64(f.hub.Streams()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "appnode_fanout_outbox_entries",
			Help: "Inbox deliveries waiting in this member's outbox (counted up to 100000).",
		}, func() float64 { return float64(f.Outbox()) }))
	return m
}
