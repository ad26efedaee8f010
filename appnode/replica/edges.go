package replica

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/store"
	"github.com/ringfront/ringfront/appnode/transport"
)

// A follow edge is stored on both its users' sides, on two sets of
// members, and the request that makes it can lose either answer: the
// followee's side may store it while the follower's side never hears,
// or the other way round. So each side that stores a change it does not
// know the other side has keeps an edge note (store/edgenotes.go) in the
// same synced batch, on every one of its replicas; RunEdgeSync delivers
// due notes to the other side's members, which merge the edge (marked
// synced: they keep no note back) and answer. The note is due
// EdgeNoteDelay after the change, by which time the follow request has
// usually written the other side itself, so the delivery changes
// nothing and costs one call.

const (
	// EdgeNoteDelay is how long a note waits before it is delivered: a
	// follow request writes the other side within a few member timeouts.
	EdgeNoteDelay = 2 * time.Second
	// edgeSyncInterval is how often due notes are looked for.
	edgeSyncInterval = 500 * time.Millisecond
	// edgeSyncBatch bounds the notes read per round.
	edgeSyncBatch = 256
)

// MergeEdge stores edge e on side here, and an edge note unless synced
// says the other side has it already. A follow stored on the
// followee's side that is not fresh (see Record.Fresh) came late: fan-out
// is told (FanOut.LateFollow). It reports whether the edge changed.
func (s *Replica) MergeEdge(side store.Side, e feed.Edge, synced, fresh bool) (bool, error) {
	if side == store.Followers {
		// Under the followee's author lock, so a post and a follow of
		// its author are ordered (see fanout's StorePost).
		defer s.fan.LockAuthor(e.Followee)()
	}
	merged, changed, err := s.store.MergeEdge(side, e, !synced, EdgeNoteDelay)
	if err == nil && changed && side == store.Followers && !merged.Removed && !fresh {
		s.fan.LateFollow(merged)
	}
	return changed, err
}

// edgeRequest is the body of POST /internal/v1/edge: an edge to store
// on one side, with the edge note's promise that the other side has it.
type edgeRequest struct {
	Edge feed.Edge  `json:"edge"`
	Side store.Side `json:"side"`
}

// edgeHandler stores an edge delivered from the other side: here,
// replicated to the side's other members, without a note back.
func (s *Replica) edgeHandler(w http.ResponseWriter, r *http.Request) {
	var req edgeRequest
	if !transport.ReadJSON(w, r, &req, transport.MaxBody) {
		return
	}
	rec := Record{Edge: &req.Edge, Side: req.Side, Synced: true}
	if err := s.Apply(rec); err != nil {
		if errors.Is(err, ErrBadRecord) {
			transport.WriteError(w, http.StatusBadRequest, err)
			return
		}
		transport.StoreError(w, err)
		return
	}
	if err := s.Replicate(r.Context(), rec.user(), rec); err != nil {
		WriteError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// RunEdgeSync delivers due edge notes every edgeSyncInterval until ctx
// is done.
func (s *Replica) RunEdgeSync(ctx context.Context) error {
	return Every(ctx, edgeSyncInterval, func() { s.SyncEdges(ctx, s.c.Now()) })
}

// SyncEdges delivers the edge notes due at now (up to edgeSyncBatch) to
// the members of their other sides, and returns how many it delivered.
func (s *Replica) SyncEdges(ctx context.Context, now time.Time) int {
	notes, err := s.store.EdgeNotes(edgeSyncBatch)
	if err != nil {
		s.log.Warn("reading edge notes", "op", "edge-sync", "err", err)
	}
	done := 0
	for _, n := range notes {
		if n.Due.After(now) || ctx.Err() != nil {
			continue
		}
		err := s.c.OnMembers(ctx, n.User(), true, func(ctx context.Context, m string) error {
			if m == s.c.Self() {
				rec := Record{Edge: &n.Edge, Side: n.Other(), Synced: true}
				if err := s.Apply(rec); err != nil {
					return err
				}
				return s.Replicate(ctx, n.User(), rec)
			}
			return s.c.Call(ctx, http.MethodPost, m, "/internal/v1/edge", edgeRequest{Edge: n.Edge, Side: n.Other()}, nil)
		})
		var te *transport.Error
		if err != nil && !(errors.As(err, &te) && te.Status == http.StatusBadRequest) {
			s.metrics.edgeSyncErrors.Inc()
			s.log.Debug("delivering an edge note", "op", "edge-sync", "user", n.User(), "err", err)
			continue
		}
		if err != nil {
			// The other side can never take it: keep no note forever.
			s.log.Error("edge note refused by the other side; dropped", "op", "edge-sync", "user", n.User(), "err", err)
		}
		if err := s.store.DeleteEdgeNote(n); err != nil {
			s.log.Warn("deleting a delivered edge note", "op", "edge-sync", "err", err)
			continue
		}
		s.metrics.edgeSynced.Inc()
		done++
	}
	return done
}

// EdgeNotes counts the edge notes waiting (up to CountLimit), for
// status.
func (s *Replica) EdgeNotes() int {
	n, err := s.store.CountEdgeNotes(CountLimit)
	if err != nil {
		return 0
	}
	return n
}

// CountLimit caps the counts of queued things that status and metrics
// report, so a scrape reads at most this many entries however long a
// member has been down.
const CountLimit = 100_000

// Every calls f every d until ctx is done.
func Every(ctx context.Context, d time.Duration, f func()) error {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		f()
	}
}

// WriteError answers a write that is stored here but could not be
// made durable on enough replicas (503), or whose store write failed.
func WriteError(w http.ResponseWriter, err error) {
	if errors.Is(err, ErrTooFewCopies) {
		transport.WriteError(w, http.StatusServiceUnavailable, err)
		return
	}
	transport.StoreError(w, err)
}
