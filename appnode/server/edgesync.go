package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/store"
)

// A follow edge is stored on both its users' sides, on two sets of
// members, and the request that makes it can lose either answer: the
// followee's side may store it while the follower's side never hears,
// or the other way round. So each side that stores a change it does not
// know the other side has keeps an edge note (store/edgenotes.go) in the
// same synced batch, on every one of its replicas; RunEdgeSync delivers
// due notes to the other side's members, which merge the edge (marked
// synced: they keep no note back) and answer. The note is due
// edgeNoteDelay after the change, by which time the follow request has
// usually written the other side itself, so the delivery changes
// nothing and costs one call.

const (
	// edgeNoteDelay is how long a note waits before it is delivered: a
	// follow request writes the other side within a few member timeouts.
	edgeNoteDelay = 2 * time.Second
	// edgeSyncInterval is how often due notes are looked for.
	edgeSyncInterval = 500 * time.Millisecond
	// edgeSyncBatch bounds the notes read per round.
	edgeSyncBatch = 256
)

// mergeEdge stores edge e on side here, and an edge note unless synced
// says the other side has it already. A follow stored on the
// followee's side that is not fresh (see record.Fresh) came late:
// pushSince. It reports whether the edge changed.
func (s *Server) mergeEdge(side store.Side, e feed.Edge, synced, fresh bool) (bool, error) {
	if side == store.Followers {
		// Under the followee's author lock, so a post and a follow of
		// its author are ordered (see storePost).
		defer s.fan.lockAuthor(e.Followee)()
	}
	merged, changed, err := s.store.MergeEdge(side, e, !synced, edgeNoteDelay)
	if err == nil && changed && side == store.Followers && !merged.Removed && !fresh {
		s.pushSince(merged)
	}
	return changed, err
}

// latePush is how many of the author's newest posts pushSince pushes:
// as many as a follow's own back-fill (fanout's backfill), at most one
// delivery's worth.
func (s *Server) latePush() int {
	return min(max(int(s.fan.inboxMax.Load())/4, 1), maxDeliveryPosts)
}

// pushSince puts the author's newest posts into the follower's inboxes,
// as a back-fill, when a follow reaches the followee's side late. A
// member that took the author's posts before it learnt of the follow
// (across a partition, or behind on replication) pushed them only to
// the followers it knew then; when the follow reaches it, this makes up
// for it. Which posts came after the follow cannot be told from clocks
// that may disagree, so it pushes the newest ones, like the follow's own
// back-fill; pushing a post twice is harmless. The caller holds the
// author's lock.
func (s *Server) pushSince(e feed.Edge) {
	recent, _, err := s.store.Posts(e.Followee, feed.ID{}, s.latePush())
	if err != nil {
		s.log.Warn("pushing posts to a new follower", "op", "fanout", "user", e.Follower, "peer", e.Followee, "err", err)
		return
	}
	if len(recent) == 0 {
		return
	}
	d := store.InboxDelivery{Users: []string{e.Follower}, Posts: recent, Backfill: true}
	var writes []store.Write
	for m := range splitByMember(s.ring.Load(), d) {
		if m == s.self {
			if err := s.deliverHere(d); err != nil {
				s.log.Warn("pushing posts to a new follower", "op", "fanout", "user", e.Follower, "err", err)
			}
			continue
		}
		w, _, err := s.store.OutboxWrite(m, d)
		if err != nil {
			s.log.Warn("pushing posts to a new follower", "op", "fanout", "user", e.Follower, "err", err)
			return
		}
		writes = append(writes, w)
	}
	if len(writes) > 0 {
		if err := s.store.Queue(writes...); err != nil {
			s.log.Warn("pushing posts to a new follower", "op", "fanout", "user", e.Follower, "err", err)
			return
		}
		s.kickFanout()
	}
}

// edgeRequest is the body of POST /internal/v1/edge: an edge to store
// on one side, with the edge note's promise that the other side has it.
type edgeRequest struct {
	Edge feed.Edge  `json:"edge"`
	Side store.Side `json:"side"`
}

// edgeHandler stores an edge delivered from the other side: here,
// replicated to the side's other members, without a note back.
func (s *Server) edgeHandler(w http.ResponseWriter, r *http.Request) {
	var req edgeRequest
	if !readJSON(w, r, &req) {
		return
	}
	rec := record{Edge: &req.Edge, Side: req.Side, Synced: true}
	if err := s.apply(rec); err != nil {
		if errors.Is(err, errBadRecord) {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		s.storeError(w, err)
		return
	}
	if err := s.replicate(r.Context(), rec.user(), rec); err != nil {
		s.replicaError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// RunEdgeSync delivers due edge notes every edgeSyncInterval until ctx
// is done.
func (s *Server) RunEdgeSync(ctx context.Context) error {
	return every(ctx, edgeSyncInterval, func() { s.SyncEdges(ctx, time.Now()) })
}

// SyncEdges delivers the edge notes due at now (up to edgeSyncBatch) to
// the members of their other sides, and returns how many it delivered.
func (s *Server) SyncEdges(ctx context.Context, now time.Time) int {
	notes, err := s.store.EdgeNotes(edgeSyncBatch)
	if err != nil {
		s.log.Warn("reading edge notes", "op", "edge-sync", "err", err)
	}
	done := 0
	for _, n := range notes {
		if n.Due.After(now) || ctx.Err() != nil {
			continue
		}
		err := s.onMembers(ctx, n.User(), true, func(ctx context.Context, m string) error {
			if m == s.self {
				rec := record{Edge: &n.Edge, Side: n.Other(), Synced: true}
				if err := s.apply(rec); err != nil {
					return err
				}
				return s.replicate(ctx, n.User(), rec)
			}
			return s.call(ctx, http.MethodPost, m, "/internal/v1/edge", edgeRequest{Edge: n.Edge, Side: n.Other()}, nil)
		})
		var pe *peerError
		if err != nil && !(errors.As(err, &pe) && pe.Status == http.StatusBadRequest) {
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

// edgeNotes counts the edge notes waiting, for status.
func (s *Server) edgeNotes() int {
	n, err := s.store.CountEdgeNotes(outboxCountLimit)
	if err != nil {
		return 0
	}
	return n
}
