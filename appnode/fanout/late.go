package fanout

import (
	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/store"
)

// latePush is how many of the author's newest posts pushSince pushes:
// as many as a follow's own back-fill (fanout's backfill), at most one
// delivery's worth.
func (s *Fanout) latePush() int {
	return min(max(int(s.inboxMax.Load())/4, 1), maxDeliveryPosts)
}

// LateFollow puts the author's newest posts into the follower's inboxes,
// as a back-fill, when a follow reaches the followee's side late
// (replica.FanOut). A
// member that took the author's posts before it learnt of the follow
// (across a partition, or behind on replication) pushed them only to
// the followers it knew then; when the follow reaches it, this makes up
// for it. Which posts came after the follow cannot be told from clocks
// that may disagree, so it pushes the newest ones, like the follow's own
// back-fill; pushing a post twice is harmless. The caller holds the
// author's lock.
func (s *Fanout) LateFollow(e feed.Edge) {
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
	for m := range SplitByMember(s.c.Ring(), d) {
		if m == s.c.Self() {
			if err := s.DeliverHere(d); err != nil {
				s.log.Warn("pushing posts to a new follower", "op", "fanout", "user", e.Follower, "err", err)
			}
			continue
		}
		w, _, err := s.outboxWrite(m, d)
		if err != nil {
			s.log.Warn("pushing posts to a new follower", "op", "fanout", "user", e.Follower, "err", err)
			return
		}
		writes = append(writes, w)
	}
	if len(writes) > 0 {
		if err := s.store.Put(writes...); err != nil {
			s.log.Warn("pushing posts to a new follower", "op", "fanout", "user", e.Follower, "err", err)
			return
		}
		s.Kick()
	}
}
