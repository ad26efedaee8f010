package replica

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/ringfront/ringfront/appnode/gossip"
	"github.com/ringfront/ringfront/appnode/queue"
	"github.com/ringfront/ringfront/appnode/store"
	"github.com/ringfront/ringfront/appnode/transport"
)

// Hints (the store's hint queue) are delivered by a queue.Deliverer:
// to members the failure detector sees alive, a batch per call, with
// backoff after a failure. Hints for a member that left the ring
// (retarget) go to the members of each record's current preference list
// instead: stored here when this member is one of them, sent to those
// alive, and kept as hints for those that are not — and only then, in
// the same batch as those new hints, deleted. So a write acknowledged
// while its replica was away reaches the replicas it has now, even if
// that member never comes back.

// DefaultHandoffInterval is how often hints are offered to their
// members: a returning member gets its writes within about this long
// of the failure detector seeing it alive.
const DefaultHandoffInterval = 500 * time.Millisecond

const (
	// hintBatch is how many hints go in one call.
	hintBatch = 128
	// maxHintBatchesPerRound bounds one member's delivery per round, so
	// a huge backlog for one member does not starve the others.
	maxHintBatchesPerRound = 64
	// hintBackoffMin and hintBackoffMax bound the wait after a failed
	// delivery to a member, as for the fan-out outbox.
	hintBackoffMin = 250 * time.Millisecond
	hintBackoffMax = 30 * time.Second
)

func (s *Replica) newHandoff() *queue.Deliverer {
	return queue.New(queue.Config{
		Name: "handoff", Queue: s.store.Hints(),
		Batch: hintBatch, MaxBatches: maxHintBatchesPerRound,
		BackoffMin: hintBackoffMin, BackoffMax: hintBackoffMax,
		Ready: func(m string) bool {
			return m != s.c.Self() && s.c.Liveness(m) == gossip.Alive
		},
		Gone:      func(m string) bool { return m != s.c.Self() && !s.c.Ring().Has(m) },
		Send:      s.sendHints,
		Readdress: s.retarget,
		Delivered: s.metrics.handedOff,
		Log:       s.log, FailLevel: slog.LevelWarn,
	})
}

// RunHandoff delivers hints to members the failure detector sees alive,
// every handoff interval, until ctx is done.
func (s *Replica) RunHandoff(ctx context.Context) error {
	return s.hints.Run(ctx, s.handoffInterval, s.logHandoff)
}

func (s *Replica) logHandoff(n int) {
	if n > 0 {
		s.log.Info("hints delivered", "op", "handoff", "count", n)
	}
}

// Handoff makes one round of hint delivery and returns how many hints
// were delivered (or re-addressed).
func (s *Replica) Handoff(ctx context.Context) int {
	n := s.hints.Round(ctx)
	s.logHandoff(n)
	return n
}

// HintCounts counts the hints waiting here, by member.
func (s *Replica) HintCounts() (map[string]int, error) { return s.store.Hints().Counts(0) }

// sendHints delivers hints to their member.
func (s *Replica) sendHints(ctx context.Context, m string, hs []store.QueueEntry) error {
	req := replicateRequest{Records: make([]Record, 0, len(hs))}
	for _, h := range hs {
		var rec Record
		if err := json.Unmarshal(h.Value, &rec); err != nil {
			s.log.Error("undecodable hint dropped", "op", "handoff", "peer", m, "err", err)
			continue
		}
		req.Records = append(req.Records, rec)
	}
	if err := s.c.Call(ctx, http.MethodPost, m, "/internal/v1/replicate", req, nil); err != nil {
		return fmt.Errorf("delivering hints to %s: %w", m, err)
	}
	return nil
}

// retarget moves hints for gone (no longer a member) to the records'
// current preference lists.
func (s *Replica) retarget(ctx context.Context, gone string, hs []store.QueueEntry) error {
	rg := s.c.Ring()
	send := map[string][]Record{}
	raw := map[string][][]byte{}
	for _, h := range hs {
		var rec Record
		if err := json.Unmarshal(h.Value, &rec); err != nil || rec.user() == "" {
			s.log.Error("undecodable hint dropped", "op", "handoff", "peer", gone, "err", err)
			continue
		}
		var buf [8]string
		for _, m := range rg.Preference(buf[:0], rec.user()) {
			if m == s.c.Self() {
				if err := s.Apply(rec); err != nil && !errors.Is(err, ErrBadRecord) {
					return fmt.Errorf("storing a hint for %s here: %w", gone, err)
				}
				continue
			}
			send[m] = append(send[m], rec)
			raw[m] = append(raw[m], h.Value)
		}
	}
	keep := map[string][][]byte{}
	for m, recs := range send {
		if s.c.Alive(m) {
			err := s.c.Call(ctx, http.MethodPost, m, "/internal/v1/replicate", replicateRequest{Records: recs}, nil)
			if err == nil {
				s.metrics.handedOff.Add(float64(len(recs)))
				continue
			}
			s.log.Warn("delivering hints of a removed member", "op", "handoff", "peer", m, "from", gone, "err", err)
		}
		keep[m] = raw[m]
	}
	if err := s.store.Hints().Move(hs, keep); err != nil {
		return err
	}
	s.log.Info("hints of a removed member re-addressed", "op", "handoff", "peer", gone, "count", len(hs))
	return nil
}

// user returns the user whose records rec belongs to: the user's own
// name, the post's author, or the user on whose side the edge is
// stored.
func (rec Record) user() string {
	switch {
	case rec.User != nil:
		return rec.User.Name
	case rec.Post != nil:
		return rec.Post.Author
	case rec.Edge != nil && rec.Side == store.Followers:
		return rec.Edge.Followee
	case rec.Edge != nil:
		return rec.Edge.Follower
	}
	return ""
}

// HandoffRequest is the body of POST /internal/v1/handoff: hand the
// hints for To over now.
type HandoffRequest struct {
	To string `json:"to"`
}

// HandoffAnswer says how many hints were delivered and how many are
// left (a long backlog takes more than one call).
type HandoffAnswer struct {
	Delivered int `json:"delivered"`
	Left      int `json:"left"`
}

// handoffHandler delivers this member's hints for another member at
// once, whatever the failure detector thinks of it: that member just
// started and is catching up.
func (s *Replica) handoffHandler(w http.ResponseWriter, r *http.Request) {
	var req HandoffRequest
	if !transport.ReadJSON(w, r, &req, transport.MaxBody) {
		return
	}
	if !s.c.Ring().Has(req.To) || req.To == s.c.Self() {
		transport.WriteError(w, http.StatusBadRequest, fmt.Errorf("hand hints over to %q: not another member", req.To))
		return
	}
	n, err := s.hints.To(r.Context(), req.To)
	if err != nil && n == 0 {
		transport.WriteError(w, http.StatusBadGateway, err)
		return
	}
	left, err := s.store.Hints().CountFor(req.To)
	if err != nil {
		transport.StoreError(w, err)
		return
	}
	transport.WriteJSON(w, http.StatusOK, HandoffAnswer{Delivered: n, Left: left})
}
