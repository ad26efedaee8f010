package antientropy

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/ring"
	"github.com/ringfront/ringfront/appnode/transport"
)

// Rebalancing: when the ring changes (a member added or removed), every
// member pushes each user it holds to the members that joined the
// user's preference list, by full reconciliation (union both ways), at
// a bounded rate. Pushes that fail (the new member is down) are retried
// every rebalance interval until they succeed or the ring changes again.

// DefaultRebalanceRate is how many users per second a member streams
// to new replicas after a ring change: about 1-2% of one core with
// small users, so the streaming never competes with serving.
const DefaultRebalanceRate = 200

// rebalanceRetry is how often failed pushes are tried again.
const rebalanceRetry = 5 * time.Second

// RebalanceStatus is a rebalance's progress, for `appnode status`.
type RebalanceStatus struct {
	// From and To are the ring versions.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// Pending counts the (user, new member) pushes still to do; Done
	// those done.
	Pending int `json:"pending"`
	Done    int `json:"done"`
}

// push is one user to copy to one new member of its preference list.
type push struct{ user, member string }

// rebalancer is the state of the rebalance in progress.
type rebalancer struct {
	mu      sync.Mutex // guards settled, status and pending
	settled *ring.Ring // the ring whose placement the data follows
	status  RebalanceStatus
	pending []push
	kick    chan struct{} // a ring change to plan
}

// RebalanceStatus reports the rebalance's progress.
func (s *Syncer) RebalanceStatus() RebalanceStatus {
	s.rebalance.mu.Lock()
	defer s.rebalance.mu.Unlock()
	return s.rebalance.status
}

// plan lists the pushes from old's placement to cur's for every user
// this member holds.
func (s *Syncer) plan(old, cur *ring.Ring) ([]push, error) {
	digests, err := s.store.UserDigests(func(name string) bool { return feed.ValidName(name) == nil })
	if err != nil {
		return nil, err
	}
	var out []push
	var ob, nb [8]string
	for name := range digests {
		before := old.Preference(ob[:0], name)
		for _, m := range cur.Preference(nb[:0], name) {
			if m != s.c.Self() && !slices.Contains(before, m) {
				out = append(out, push{name, m})
			}
		}
	}
	slices.SortFunc(out, func(a, b push) int {
		if a.user != b.user {
			return compareStrings(a.user, b.user)
		}
		return compareStrings(a.member, b.member)
	})
	return out, nil
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// RunRebalance streams users to their new replicas after each ring
// change, at rate users per second (0: DefaultRebalanceRate), until
// ctx is done.
func (s *Syncer) RunRebalance(ctx context.Context, rate int) error {
	if rate <= 0 {
		rate = DefaultRebalanceRate
	}
	gap := time.Second / time.Duration(rate)
	retry := time.NewTicker(rebalanceRetry)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.rebalance.kick:
			cur := s.c.Ring()
			s.rebalance.mu.Lock()
			old := s.rebalance.settled
			s.rebalance.mu.Unlock()
			if old.Version() == cur.Version() {
				continue
			}
			pushes, err := s.plan(old, cur)
			if err != nil {
				s.log.Warn("planning rebalance", "op", "rebalance", "err", err)
				continue
			}
			s.rebalance.mu.Lock()
			s.rebalance.settled = cur
			s.rebalance.pending = pushes
			s.rebalance.status = RebalanceStatus{From: old.Version(), To: cur.Version(), Pending: len(pushes)}
			s.rebalance.mu.Unlock()
			s.log.Info("rebalancing", "op", "rebalance", "from", old.Version(), "to", cur.Version(), "pushes", len(pushes))
		case <-retry.C:
		}
		s.drain(ctx, gap)
	}
}

// drain makes the pending pushes, one per gap, stopping early when the
// ring changes again (the next plan supersedes them) or ctx is done.
func (s *Syncer) drain(ctx context.Context, gap time.Duration) {
	s.rebalance.mu.Lock()
	todo := s.rebalance.pending
	version := s.rebalance.status.To
	s.rebalance.mu.Unlock()
	var failed []push
	t := time.NewTicker(gap)
	defer t.Stop()
	for i, p := range todo {
		if ctx.Err() != nil || len(s.rebalance.kick) > 0 {
			failed = append(failed, todo[i:]...)
			break
		}
		if !s.c.Alive(p.member) {
			failed = append(failed, p)
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, transport.CallTimeout)
		err := s.syncUser(cctx, p.member, p.user)
		cancel()
		s.rebalance.mu.Lock()
		if err != nil {
			s.log.Warn("rebalance push", "op", "rebalance", "user", p.user, "peer", p.member, "err", err)
			failed = append(failed, p)
		} else if s.rebalance.status.To == version {
			s.rebalance.status.Done++
			s.rebalance.status.Pending--
		}
		s.rebalance.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	s.rebalance.mu.Lock()
	if s.rebalance.status.To == version {
		s.rebalance.pending = failed
		s.rebalance.status.Pending = len(failed)
		if len(failed) == 0 && len(todo) > 0 {
			s.log.Info("rebalance done", "op", "rebalance", "to", version, "pushes", s.rebalance.status.Done)
		}
	}
	s.rebalance.mu.Unlock()
}

// LearnPreviousRing asks the other members for their rings, for a
// member that starts with a ring the others are moving to (a member
// just added): a member still on another ring, or one that moved from
// another ring, names the ring the data is placed by, and requests for
// users not here yet go there (see movedFrom). Best effort: without an
// answer, there is nothing to fall back to.
func (s *Syncer) LearnPreviousRing(ctx context.Context) {
	cur := s.c.Ring()
	for _, m := range cur.Members() {
		if m == s.c.Self() || !s.c.Alive(m) {
			continue
		}
		var ans api.RingAnswer
		if err := s.c.Call(ctx, http.MethodGet, m, "/v1/ring", nil, &ans); err != nil {
			s.log.Debug("learning the previous ring", "op", "rebalance", "peer", m, "err", err)
			continue
		}
		info := ans.Info
		if info.Version == cur.Version() {
			if ans.Previous == nil {
				continue
			}
			info = *ans.Previous
		}
		prev, err := ring.FromInfo(info)
		if err != nil || prev.Version() == cur.Version() {
			continue
		}
		s.c.SetPrevious(prev)
		s.log.Info("previous ring", "op", "rebalance", "peer", m, "ring", prev.String())
		return
	}
}

// RingChanged has RunRebalance plan the move to the cluster's current
// ring.
func (s *Syncer) RingChanged() {
	select {
	case s.rebalance.kick <- struct{}{}:
	default: // a plan is already due; it will see this ring
	}
}
