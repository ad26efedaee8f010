package timeline

import (
	"encoding/binary"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/peer"
	"github.com/ringfront/ringfront/appnode/store"
)

const (
	// DefaultFanoutLimit is fanout_limit: an author with more followers
	// is not pushed (Twitter's answer for celebrity accounts: one post
	// would otherwise be tens of thousands of writes), so timelines
	// merge its posts at read time.
	DefaultFanoutLimit = 10_000
	// timelineTimeout bounds the whole read-time merge.
	timelineTimeout = 5 * time.Second
	// countTTL is how long a timeline reader trusts a followee's
	// follower count. Followees above half the fan-out limit are merged
	// at read time (and deduplicated with the inbox), so an author who
	// crosses the limit within countTTL is still merged, never missed.
	countTTL = 30 * time.Second
	// maxCachedCounts bounds the follower-count cache (~100 bytes each).
	maxCachedCounts = 100_000
)

// Options configure a Timeline.
type Options struct {
	// Cluster is this member's view of the cluster.
	Cluster *peer.Cluster
	// Store is this member's database.
	Store *store.Store
	// Log is the logger; nil means slog.Default().
	Log *slog.Logger
	// Registry receives the metrics; nil means none are registered.
	Registry prometheus.Registerer
}

// Timeline reads home timelines. It is safe for concurrent use.
type Timeline struct {
	c       *peer.Cluster
	store   *store.Store
	log     *slog.Logger
	limit   atomic.Int64 // fanout_limit; negative: nobody is pushed
	partial prometheus.Counter

	mu     sync.Mutex // guards counts
	counts map[string]followerCount
}

type followerCount struct {
	n  int
	at time.Time
}

// New returns the timeline reader of opts.
func New(opts Options) *Timeline {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	t := &Timeline{c: opts.Cluster, store: opts.Store, log: opts.Log.With("subsystem", "timeline"), counts: map[string]followerCount{}}
	t.limit.Store(DefaultFanoutLimit)
	t.partial = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "appnode_timeline_partial_merges_total",
		Help: "Read-time merges of followees' posts that left out followees none of whose members answered (a partition, or all their replicas down).",
	})
	if opts.Registry != nil {
		opts.Registry.MustRegister(t.partial)
	}
	return t
}

// SetFanoutLimit sets fanout_limit (0: DefaultFanoutLimit; negative:
// no author is pushed, every read merges).
func (t *Timeline) SetFanoutLimit(limit int) {
	if limit == 0 {
		limit = DefaultFanoutLimit
	}
	t.limit.Store(int64(limit))
}

// Routes registers the timeline's member calls on mux; internal
// authenticates them (transport.Internal).
func (t *Timeline) Routes(mux *http.ServeMux, internal func(http.HandlerFunc, int64) http.HandlerFunc) {
	mux.HandleFunc("POST /internal/v1/merge", internal(t.merge, maxMergeBody))
	mux.HandleFunc("POST /internal/v1/follower-counts", internal(t.followerCountsHandler, maxMergeBody))
}

// HorizonNow is an id below every post made from now on.
func (t *Timeline) HorizonNow() feed.ID { return HorizonAt(t.c.Clock().Now()) }

// HorizonAt is an id below every post made at ts or later.
func HorizonAt(ts feed.Timestamp) feed.ID {
	var id feed.ID
	binary.BigEndian.PutUint64(id[:8], uint64(ts))
	return id
}
