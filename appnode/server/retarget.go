package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/ringfront/ringfront/appnode/store"
)

// Hints for a member that left the ring: nobody will ever take them
// there. Handoff hands them to the members of each record's current
// preference list instead: stored here when this member is one of them,
// sent to those alive, and kept as hints for those that are not — and
// only then, in the same batch as those new hints, deleted. So a write
// acknowledged while its replica was away reaches the replicas it has
// now, even if that member never comes back.

// user returns the user whose records rec belongs to: the user's own
// name, the post's author, or the user on whose side the edge is
// stored.
func (rec record) user() string {
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

// retarget moves up to maxHintBatchesPerRound batches of the hints for
// gone (no longer a member) to the records' current preference lists,
// and returns how many hints it moved.
func (s *Server) retarget(ctx context.Context, gone string) (int, error) {
	moved := 0
	for range maxHintBatchesPerRound {
		hs, err := s.store.Hints(gone, hintBatch)
		if err != nil {
			return moved, err
		}
		if len(hs) == 0 {
			return moved, nil
		}
		rg := s.ring.Load()
		send := map[string][]record{}
		raw := map[string][][]byte{}
		for _, h := range hs {
			var rec record
			if err := json.Unmarshal(h.Record, &rec); err != nil || rec.user() == "" {
				s.log.Error("undecodable hint dropped", "op", "handoff", "peer", gone, "err", err)
				continue
			}
			var buf [8]string
			for _, m := range rg.Preference(buf[:0], rec.user()) {
				if m == s.self {
					if err := s.apply(rec); err != nil && !errors.Is(err, errBadRecord) {
						return moved, fmt.Errorf("storing a hint for %s here: %w", gone, err)
					}
					continue
				}
				send[m] = append(send[m], rec)
				raw[m] = append(raw[m], h.Record)
			}
		}
		keep := map[string][][]byte{}
		for m, recs := range send {
			if s.alive(m) {
				err := s.call(ctx, http.MethodPost, m, "/internal/v1/replicate", replicateRequest{Records: recs}, nil)
				if err == nil {
					s.metrics.handedOff.Add(float64(len(recs)))
					continue
				}
				s.log.Warn("delivering hints of a removed member", "op", "handoff", "peer", m, "from", gone, "err", err)
			}
			keep[m] = raw[m]
		}
		if err := s.store.MoveHints(hs, keep); err != nil {
			return moved, err
		}
		moved += len(hs)
	}
	return moved, nil
}
