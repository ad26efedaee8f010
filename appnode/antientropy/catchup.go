package antientropy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/peer"
	"github.com/ringfront/ringfront/appnode/replica"
	"github.com/ringfront/ringfront/appnode/transport"
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
func (s *Syncer) RunCatchUp(ctx context.Context) error {
	if s.c.CatchingUp() {
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
				s.c.SetCatchingUp(true)
				s.catchUp(ctx, fmt.Sprintf("this member was paused or starved for %.1fs", gap.Seconds()), nil)
			}
		}
		last = time.Now()
	}
}

// NotePause is called as a request starts: when RunCatchUp's clock has
// not ticked for pauseLimit this process was just paused, and the
// request must not be answered from this member's store alone before
// RunCatchUp has noticed.
func (s *Syncer) NotePause() {
	if s.awake.Load() == 0 || s.c.CatchingUp() {
		return
	}
	if time.Since(s.started)-time.Duration(s.awake.Load()) > pauseLimit {
		s.c.SetCatchingUp(true)
	}
}

// KickCatchUp marks this member as catching up at once, and has
// RunCatchUp catch it up with member, which is back after this member
// took it for dead.
func (s *Syncer) KickCatchUp(member string) {
	s.c.SetCatchingUp(true)
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
func (s *Syncer) catchUp(ctx context.Context, why string, peers []string) {
	start := time.Now()
	s.c.SetCatchingUp(true)
	if peers == nil {
		peers = s.c.Ring().Members()
	}
	// One pass: every peer's hints for this member, then anti-entropy
	// with every peer, again while a round was cut short by its bounds.
	// What differs after that is writes still on their way, which
	// replication brings.
	hints, users, rounds := 0, 0, 0
	hintsIn := newGate()
	if prev := s.hintsIn.Swap(hintsIn); prev != nil {
		defer prev.open() // whoever waited for it waited for this one
	}
	for _, m := range peers {
		if m == s.c.Self() || !s.c.Alive(m) {
			continue
		}
		hints += s.handOff(ctx, m)
	}
	hintsIn.open()
	for _, m := range peers {
		if m == s.c.Self() || !s.c.Alive(m) {
			continue
		}
		for range maxCatchUpCalls {
			rounds++
			n, truncated, err := s.round(ctx, m)
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
		s.c.SetCatchingUp(false)
	}
	s.kickMu.Unlock()
	s.metrics.catchUps.Inc()
	s.log.Info("caught up", "op", "catch-up", "why", why, "seconds", time.Since(start).Seconds(), "hints", hints, "users", users, "rounds", rounds)
}

// handOffTries bounds the tries to ask one member for its hints when
// the calls fail (a member just started may not have its links yet; a
// busy one may miss a member timeout): at handOffBackoff doubling, about
// 3s in all before this member answers without that member's hints.
const (
	handOffTries   = 5
	handOffBackoff = 100 * time.Millisecond
)

// handOff asks member m to hand over the hints it holds for this
// member, until it has none left, and returns how many it delivered. A
// failed call is tried again after a backoff while the failure detector
// has not declared m dead and m's port does not refuse connections: a write whose copy for this member went to m
// may be nowhere else.
func (s *Syncer) handOff(ctx context.Context, m string) int {
	hints, failures := 0, 0
	for range maxCatchUpCalls {
		var ans replica.HandoffAnswer
		err := s.c.Call(ctx, http.MethodPost, m, "/internal/v1/handoff", replica.HandoffRequest{To: s.c.Self()}, &ans)
		if err != nil {
			failures++
			s.log.Debug("asking for hints", "op", "catch-up", "peer", m, "try", failures, "err", err)
			if failures >= handOffTries {
				s.log.Warn("answering without the hints a member may hold for this one", "op", "catch-up", "peer", m, "err", err)
				return hints
			}
			// A refused connection is a member that is not running: it
			// hands its hints over itself when it is back.
			if s.c.Dead(m) || errors.Is(err, syscall.ECONNREFUSED) || ctx.Err() != nil {
				return hints
			}
			select {
			case <-time.After(handOffBackoff << (failures - 1)):
			case <-ctx.Done():
				return hints
			}
			continue
		}
		hints += ans.Delivered
		if ans.Left == 0 || ans.Delivered == 0 {
			return hints
		}
	}
	return hints
}

// CatchUpUser merges user name's records (the page of posts older than
// before, up to limit) with the other live replicas before a member
// that has not caught up answers for name itself. An error means they
// could not be merged: the member must not answer from its own store
// alone.
func (s *Syncer) CatchUpUser(ctx context.Context, name string, before feed.ID, limit int) error {
	ctx, cancel := context.WithTimeout(ctx, peer.LastResort(s.c.TimeoutFloor()))
	defer cancel()
	// The hints the others hold for this member come first: a write
	// whose copy for this member went to a hinted holder is there, and
	// nowhere else if its coordinator is gone.
	if g := s.hintsIn.Load(); g != nil {
		select {
		case <-g.done:
		case <-ctx.Done():
			return fmt.Errorf("this member is catching up and the hints for it have not all arrived yet")
		}
	}
	if _, err := s.rep.Repair(ctx, name, before, limit, peer.Skipped(ctx)...); err != nil {
		var te *transport.Error
		if errors.As(err, &te) || ctx.Err() != nil {
			return fmt.Errorf("this member is catching up and could not compare %s's records with another replica: %w", name, err)
		}
		// The others do not answer at all (down, or cut off): nobody
		// has anything newer to offer now, and this member is the best
		// there is.
		s.log.Debug("answering while catching up, no other replica answers", "op", "catch-up", "user", name, "err", err)
	}
	return nil
}

// gate is closed once, by open, and waited for by receiving from done.
type gate struct {
	done chan struct{}
	once sync.Once
}

func newGate() *gate { return &gate{done: make(chan struct{})} }

func (g *gate) open() { g.once.Do(func() { close(g.done) }) }
