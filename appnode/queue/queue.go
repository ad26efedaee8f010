package queue

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/ringfront/ringfront/appnode/store"
)

// Config configures a Deliverer.
type Config struct {
	// Name names the queue in logs ("hints", "fanout").
	Name string
	// Queue is the store's queue.
	Queue *store.Queue
	// Batch is how many entries go in one Send; MaxBatches bounds one
	// member's batches per round; Parallel how many members are
	// delivered to at once (0: 1).
	Batch, MaxBatches, Parallel int
	// BackoffMin and BackoffMax bound the wait after a failed delivery
	// to a member: BackoffMin, doubling up to BackoffMax, reset by a
	// delivery that works.
	BackoffMin, BackoffMax time.Duration
	// Ready reports whether a member may be delivered to now (the
	// failure detector sees it up); members that are not ready are
	// passed over for the round without backoff.
	Ready func(member string) bool
	// Gone reports a member that has left the ring: its entries go to
	// Readdress instead.
	Gone func(member string) bool
	// Send delivers es to member; when it returns nil they are deleted.
	Send func(ctx context.Context, member string, es []store.QueueEntry) error
	// Readdress hands the entries of a member that left the ring to the
	// members that hold their records now, and removes them from the
	// queue (store.Queue.Move).
	Readdress func(ctx context.Context, gone string, es []store.QueueEntry) error
	// Delivered counts entries delivered (Readdress counts its own),
	// Failed failed deliveries; nil counts nothing.
	Delivered, Failed prometheus.Counter
	// Log is the logger; nil means slog.Default(). Failed deliveries
	// are logged at FailLevel.
	Log       *slog.Logger
	FailLevel slog.Level
}

// Deliverer delivers one queue. It is safe for concurrent use.
type Deliverer struct {
	cfg  Config
	kick chan struct{}

	mu      sync.Mutex // guards backoff
	backoff map[string]backoff
}

type backoff struct {
	wait  time.Duration
	until time.Time
}

// New returns a Deliverer for cfg.
func New(cfg Config) *Deliverer {
	if cfg.Parallel <= 0 {
		cfg.Parallel = 1
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.FailLevel == 0 {
		cfg.FailLevel = slog.LevelDebug
	}
	return &Deliverer{cfg: cfg, kick: make(chan struct{}, 1), backoff: map[string]backoff{}}
}

// Queue is the queue delivered.
func (d *Deliverer) Queue() *store.Queue { return d.cfg.Queue }

// Kick makes Run start a round now.
func (d *Deliverer) Kick() {
	select {
	case d.kick <- struct{}{}:
	default: // a round is due already
	}
}

// Run makes a round every interval, and whenever kicked, until ctx is
// done. each, when not nil, is told how many entries each round
// delivered.
func (d *Deliverer) Run(ctx context.Context, interval time.Duration, each func(delivered int)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-d.kick:
		}
		if n := d.Round(ctx); each != nil {
			each(n)
		}
	}
}

// Round makes one round of delivery to every member with entries that
// is ready and not backing off, Parallel members at once (one that does
// not answer holds up only its own entries), and returns how many
// entries were delivered.
func (d *Deliverer) Round(ctx context.Context) int {
	members, err := d.cfg.Queue.Members()
	if err != nil {
		d.cfg.Log.Warn("listing members with entries waiting", "op", d.cfg.Name, "err", err)
		return 0
	}
	var done atomic.Int64
	now := time.Now()
	var g errgroup.Group
	g.SetLimit(d.cfg.Parallel)
	for _, m := range members {
		d.mu.Lock()
		b := d.backoff[m]
		d.mu.Unlock()
		if now.Before(b.until) || !d.cfg.Gone(m) && !d.cfg.Ready(m) {
			continue
		}
		g.Go(func() error {
			n, err := d.To(ctx, m)
			done.Add(int64(n))
			d.mu.Lock()
			if err != nil {
				b.wait = min(max(2*b.wait, d.cfg.BackoffMin), d.cfg.BackoffMax)
				b.until = time.Now().Add(b.wait)
				d.backoff[m] = b
			} else {
				delete(d.backoff, m)
			}
			d.mu.Unlock()
			if err != nil {
				d.cfg.Log.Log(ctx, d.cfg.FailLevel, "delivery failed", "op", d.cfg.Name, "peer", m, "err", err, "retry_in", b.wait.Seconds())
			}
			return nil
		})
	}
	g.Wait()
	return int(done.Load())
}

// To delivers up to MaxBatches batches of member's entries now, ready
// or not, and returns how many it delivered; entries for a member that
// left the ring are re-addressed.
func (d *Deliverer) To(ctx context.Context, member string) (int, error) {
	done := 0
	for range d.cfg.MaxBatches {
		es, err := d.cfg.Queue.Read(member, d.cfg.Batch)
		if err != nil {
			return done, fmt.Errorf("reading %s for %s: %w", d.cfg.Name, member, err)
		}
		if len(es) == 0 || ctx.Err() != nil {
			return done, nil
		}
		if d.cfg.Gone(member) {
			if err := d.cfg.Readdress(ctx, member, es); err != nil {
				return done, err
			}
			done += len(es)
			continue
		}
		if err := d.cfg.Send(ctx, member, es); err != nil {
			if d.cfg.Failed != nil {
				d.cfg.Failed.Inc()
			}
			return done, err
		}
		if err := d.cfg.Queue.Delete(es); err != nil {
			return done, err
		}
		done += len(es)
		if d.cfg.Delivered != nil {
			d.cfg.Delivered.Add(float64(len(es)))
		}
	}
	return done, nil
}
