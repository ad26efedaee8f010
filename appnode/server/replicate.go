package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/store"
)

// record is one replicated write: exactly one of User, Post and Edge is
// set. Every kind merges idempotently, so a record delivered twice (a
// retried call, a hint delivered after the call did arrive) is harmless.
type record struct {
	User *feed.User `json:"user,omitempty"`
	Post *feed.Post `json:"post,omitempty"`
	Edge *feed.Edge `json:"edge,omitempty"`
	// Side is the edge's side (store.Following or store.Followers).
	Side store.Side `json:"side,omitempty"`
}

// replicateRequest is the body of POST /internal/v1/replicate.
type replicateRequest struct {
	Records []record `json:"records"`
}

// maxReplicateRecords bounds one replicate call (a batch of hints).
const maxReplicateRecords = 256

// maxReplicateBody fits maxReplicateRecords of the largest records.
const maxReplicateBody = maxReplicateRecords * 4 << 10

// ErrTooFewCopies is the error of a write that was stored on fewer
// replicas than write_acks requires; the missing copies are hinted and
// will arrive, but the write is not acknowledged.
var ErrTooFewCopies = errors.New("write stored on too few replicas")

// apply stores one replicated record locally.
func (s *Server) apply(rec record) error {
	switch {
	case rec.User != nil && rec.Post == nil && rec.Edge == nil:
		if err := feed.ValidName(rec.User.Name); err != nil {
			return fmt.Errorf("%w: %w", errBadRecord, err)
		}
		// Created once, but possibly on both sides of a partition:
		// every replica keeps the same winner (feed.Wins).
		_, _, err := s.store.MergeUser(*rec.User)
		return err
	case rec.Post != nil && rec.User == nil && rec.Edge == nil:
		if err := feed.ValidName(rec.Post.Author); err != nil {
			return fmt.Errorf("%w: %w", errBadRecord, err)
		}
		return s.store.AddPost(*rec.Post)
	case rec.Edge != nil && rec.User == nil && rec.Post == nil:
		if rec.Side != store.Following && rec.Side != store.Followers {
			return fmt.Errorf("%w: edge side %q is not %q or %q", errBadRecord, rec.Side, store.Following, store.Followers)
		}
		if feed.ValidName(rec.Edge.Follower) != nil || feed.ValidName(rec.Edge.Followee) != nil {
			return fmt.Errorf("%w: edge %q→%q: %w", errBadRecord, rec.Edge.Follower, rec.Edge.Followee, feed.ErrBadName)
		}
		s.clock.Observe(rec.Edge.Clock)
		_, err := s.store.MergeEdge(rec.Side, *rec.Edge)
		return err
	}
	return fmt.Errorf("%w: it must carry exactly one of user, post and edge", errBadRecord)
}

// errBadRecord marks a record that can never be applied.
var errBadRecord = errors.New("bad record")

// replicateHandler is the node-to-node write: apply every record,
// synced, then answer 204.
func (s *Server) replicateHandler(w http.ResponseWriter, r *http.Request) {
	var req replicateRequest
	if !readJSONLimit(w, r, &req, maxReplicateBody) {
		return
	}
	if len(req.Records) > maxReplicateRecords {
		writeError(w, http.StatusBadRequest, fmt.Errorf("%d records, at most %d", len(req.Records), maxReplicateRecords))
		return
	}
	for i, rec := range req.Records {
		if err := s.apply(rec); err != nil {
			if errors.Is(err, errBadRecord) {
				writeError(w, http.StatusBadRequest, fmt.Errorf("record %d: %w", i, err))
				return
			}
			s.storeError(w, fmt.Errorf("applying record %d: %w", i, err))
			return
		}
	}
	s.metrics.replicated.Add(float64(len(req.Records)))
	w.WriteHeader(http.StatusNoContent)
}

// replicate sends rec, already stored here, to the other members of
// key's preference list, and returns nil once WriteAcks copies are
// durable (the local one included). A member that is dead, or whose
// call fails, gets a durable hint instead; a hint is not a copy.
func (s *Server) replicate(ctx context.Context, key string, rec record) error {
	var buf [8]string
	pref := s.ring.Load().Preference(buf[:0], key)
	required := int(s.writeAcks.Load())
	skip := skipped(ctx)
	up := func(m string) bool { return s.alive(m) && !slices.Contains(skip, m) }
	live := 0
	for _, m := range pref {
		if m == s.self || up(m) {
			live++
		}
	}
	allLive := required == 0
	acks, refused := 1, 0
	var (
		mu      sync.Mutex // guards acks and hintErr
		hintErr error
		wg      sync.WaitGroup
	)
	hint := func(m string, why error) {
		b, err := json.Marshal(rec)
		if err == nil {
			err = s.store.AddHint(m, b)
		}
		if err != nil {
			mu.Lock()
			hintErr = errors.Join(hintErr, fmt.Errorf("keeping a hint for %s: %w", m, err))
			mu.Unlock()
			return
		}
		s.metrics.hinted.Inc()
		s.log.Debug("hinted", "op", "replicate", "peer", m, "user", key, "err", why)
	}
	ctx, cancel := context.WithTimeout(ctx, peerTimeout)
	defer cancel()
	for _, m := range pref {
		if m == s.self {
			continue
		}
		if !up(m) {
			hint(m, errors.New("dead or unreachable"))
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The write is durable here already: finish the call even
			// if the client goes away, so the copy or hint is made.
			err := s.call(context.WithoutCancel(ctx), http.MethodPost, m, "/internal/v1/replicate", replicateRequest{Records: []record{rec}}, nil)
			if err != nil {
				s.metrics.replicaErrors.Inc()
				hint(m, err)
				if isRefused(err) {
					// Nothing listens there: the member is down, the
					// detector just has not said so yet.
					mu.Lock()
					refused++
					mu.Unlock()
				}
				return
			}
			mu.Lock()
			acks++
			mu.Unlock()
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if hintErr != nil {
		return hintErr
	}
	if allLive {
		// "Every live replica": one that refused the connection is not.
		required = max(live-refused, 1)
	}
	if acks < required {
		return fmt.Errorf("%w: %d of %d copies durable (the others are kept as hints and delivered later)", ErrTooFewCopies, acks, required)
	}
	return nil
}

// SetWriteAcks sets how many durable copies a write needs; 0 means
// every live replica.
func (s *Server) SetWriteAcks(n int) { s.writeAcks.Store(int32(n)) }

// DefaultHandoffInterval is how often hints are offered to their
// members: a returning member gets its writes within about this long
// of the failure detector seeing it alive.
const DefaultHandoffInterval = 500 * time.Millisecond

// hintBatch is how many hints go in one call.
const hintBatch = 128

// maxHintBatchesPerRound bounds one member's delivery per round, so a
// huge backlog for one member does not starve the others.
const maxHintBatchesPerRound = 64

// RunHandoff delivers hints to members the failure detector sees alive,
// every handoff interval, until ctx is done.
func (s *Server) RunHandoff(ctx context.Context) error {
	t := time.NewTicker(s.handoffInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		s.Handoff(ctx)
	}
}

// Handoff makes one round of hint delivery and returns how many hints
// were delivered.
func (s *Server) Handoff(ctx context.Context) int {
	members, err := s.store.HintMembers()
	if err != nil {
		s.log.Warn("listing hinted members", "op", "handoff", "err", err)
		return 0
	}
	delivered := 0
	for _, m := range members {
		if m != s.self && !s.ring.Load().Has(m) {
			// Left the ring: its hints go to the records' replicas now.
			n, err := s.retarget(ctx, m)
			if err != nil {
				s.log.Warn("re-addressing the hints of a removed member", "op", "handoff", "peer", m, "err", err)
			}
			if n > 0 {
				s.log.Info("hints of a removed member re-addressed", "op", "handoff", "peer", m, "count", n)
			}
			continue
		}
		if m == s.self || !s.alive(m) {
			continue
		}
		for range maxHintBatchesPerRound {
			hs, err := s.store.Hints(m, hintBatch)
			if err != nil {
				s.log.Warn("reading hints", "op", "handoff", "peer", m, "err", err)
				break
			}
			if len(hs) == 0 {
				break
			}
			req := replicateRequest{Records: make([]record, 0, len(hs))}
			for _, h := range hs {
				var rec record
				if err := json.Unmarshal(h.Record, &rec); err != nil {
					s.log.Error("undecodable hint dropped", "op", "handoff", "peer", m, "err", err)
					continue
				}
				req.Records = append(req.Records, rec)
			}
			if err := s.call(ctx, http.MethodPost, m, "/internal/v1/replicate", req, nil); err != nil {
				s.log.Warn("delivering hints", "op", "handoff", "peer", m, "err", err)
				break
			}
			if err := s.store.DeleteHints(hs); err != nil {
				s.log.Warn("deleting delivered hints", "op", "handoff", "peer", m, "err", err)
				break
			}
			delivered += len(hs)
			s.metrics.handedOff.Add(float64(len(hs)))
		}
	}
	if delivered > 0 {
		s.log.Info("hints delivered", "op", "handoff", "count", delivered)
	}
	return delivered
}

// isRefused reports whether err is a refused connection: the member's
// machine answered, but no appnode listens.
func isRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED)
}
