package replica

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/peer"
	"github.com/ringfront/ringfront/appnode/ring"
	"github.com/ringfront/ringfront/appnode/store"
	"github.com/ringfront/ringfront/appnode/transport"
)

// Record is one replicated write: exactly one of User, Post and Edge is
// set. Every kind merges idempotently, so a record delivered twice (a
// retried call, a hint delivered after the call did arrive) is harmless.
type Record struct {
	User *feed.User `json:"user,omitempty"`
	Post *feed.Post `json:"post,omitempty"`
	Edge *feed.Edge `json:"edge,omitempty"`
	// Side is the edge's side (store.Following or store.Followers).
	Side store.Side `json:"side,omitempty"`
	// Synced says the edge's other side is known to have it already, so
	// the member storing it keeps no edge note (edges.go).
	Synced bool `json:"synced,omitempty"`
	// Fresh marks a followee's side of a follow sent on by the follow
	// request itself, whose follower's member back-fills the timeline;
	// any other arrival of a follow (a hint, a repair, an edge note)
	// is late, and pushes the author's recent posts (pushSince).
	Fresh bool `json:"fresh,omitempty"`
	// Copies are a post's outbox entries, which the replica keeps a copy
	// of (package fanout); From is the member that made them and
	// FromStore its store id.
	Copies    []OutboxCopy `json:"copies,omitempty"`
	From      string       `json:"from,omitempty"`
	FromStore string       `json:"from_store,omitempty"`
}

// OutboxCopy is one of a post's outbox entries, as the post's Record
// carries it to the post's other replicas (package fanout keeps them).
type OutboxCopy struct {
	Member   string              `json:"member"`
	Delivery store.InboxDelivery `json:"delivery"`
}

// replicateRequest is the body of POST /internal/v1/replicate.
type replicateRequest struct {
	Records []Record `json:"records"`
}

// maxReplicateRecords bounds one replicate call (a batch of hints).
const maxReplicateRecords = 256

// MaxRecordsBody fits maxReplicateRecords of the largest records.
const MaxRecordsBody = maxReplicateRecords * 4 << 10

// ErrTooFewCopies is the error of a write that was stored on fewer
// replicas than write_acks requires; the missing copies are hinted and
// will arrive, but the write is not acknowledged.
var ErrTooFewCopies = errors.New("write stored on too few replicas")

// check reports what makes a record impossible to apply (ErrBadRecord).
func (rec Record) check() error {
	switch {
	case rec.User != nil && rec.Post == nil && rec.Edge == nil:
		if err := feed.ValidName(rec.User.Name); err != nil {
			return fmt.Errorf("%w: %w", ErrBadRecord, err)
		}
	case rec.Post != nil && rec.User == nil && rec.Edge == nil:
		if err := feed.ValidName(rec.Post.Author); err != nil {
			return fmt.Errorf("%w: %w", ErrBadRecord, err)
		}
	case rec.Edge != nil && rec.User == nil && rec.Post == nil:
		if rec.Side != store.Following && rec.Side != store.Followers {
			return fmt.Errorf("%w: edge side %q is not %q or %q", ErrBadRecord, rec.Side, store.Following, store.Followers)
		}
		if feed.ValidName(rec.Edge.Follower) != nil || feed.ValidName(rec.Edge.Followee) != nil {
			return fmt.Errorf("%w: edge %q→%q: %w", ErrBadRecord, rec.Edge.Follower, rec.Edge.Followee, feed.ErrBadName)
		}
	default:
		return fmt.Errorf("%w: it must carry exactly one of user, post and edge", ErrBadRecord)
	}
	return nil
}

// Apply stores one replicated record locally.
func (s *Replica) Apply(rec Record) error {
	if err := rec.check(); err != nil {
		return err
	}
	switch {
	case rec.User != nil:
		// Created once, but possibly on both sides of a partition, and
		// its tokens rotated anywhere: every replica keeps the same
		// merge (feed.Join).
		_, _, err := s.store.MergeUser(*rec.User)
		return err
	case rec.Post != nil:
		ws, err := s.fan.PostWrites(rec)
		if err != nil {
			return err
		}
		return s.store.AddPost(*rec.Post, ws...)
	default:
		s.c.Clock().Observe(rec.Edge.Clock)
		_, err := s.MergeEdge(rec.Side, *rec.Edge, rec.Synced, rec.Fresh)
		return err
	}
}

// ErrBadRecord marks a record that can never be applied.
var ErrBadRecord = errors.New("bad record")

// replicateHandler is the node-to-node write: apply every record,
// synced, then answer 204.
func (s *Replica) replicateHandler(w http.ResponseWriter, r *http.Request) {
	var req replicateRequest
	if !transport.ReadJSON(w, r, &req, MaxRecordsBody) {
		return
	}
	if len(req.Records) > maxReplicateRecords {
		transport.WriteError(w, http.StatusBadRequest, fmt.Errorf("%d records, at most %d", len(req.Records), maxReplicateRecords))
		return
	}
	for i, rec := range req.Records {
		if err := s.Apply(rec); err != nil {
			if errors.Is(err, ErrBadRecord) {
				transport.WriteError(w, http.StatusBadRequest, fmt.Errorf("record %d: %w", i, err))
				return
			}
			transport.StoreError(w, fmt.Errorf("applying record %d: %w", i, err))
			return
		}
	}
	s.metrics.replicated.Add(float64(len(req.Records)))
	w.WriteHeader(http.StatusNoContent)
}

// Replicate sends rec, already stored here, to the other members of
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
func (s *Replica) Replicate(ctx context.Context, key string, rec Record) error {
	rg := s.c.Ring()
	var buf [8]string
	pref := rg.Preference(buf[:0], key)
	required := s.RequiredAcks(rg)
	skip := peer.Skipped(ctx)
	body := replicateRequest{Records: []Record{rec}}

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
		return s.c.Call(cctx, http.MethodPost, m, "/internal/v1/replicate", body, nil)
	}
	for _, m := range pref {
		switch {
		case m == s.c.Self():
		case s.c.Dead(m) || slices.Contains(skip, m):
			missing = append(missing, m)
		case s.c.Suspect(m) != "":
			later = append(later, m)
		default:
			sent++
			go func() { results <- result{m, call(m, s.c.MemberTimeout(m))} }()
		}
	}
	acks := 1
	if !slices.Contains(pref, s.c.Self()) {
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
			s.c.Answered(r.member)
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
			if err := s.KeepHint(m, rec); err != nil {
				return err
			}
			continue
		}
		holder, err := s.hintedCopy(ctx, rg, key, m, rec, &used, true)
		if err == nil && holder == "" && slices.Contains(later, m) {
			if err = call(m, peer.LastResort(s.c.MemberTimeout(m))); err == nil {
				s.c.Answered(m)
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
		if err := s.KeepHint(m, rec); err != nil {
			return err
		}
	}
	if sent > 0 {
		// Calls still under way: their failures become hints, later.
		s.background.Add(1)
		go func() {
			defer s.background.Done()
			for ; sent > 0; sent-- {
				r := <-results
				if r.err == nil {
					s.c.Answered(r.member)
					continue
				}
				s.replicaFailed(r.member, r.err)
				if err := s.KeepHint(r.member, rec); err != nil {
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

// RequiredAcks is write_acks: 0 means 2, or 1 on a ring of one replica.
func (s *Replica) RequiredAcks(rg *ring.Ring) int {
	n := int(s.writeAcks.Load())
	if n <= 0 {
		n = min(2, rg.Replicas())
	}
	return n
}

// replicaFailed counts a failed replica call and passes the replica over
// for a while.
func (s *Replica) replicaFailed(m string, err error) {
	s.metrics.replicaErrors.Inc()
	s.log.Debug("replica call failed", "op", "replicate", "peer", m, "err", err)
	s.c.CallFailed(m, err)
}

// KeepHint stores rec here as a hint for member m.
func (s *Replica) KeepHint(m string, rec Record) error {
	rec.Fresh = false // a hint arrives late
	b, err := json.Marshal(rec)
	if err == nil {
		err = s.store.Hints().Add(m, b)
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
func (s *Replica) hintedCopy(ctx context.Context, rg *ring.Ring, key, m string, rec Record, used *[]string, strict bool) (string, error) {
	rec.Fresh = false // a hint arrives late
	body := hintRequest{For: m, Records: []Record{rec}}
	for _, h := range rg.Walk(nil, key) {
		if slices.Contains(*used, h) || h == s.c.Self() || s.c.Dead(h) ||
			slices.Contains(peer.Skipped(ctx), h) || strict && s.c.Suspect(h) != "" {
			continue
		}
		*used = append(*used, h)
		timeout := s.c.MemberTimeout(h)
		if !strict {
			timeout = peer.LastResort(timeout)
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		err := s.c.Call(cctx, http.MethodPost, h, "/internal/v1/hint", body, nil)
		cancel()
		if err == nil {
			s.c.Answered(h)
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
	Records []Record `json:"records"`
}

// hintHandler keeps a hinted copy for another member (sloppy quorum),
// synced, then answers 204. The records are checked but not applied
// here: this member is not their replica.
func (s *Replica) hintHandler(w http.ResponseWriter, r *http.Request) {
	var req hintRequest
	if !transport.ReadJSON(w, r, &req, MaxRecordsBody) {
		return
	}
	if !s.c.Ring().Has(req.For) || req.For == s.c.Self() || len(req.Records) > maxReplicateRecords {
		transport.WriteError(w, http.StatusBadRequest, fmt.Errorf("a hint for %q (%d records): not another member, or too many records", req.For, len(req.Records)))
		return
	}
	for i, rec := range req.Records {
		if err := rec.check(); err != nil {
			transport.WriteError(w, http.StatusBadRequest, fmt.Errorf("record %d: %w", i, err))
			return
		}
		if err := s.KeepHint(req.For, rec); err != nil {
			transport.StoreError(w, err)
			return
		}
	}
	s.metrics.hintsHeld.Add(float64(len(req.Records)))
	w.WriteHeader(http.StatusNoContent)
}

// SetWriteAcks sets how many durable copies on distinct members a write
// needs; 0 means 2 (1 on a ring of one replica).
func (s *Replica) SetWriteAcks(n int) { s.writeAcks.Store(int32(n)) }
