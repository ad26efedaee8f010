package fanout

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/replica"
	"github.com/ringfront/ringfront/appnode/store"
	"github.com/ringfront/ringfront/appnode/transport"
)

// Fan-out copies (see store/fanoutcopies.go): a post's outbox entries
// travel with the post to its other replicas, which keep a copy of each
// until the coordinator says it delivered it, and deliver it themselves
// when the coordinator is gone (left the ring, or back on a new disk:
// another store id) or silent for CopyMaxAge. So a post acknowledged
// with two copies reaches its author's followers' timelines even when
// the member that took it is lost before it delivered them.

const (
	// copyCheckInterval is how often the copies kept here are looked at.
	copyCheckInterval = 2 * time.Second
	// CopyMaxAge is how long a copy waits for its coordinator's word
	// before this member delivers it too: far longer than a delivery
	// takes, and than a restart (whose outbox survives it).
	CopyMaxAge = 10 * time.Minute
	// copyBatch bounds the copies read per coordinator and round.
	copyBatch = 256
	// maxPendingDone bounds the delivered-entry notices waiting to be
	// sent; beyond it they are dropped (the copies are then delivered
	// again after CopyMaxAge, harmlessly).
	maxPendingDone = 100_000
)

// copiesState is the coordinator's side: notices of delivered entries
// waiting to be sent to the replicas that keep their copies.
type copiesState struct {
	mu      sync.Mutex                 // guards pending
	pending map[string][]store.CopyRef // replica → delivered entries
	count   int
}

// CopiesOf returns the outbox copies for a post's replicate record: the
// entries queued for other members (this member's own are rebuilt from
// its store if it loses it).
func (s *Fanout) CopiesOf(qs []Queued) []replica.OutboxCopy {
	var out []replica.OutboxCopy
	for _, q := range qs {
		if q.Member != s.c.Self() && !q.Delivery.Backfill {
			out = append(out, replica.OutboxCopy{Member: q.Member, Delivery: q.Delivery})
		}
	}
	return out
}

// PostWrites turns the copies a post's record carries into writes for
// the post's batch here (replica.FanOut).
func (s *Fanout) PostWrites(rec replica.Record) ([]store.Write, error) {
	var ws []store.Write
	for _, c := range rec.Copies {
		if c.Member == "" || feed.ValidName(rec.Post.Author) != nil {
			continue
		}
		if err := ValidDelivery(c.Delivery); err != nil {
			return nil, fmt.Errorf("%w: fan-out copy for %s: %w", replica.ErrBadRecord, c.Member, err)
		}
		w, err := store.CopyWrite(store.FanoutCopy{Coordinator: rec.From, Post: rec.Post.ID, Member: c.Member,
			Delivery: c.Delivery, Store: rec.FromStore, Made: s.c.Now()})
		if err != nil {
			return nil, err
		}
		ws = append(ws, w)
	}
	return ws, nil
}

// copiesDelivered notes outbox entries delivered to member, for the replicas
// that keep copies of them.
func (s *Fanout) copiesDelivered(member string, ds []store.InboxDelivery) {
	rg := s.c.Ring()
	var buf [8]string
	s.copies.mu.Lock()
	defer s.copies.mu.Unlock()
	if s.copies.pending == nil {
		s.copies.pending = map[string][]store.CopyRef{}
	}
	for _, d := range ds {
		if d.Backfill {
			continue
		}
		for _, p := range d.Posts {
			for _, r := range rg.Preference(buf[:0], p.Author) {
				if r == s.c.Self() || s.copies.count >= maxPendingDone {
					continue
				}
				s.copies.pending[r] = append(s.copies.pending[r], store.CopyRef{Post: p.ID, Member: member})
				s.copies.count++
			}
		}
	}
}

// doneRequest is the body of POST /internal/v1/fanout-done.
type doneRequest struct {
	Coordinator string          `json:"coordinator"`
	Delivered   []store.CopyRef `json:"delivered"`
}

// maxDoneRefs bounds one notice.
const maxDoneRefs = 4096

// doneHandler deletes the copies of entries their coordinator delivered.
func (s *Fanout) doneHandler(w http.ResponseWriter, r *http.Request) {
	var req doneRequest
	if !transport.ReadJSON(w, r, &req, maxDoneRefs*(2*feed.IDLen+64)) {
		return
	}
	if len(req.Delivered) > maxDoneRefs || req.Coordinator == "" {
		transport.WriteError(w, http.StatusBadRequest, fmt.Errorf("%d notices (at most %d) from %q", len(req.Delivered), maxDoneRefs, req.Coordinator))
		return
	}
	if err := s.store.DeleteCopies(req.Coordinator, req.Delivered); err != nil {
		transport.StoreError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// RunCopies sends this member's delivered-entry notices and looks at
// the copies it keeps for others, every copyCheckInterval until ctx is
// done.
func (s *Fanout) RunCopies(ctx context.Context) error {
	return replica.Every(ctx, copyCheckInterval, func() {
		s.SendDone(ctx)
		s.DeliverCopies(ctx, s.c.Now())
	})
}

// SendDone sends the notices of delivered entries to the replicas that
// keep their copies; a notice that cannot be sent is dropped.
func (s *Fanout) SendDone(ctx context.Context) {
	s.copies.mu.Lock()
	pending := s.copies.pending
	s.copies.pending, s.copies.count = nil, 0
	s.copies.mu.Unlock()
	for r, refs := range pending {
		if !s.c.Alive(r) {
			continue
		}
		for chunk := range slices.Chunk(refs, maxDoneRefs) {
			cctx, cancel := context.WithTimeout(ctx, transport.CallTimeout)
			err := s.c.Call(cctx, http.MethodPost, r, "/internal/v1/fanout-done", doneRequest{Coordinator: s.c.Self(), Delivered: chunk}, nil)
			cancel()
			if err != nil {
				s.log.Debug("telling a replica of delivered fan-out", "op", "fanout", "peer", r, "err", err)
				break
			}
		}
	}
}

// DeliverCopies delivers the copies whose coordinator is gone (left the
// ring, or answers with another store id) or that are older than
// CopyMaxAge at now, and returns how many it delivered.
func (s *Fanout) DeliverCopies(ctx context.Context, now time.Time) int {
	coords, err := s.store.CopyCoordinators()
	if err != nil {
		s.log.Warn("listing fan-out copies", "op", "fanout", "err", err)
		return 0
	}
	done := 0
	for _, coord := range coords {
		cs, err := s.store.Copies(coord, copyBatch)
		if err != nil {
			s.log.Error("unreadable fan-out copies", "op", "fanout", "peer", coord, "err", err)
		}
		gone, current := !s.c.Ring().Has(coord), ""
		if !gone && s.c.Alive(coord) {
			cctx, cancel := context.WithTimeout(ctx, s.c.MemberTimeout(coord))
			if ans, err := s.c.HelloOf(cctx, coord); err == nil {
				current = ans.Store
			}
			cancel()
		}
		var due []store.FanoutCopy
		for _, c := range cs {
			if gone || current != "" && c.Store != current || now.Sub(c.Made) > CopyMaxAge {
				due = append(due, c)
			}
		}
		if len(due) == 0 {
			continue
		}
		n, err := s.deliverCopies(ctx, coord, due)
		done += n
		if err != nil {
			s.log.Warn("delivering fan-out copies", "op", "fanout", "peer", coord, "err", err)
		} else {
			s.log.Info("delivered the fan-out of a member that lost it", "op", "fanout", "peer", coord, "entries", n)
		}
	}
	return done
}

// deliverCopies delivers copies (of coord's entries) to their members,
// re-addressed by the current ring, and deletes those delivered.
func (s *Fanout) deliverCopies(ctx context.Context, coord string, cs []store.FanoutCopy) (int, error) {
	rg := s.c.Ring()
	byMember := map[string][]store.InboxDelivery{}
	var refs []store.CopyRef
	for _, c := range cs {
		for m, d := range SplitByMember(rg, c.Delivery) {
			byMember[m] = append(byMember[m], d)
		}
		refs = append(refs, store.CopyRef{Post: c.Post, Member: c.Member})
	}
	var errs error
	for m, ds := range byMember {
		for chunk := range slices.Chunk(ds, outboxBatch) {
			var err error
			if m == s.c.Self() {
				for _, d := range chunk {
					err = errors.Join(err, s.DeliverHere(d))
				}
			} else if s.c.Alive(m) {
				cctx, cancel := context.WithTimeout(ctx, transport.CallTimeout)
				err = s.c.Call(cctx, http.MethodPost, m, "/internal/v1/inbox", inboxRequest{Deliveries: chunk}, nil)
				cancel()
			} else {
				err = fmt.Errorf("%s is not alive", m)
			}
			errs = errors.Join(errs, err)
		}
	}
	if errs != nil {
		return 0, errs // all kept: delivered again next round, harmlessly
	}
	if err := s.store.DeleteCopies(coord, refs); err != nil {
		return 0, err
	}
	return len(cs), nil
}
