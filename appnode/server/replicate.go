package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"syscall"
	"time"

	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/gossip"
	"github.com/ringfront/ringfront/appnode/ring"
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
	// Synced says the edge's other side is known to have it already, so
	// the member storing it keeps no edge note (edgesync.go).
	Synced bool `json:"synced,omitempty"`
	// Fresh marks a followee's side of a follow sent on by the follow
	// request itself, whose follower's member back-fills the timeline;
	// any other arrival of a follow (a hint, a repair, an edge note)
	// is late, and pushes the author's recent posts (pushSince).
	Fresh bool `json:"fresh,omitempty"`
	// Copies are a post's outbox entries, which the replica keeps a copy
	// of (fanoutcopies.go); From is the member that made them and
	// FromStore its store id.
	Copies    []outboxCopy `json:"copies,omitempty"`
	From      string       `json:"from,omitempty"`
	FromStore string       `json:"from_store,omitempty"`
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

// check reports what makes a record impossible to apply (errBadRecord).
func (rec record) check() error {
	switch {
	case rec.User != nil && rec.Post == nil && rec.Edge == nil:
		if err := feed.ValidName(rec.User.Name); err != nil {
			return fmt.Errorf("%w: %w", errBadRecord, err)
		}
	case rec.Post != nil && rec.User == nil && rec.Edge == nil:
		if err := feed.ValidName(rec.Post.Author); err != nil {
			return fmt.Errorf("%w: %w", errBadRecord, err)
		}
	case rec.Edge != nil && rec.User == nil && rec.Post == nil:
		if rec.Side != store.Following && rec.Side != store.Followers {
			return fmt.Errorf("%w: edge side %q is not %q or %q", errBadRecord, rec.Side, store.Following, store.Followers)
		}
		if feed.ValidName(rec.Edge.Follower) != nil || feed.ValidName(rec.Edge.Followee) != nil {
			return fmt.Errorf("%w: edge %q→%q: %w", errBadRecord, rec.Edge.Follower, rec.Edge.Followee, feed.ErrBadName)
		}
	default:
		return fmt.Errorf("%w: it must carry exactly one of user, post and edge", errBadRecord)
	}
	return nil
}

// apply stores one replicated record locally.
func (s *Server) apply(rec record) error {
	if err := rec.check(); err != nil {
		return err
	}
	switch {
	case rec.User != nil:
		// Created once, but possibly on both sides of a partition:
		// every replica keeps the same winner (feed.Wins).
		_, _, err := s.store.MergeUser(*rec.User)
		return err
	case rec.Post != nil:
		ws, err := s.copyWrites(rec)
		if err != nil {
			return err
		}
		return s.store.AddPost(*rec.Post, ws...)
	default:
		s.clock.Observe(rec.Edge.Clock)
		_, err := s.mergeEdge(rec.Side, *rec.Edge, rec.Synced, rec.Fresh)
		return err
	}
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
// key's preference list, and returns nil once write_acks copies are
// durable on distinct members (the local one included). A replica that
// is dead, does not answer within the member timeout, or fails, is
// replaced by a hinted copy on the next member clockwise beyond the
// preference list that takes one (a sloppy quorum): that member keeps
// the record as a hint for the replica and hands it over when the
// replica is back, and the copy counts. Only when no member takes a
// hinted copy is the hint kept here, where it is not a copy. Replica
// calls still under way once enough copies are durable finish in the
// background (a failure becomes a hint as above).
func (s *Server) replicate(ctx context.Context, key string, rec record) error {
	rg := s.ring.Load()
	var buf [8]string
	pref := rg.Preference(buf[:0], key)
	required := s.requiredAcks(rg)
	skip := skipped(ctx)
	body := replicateRequest{Records: []record{rec}}

	type result struct {
		member string
		err    error
	}
	results := make(chan result, len(pref))
	sent := 0
	var missing []string // replicas that did not take a copy
	var later []string   // replicas passed over for failing just now
	call := func(m string, timeout time.Duration) error {
		// The write is durable here already: finish the call even if
		// the client goes away, so the copy or hint is made.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		return s.call(cctx, http.MethodPost, m, "/internal/v1/replicate", body, nil)
	}
	for _, m := range pref {
		switch {
		case m == s.self:
		case s.health.view.Liveness(m) == gossip.Dead || slices.Contains(skip, m):
			missing = append(missing, m)
		case s.suspect(m) != "":
			later = append(later, m)
		default:
			sent++
			go func() { results <- result{m, call(m, s.memberTimeout(m))} }()
		}
	}
	acks := 1
	if !slices.Contains(pref, s.self) {
		// This member answers for key without being one of its replicas
		// (a previous holder, during a move): its copy is not one of the
		// preference list's, so it must hint one for each replica.
		acks = 0
	}
	// Wait until enough copies are durable or every call has answered.
	for ; sent > 0 && acks < required; sent-- {
		r := <-results
		if r.err == nil {
			acks++
			s.answered(r.member)
			continue
		}
		missing = append(missing, r.member)
		s.replicaFailed(r.member, r.err)
	}
	used := slices.Clone(pref)
	// Copies still missing: hinted copies on members in good standing
	// first, then (last resort) the replicas and members that failed a
	// request just now: they may have recovered.
	missing = append(missing, later...)
	for _, m := range missing {
		if acks >= required {
			// Enough copies: a hint here is enough for the rest.
			if err := s.keepHint(m, rec); err != nil {
				return err
			}
			continue
		}
		holder, err := s.hintedCopy(ctx, rg, key, m, rec, &used, true)
		if err == nil && holder == "" && slices.Contains(later, m) {
			if err = call(m, lastResort(s.memberTimeout(m))); err == nil {
				s.answered(m)
				acks++
				continue
			}
			s.replicaFailed(m, err)
			err = nil
		}
		if err == nil && holder == "" {
			holder, err = s.hintedCopy(ctx, rg, key, m, rec, &used, false)
		}
		if err != nil {
			return err
		}
		if holder != "" {
			acks++
			continue
		}
		if err := s.keepHint(m, rec); err != nil {
			return err
		}
	}
	if sent > 0 {
		// Calls still under way: their failures become hints, later
		// (waited for with the repairs: a hint is not written to a
		// store that has closed).
		s.repairs.Add(1)
		go func() {
			defer s.repairs.Done()
			for ; sent > 0; sent-- {
				r := <-results
				if r.err == nil {
					s.answered(r.member)
					continue
				}
				s.replicaFailed(r.member, r.err)
				if err := s.keepHint(r.member, rec); err != nil {
					s.log.Error("keeping a hint", "op", "replicate", "peer", r.member, "err", err)
				}
			}
		}()
	}
	if acks < required {
		s.metrics.tooFewCopies.Inc()
		return fmt.Errorf("%w: %d of %d copies durable on distinct members (the others are kept as hints and delivered later)", ErrTooFewCopies, acks, required)
	}
	return nil
}

// lastResort is how long a call waits when no other member is left to
// try: a member that is only busy gets the time to answer.
func lastResort(timeout time.Duration) time.Duration { return max(4*timeout, time.Second) }

// requiredAcks is write_acks: 0 means 2, or 1 on a ring of one replica.
func (s *Server) requiredAcks(rg *ring.Ring) int {
	n := int(s.writeAcks.Load())
	if n <= 0 {
		n = min(2, rg.Replicas())
	}
	return n
}

// replicaFailed counts a failed replica call and passes the replica over
// for a while.
func (s *Server) replicaFailed(m string, err error) {
	s.metrics.replicaErrors.Inc()
	s.log.Debug("replica call failed", "op", "replicate", "peer", m, "err", err)
	var pe *peerError
	if errors.As(err, &pe) {
		return // it answered: it is up, only this call failed
	}
	why := err.Error()
	if errors.Is(err, context.DeadlineExceeded) {
		why = fmt.Sprintf("did not answer within %v", s.memberTimeout(m))
	}
	s.failed(m, why)
}

// keepHint stores rec here as a hint for member m.
func (s *Server) keepHint(m string, rec record) error {
	rec.Fresh = false // a hint arrives late
	b, err := json.Marshal(rec)
	if err == nil {
		err = s.store.AddHint(m, b)
	}
	if err != nil {
		return fmt.Errorf("keeping a hint for %s: %w", m, err)
	}
	s.metrics.hinted.Inc()
	return nil
}

// hintedCopy gives a hinted copy of rec, for the unreachable replica
// m, to the first member clockwise from key beyond its preference list
// that is not dead, not in used, and takes it; it adds the members it
// asked to used and returns the one that took it, "" if none did. When
// strict, members that failed a request just now are not asked.
func (s *Server) hintedCopy(ctx context.Context, rg *ring.Ring, key, m string, rec record, used *[]string, strict bool) (string, error) {
	rec.Fresh = false // a hint arrives late
	body := hintRequest{For: m, Records: []record{rec}}
	for _, h := range rg.Walk(nil, key) {
		if slices.Contains(*used, h) || h == s.self || s.health.view.Liveness(h) == gossip.Dead ||
			slices.Contains(skipped(ctx), h) || strict && s.suspect(h) != "" {
			continue
		}
		*used = append(*used, h)
		timeout := s.memberTimeout(h)
		if !strict {
			timeout = lastResort(timeout)
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		err := s.call(cctx, http.MethodPost, h, "/internal/v1/hint", body, nil)
		cancel()
		if err == nil {
			s.answered(h)
			s.metrics.hintedCopies.Inc()
			return h, nil
		}
		s.replicaFailed(h, err)
	}
	return "", nil
}

// hintRequest is the body of POST /internal/v1/hint: records to keep as
// hints for member For, whose copy they are.
type hintRequest struct {
	For     string   `json:"for"`
	Records []record `json:"records"`
}

// hintHandler keeps a hinted copy for another member (sloppy quorum),
// synced, then answers 204. The records are checked but not applied
// here: this member is not their replica.
func (s *Server) hintHandler(w http.ResponseWriter, r *http.Request) {
	var req hintRequest
	if !readJSONLimit(w, r, &req, maxReplicateBody) {
		return
	}
	if !s.ring.Load().Has(req.For) || req.For == s.self || len(req.Records) > maxReplicateRecords {
		writeError(w, http.StatusBadRequest, fmt.Errorf("a hint for %q (%d records): not another member, or too many records", req.For, len(req.Records)))
		return
	}
	for i, rec := range req.Records {
		if err := rec.check(); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("record %d: %w", i, err))
			return
		}
		if err := s.keepHint(req.For, rec); err != nil {
			s.storeError(w, err)
			return
		}
	}
	s.metrics.hintsHeld.Add(float64(len(req.Records)))
	w.WriteHeader(http.StatusNoContent)
}

// SetWriteAcks sets how many durable copies on distinct members a write
// needs; 0 means 2 (1 on a ring of one replica).
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
	return every(ctx, s.handoffInterval, func() { s.Handoff(ctx) })
}

// every calls f every d until ctx is done.
func every(ctx context.Context, d time.Duration, f func()) error {
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
		if m == s.self || s.health.view.Liveness(m) != gossip.Alive {
			continue
		}
		n, err := s.handoffTo(ctx, m)
		if err != nil {
			s.log.Warn("delivering hints", "op", "handoff", "peer", m, "err", err)
		}
		delivered += n
	}
	if delivered > 0 {
		s.log.Info("hints delivered", "op", "handoff", "count", delivered)
	}
	return delivered
}

// handoffTo delivers up to maxHintBatchesPerRound batches of the hints
// for member m and returns how many it delivered.
func (s *Server) handoffTo(ctx context.Context, m string) (int, error) {
	delivered := 0
	for range maxHintBatchesPerRound {
		hs, err := s.store.Hints(m, hintBatch)
		if err != nil {
			return delivered, fmt.Errorf("reading hints for %s: %w", m, err)
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
			return delivered, fmt.Errorf("delivering hints to %s: %w", m, err)
		}
		if err := s.store.DeleteHints(hs); err != nil {
			return delivered, fmt.Errorf("deleting hints delivered to %s: %w", m, err)
		}
		delivered += len(hs)
		s.metrics.handedOff.Add(float64(len(hs)))
	}
	return delivered, nil
}

// isRefused reports whether err is a refused connection: the member's
// machine answered, but no appnode listens.
func isRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED)
}
