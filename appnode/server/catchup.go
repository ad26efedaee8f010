package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Catching up. A member that starts cannot know what it missed while it
// was down (or whether its disk is new): writes acknowledged meanwhile
// are on the other replicas, and as hints on the members that held
// hinted copies for it. Until it has caught up it says so in its gossip
// metadata, and the others (and itself) send its users' requests to a
// caught-up replica when one is alive; when none is, it answers, but
// only after merging the user's records with the other live replicas
// (catchUpUser), never from its own store alone. Catching up is: every
// live member hands over the hints it holds for this one, then
// anti-entropy with every live member, repeated until a round finds
// nothing to copy.

// Timings of the catch-up loop.
const (
	// maxCatchUpCalls bounds the hand-off calls and anti-entropy rounds
	// made with one member in a catch-up: at 1000 users a round, a
	// million users.
	maxCatchUpCalls = 1000
	// pauseTick and pauseLimit detect that this process was paused
	// (SIGSTOP, a stalled VM) or starved: a tick that comes pauseLimit
	// late means the others may have taken this member for dead and
	// written elsewhere meanwhile.
	pauseTick  = 250 * time.Millisecond
	pauseLimit = time.Second
)

// RunCatchUp catches this member up (see above) at start, and again
// whenever it may have missed writes: a member it had taken for dead is
// back (KickCatchUp: the two were cut off, so it catches up with that
// member), or this process was paused longer than pauseLimit (it
// catches up with everyone). Until ctx is done.
func (s *Server) RunCatchUp(ctx context.Context) error {
	if s.catchingUp.Load() {
		s.catchUp(ctx, "start", nil)
	}
	t := time.NewTicker(pauseTick)
	defer t.Stop()
	last := time.Now()
	for {
		s.awake.Store(int64(time.Since(s.started)))
		select {
		case <-ctx.Done():
			return nil
		case <-s.catchUpKick:
			s.kickMu.Lock()
			peers := s.kicked
			s.kicked = nil
			s.kickMu.Unlock()
			s.catchUp(ctx, fmt.Sprintf("%s back after they were taken for dead", strings.Join(peers, ", ")), peers)
		case <-t.C:
			if gap := time.Since(last); gap > pauseLimit {
				s.setCatchingUp(true)
				s.catchUp(ctx, fmt.Sprintf("this member was paused or starved for %.1fs", gap.Seconds()), nil)
			}
		}
		last = time.Now()
	}
}

// notePause is called as a request starts: when RunCatchUp's clock has
// not ticked for pauseLimit this process was just paused, and the
// request must not be answered from this member's store alone before
// RunCatchUp has noticed.
func (s *Server) notePause() {
	if s.awake.Load() == 0 || s.catchingUp.Load() {
		return
	}
	if time.Since(s.started)-time.Duration(s.awake.Load()) > pauseLimit {
		s.setCatchingUp(true)
	}
}

// KickCatchUp marks this member as catching up at once, and has
// RunCatchUp catch it up with member, which is back after this member
// took it for dead.
func (s *Server) KickCatchUp(member string) {
	s.setCatchingUp(true)
	s.kickMu.Lock()
	if !slices.Contains(s.kicked, member) {
		s.kicked = append(s.kicked, member)
	}
	s.kickMu.Unlock()
	select {
	case s.catchUpKick <- struct{}{}:
	default: // a catch-up is due already; it will take member along
	}
}

// catchUp makes catch-up rounds with peers (nil: every member) until
// one finds nothing to copy, then reports this member as caught up
// unless another catch-up is due.
func (s *Server) catchUp(ctx context.Context, why string, peers []string) {
	start := time.Now()
	s.setCatchingUp(true)
	if peers == nil {
		peers = s.ring.Load().Members()
	}
	// One pass: every peer's hints for this member, then anti-entropy
	// with every peer, again while a round was cut short by its bounds.
	// What differs after that is writes still on their way, which
	// replication brings.
	hints, users, rounds := 0, 0, 0
	hintsIn := make(chan struct{})
	s.hintsIn.Store(&hintsIn)
	for _, m := range peers {
		if m == s.self || !s.alive(m) {
			continue
		}
		for range maxCatchUpCalls {
			var ans handoffAnswer
			if err := s.call(ctx, http.MethodPost, m, "/internal/v1/handoff", handoffRequest{To: s.self}, &ans); err != nil {
				s.log.Debug("asking for hints", "op", "catch-up", "peer", m, "err", err)
				break
			}
			hints += ans.Delivered
			if ans.Left == 0 || ans.Delivered == 0 {
				break
			}
		}
	}
	close(hintsIn)
	for _, m := range peers {
		if m == s.self || !s.alive(m) {
			continue
		}
		for range maxCatchUpCalls {
			rounds++
			n, truncated, err := s.antiEntropyRound(ctx, m)
			users += n
			if err != nil {
				s.log.Debug("anti-entropy", "op", "catch-up", "peer", m, "err", err)
			}
			if !truncated || err != nil || ctx.Err() != nil {
				break
			}
		}
	}
	if ctx.Err() != nil {
		return
	}
	s.kickMu.Lock()
	more := len(s.kicked) > 0
	if !more {
		s.setCatchingUp(false)
	}
	s.kickMu.Unlock()
	s.metrics.catchUps.Inc()
	s.log.Info("caught up", "op", "catch-up", "why", why, "seconds", time.Since(start).Seconds(), "hints", hints, "users", users, "rounds", rounds)
}

// setCatchingUp records whether this member is catching up, and tells
// the failure detector (which gossips it).
func (s *Server) setCatchingUp(on bool) {
	s.catchingUp.Store(on)
	s.catchUpHook(on)
}

// CatchingUp reports whether this member is still catching up.
func (s *Server) CatchingUp() bool { return s.catchingUp.Load() }

// catchUpUser merges user name's records (the page r reads) with the
// other live replicas before a member that has not caught up answers
// for name itself. An error means they could not be merged: the member
// must not answer from its own store alone.
func (s *Server) catchUpUser(ctx context.Context, r *http.Request, name string) error {
	limit, before, err := page(r)
	if err != nil {
		return nil // the handler answers 400
	}
	ctx, cancel := context.WithTimeout(ctx, lastResort(time.Duration(s.peerTimeoutFloor.Load())))
	defer cancel()
	// The hints the others hold for this member come first: a write
	// whose copy for this member went to a hinted holder is there, and
	// nowhere else if its coordinator is gone.
	if p := s.hintsIn.Load(); p != nil {
		select {
		case <-*p:
		case <-ctx.Done():
			return fmt.Errorf("this member is catching up and the hints for it have not all arrived yet")
		}
	}
	if _, err := s.Repair(ctx, name, before, limit, skipped(ctx)...); err != nil {
		var pe *peerError
		if errors.As(err, &pe) || ctx.Err() != nil {
			return fmt.Errorf("this member is catching up and could not compare %s's records with another replica: %w", name, err)
		}
		// The others do not answer at all (down, or cut off): nobody
		// has anything newer to offer now, and this member is the best
		// there is.
		s.log.Debug("answering while catching up, no other replica answers", "op", "catch-up", "user", name, "err", err)
	}
	return nil
}

// handoffRequest is the body of POST /internal/v1/handoff: hand the
// hints for To over now.
type handoffRequest struct {
	To string `json:"to"`
}

// handoffAnswer says how many hints were delivered and how many are
// left (a long backlog takes more than one call).
type handoffAnswer struct {
	Delivered int `json:"delivered"`
	Left      int `json:"left"`
}

// handoffHandler delivers this member's hints for another member at
// once, whatever the failure detector thinks of it: that member just
// started and is catching up.
func (s *Server) handoffHandler(w http.ResponseWriter, r *http.Request) {
	var req handoffRequest
	if !readJSON(w, r, &req) {
		return
	}
	if !s.ring.Load().Has(req.To) || req.To == s.self {
		writeError(w, http.StatusBadRequest, fmt.Errorf("hand hints over to %q: not another member", req.To))
		return
	}
	n, err := s.handoffTo(r.Context(), req.To)
	if err != nil && n == 0 {
		writeError(w, http.StatusBadGateway, err)
		return
	}
	left, err := s.store.HintCountFor(req.To)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, handoffAnswer{Delivered: n, Left: left})
}

// helloAnswer is the answer to GET /internal/v1/hello: who a member is
// and where it gossips.
type helloAnswer struct {
	Member     string `json:"member"`
	Gossip     string `json:"gossip"`
	CatchingUp bool   `json:"catching_up"`
	// Store is the member's store id: another one means a new disk.
	Store string `json:"store"`
}

func (s *Server) helloHandler(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, helloAnswer{Member: s.self, Gossip: s.gossipAddr, CatchingUp: s.catchingUp.Load(), Store: s.store.ID()})
}

// GossipAddrOf asks member for its gossip address (GET
// /internal/v1/hello): the failure detector learns the others' gossip
// addresses this way, so no port convention ties them to the members'
// addresses.
func (s *Server) GossipAddrOf(ctx context.Context, member string) (string, error) {
	var ans helloAnswer
	if err := s.call(ctx, http.MethodGet, member, "/internal/v1/hello", nil, &ans); err != nil {
		var pe *peerError
		if errors.As(err, &pe) && pe.Status == http.StatusUnauthorized {
			return "", fmt.Errorf("%s refused our cluster secret (its cluster_secret_file differs)", member)
		}
		return "", err
	}
	if ans.Member != member {
		return "", fmt.Errorf("%s answered as %s: members disagree about its address", member, ans.Member)
	}
	if ans.Gossip == "" {
		return "", fmt.Errorf("%s has no gossip address", member)
	}
	return ans.Gossip, nil
}
