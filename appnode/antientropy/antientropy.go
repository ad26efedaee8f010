package antientropy

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/ring"
	"github.com/ringfront/ringfront/appnode/store"
	"github.com/ringfront/ringfront/appnode/transport"
)

// Anti-entropy: every interval, this member compares, with each other
// live member whose address sorts after its own (so each pair is
// compared once per round, by one of the two), the users whose
// preference lists hold both. It is a three-level hash tree over the
// ring's own hash (md5 of the name): 256 groups of 256 leaves of users
// (store.LeafOf). The leaves are kept by the store with every write, so
// a round between members that agree reads nothing but the users of the
// few hundred leaves that a ring position cuts in two (those must be
// filtered user by user); it never reads a record. Only the groups that
// differ are opened into leaves, only the leaves that differ into user
// digests, and only the users that differ are reconciled — in full,
// page by page, by union — at anti_entropy_rate records per second and
// at most maxSyncUsers users per round.

// DefaultInterval is how often each pair of members is
// compared: often enough that a lost hint or a partition is repaired
// within minutes. A round between members that agree costs a few
// hundred small reads, so it could run far more often.
const DefaultInterval = time.Minute

// DefaultRate is how many records per second anti-entropy
// compares and copies: about half a MB/s of posts, a few per cent of a
// core, so repairs never compete with serving; a member that missed a
// hundred thousand posts catches up in under a minute.
const DefaultRate = 2000

// maxSyncUsers bounds the users reconciled with one member per round,
// so a member that was away for long catches up over several rounds
// without a burst.
const maxSyncUsers = 1000

// maxSyncPages bounds the pages of posts compared for one user.
const maxSyncPages = 10_000

// Tree shape: 256 groups of 256 leaves.
const (
	numGroups     = 256
	leavesInGroup = store.NumLeaves / numGroups
	// maxGroupsPerCall bounds the groups opened in one call: at most
	// 32×256 leaf digests, about 400 KB of JSON.
	maxGroupsPerCall = 32
	// maxLeavesPerCall bounds the leaves opened into users in one call.
	maxLeavesPerCall = 1024
	// maxLeavesPerRound bounds the differing leaves one round looks
	// into; the rest wait for the next round.
	maxLeavesPerRound = 4 * maxLeavesPerCall
)

// digestRequest is the body of POST /internal/v1/digests: the digests
// of what this member shares with Peer — the 256 group digests when
// Groups and Leaves are empty, the leaf digests of Groups, or the user
// digests of Leaves.
type digestRequest struct {
	Peer   string `json:"peer"`
	Groups []int  `json:"groups,omitempty"`
	Leaves []int  `json:"leaves,omitempty"`
}

// digestAnswer has Groups (256 hex digests), Leaves (the non-zero
// digests of the requested groups' leaves) or Users.
type digestAnswer struct {
	Groups []string          `json:"groups,omitempty"`
	Leaves map[int]string    `json:"leaves,omitempty"`
	Users  map[string]string `json:"users,omitempty"`
}

// leafClass says which of a leaf's users a pair of members shares.
type leafClass uint8

const (
	leafNone  leafClass = iota // no user of the leaf is held by both
	leafAll                    // every user is
	leafMixed                  // a ring position cuts the leaf: check each user
)

// SetRate sets how many records per second anti-entropy
// compares and copies; 0 means DefaultAntiEntropyRate.
func (s *Syncer) SetRate(n int) {
	if n <= 0 {
		n = DefaultRate
	}
	s.rate.Store(int64(n))
}

// pace waits until n more records fit in the rate.
func (s *Syncer) pace(ctx context.Context, n int) error {
	if n <= 0 {
		return nil
	}
	s.metrics.records.Add(float64(n))
	cost := time.Duration(float64(n) / float64(s.rate.Load()) * float64(time.Second))
	s.mu.Lock()
	now := time.Now()
	if s.next.Before(now) {
		s.next = now
	}
	s.next = s.next.Add(cost)
	wait := s.next.Sub(now)
	s.mu.Unlock()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// leafClasses classifies every leaf for the pair (this member, peer)
// under rg. The answer is cached until the ring changes.
func (s *Syncer) leafClasses(rg *ring.Ring, peer string) []leafClass {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.version != rg.Version() {
		s.version, s.classes = rg.Version(), map[string][]leafClass{}
	}
	if c, ok := s.classes[peer]; ok {
		return c
	}
	out := make([]leafClass, store.NumLeaves)
	for _, p := range rg.Positions() {
		out[p.Hash.Hi>>(64-store.LeafBits)] = leafMixed
	}
	var buf [8]string
	for leaf := range out {
		if out[leaf] == leafMixed {
			continue
		}
		// No position inside the leaf: all its keys share one
		// preference list, the one of its first hash.
		pref := rg.PreferenceAt(buf[:0], ring.Hash{Hi: uint64(leaf) << (64 - store.LeafBits)})
		if slices.Contains(pref, s.c.Self()) && slices.Contains(pref, peer) {
			out[leaf] = leafAll
		}
	}
	s.classes[peer] = out
	return out
}

// shares reports whether name's preference list under rg holds this
// member and peer.
func (s *Syncer) shares(rg *ring.Ring, name, peer string) bool {
	var buf [8]string
	pref := rg.Preference(buf[:0], name)
	return slices.Contains(pref, s.c.Self()) && slices.Contains(pref, peer)
}

// leafUsers calls fn with every user of leaf shared with peer.
func (s *Syncer) leafUsers(rg *ring.Ring, cls []leafClass, peer string, leaf int, fn func(name string, d store.Digest)) error {
	if cls[leaf] == leafNone {
		return nil
	}
	return s.store.LeafUsers(leaf, func(name string, d store.Digest) {
		if feed.ValidName(name) != nil || cls[leaf] == leafMixed && !s.shares(rg, name, peer) {
			return
		}
		fn(name, d)
	})
}

// sharedLeaves returns the digest of each of the given leaves (nil:
// all) restricted to the users shared with peer, in a slice of
// NumLeaves (leaves not asked for are zero).
func (s *Syncer) sharedLeaves(rg *ring.Ring, peer string, which []int) ([]store.Digest, error) {
	cls := s.leafClasses(rg, peer)
	all := s.store.Leaves()
	out := all
	if which != nil {
		out = make([]store.Digest, store.NumLeaves)
		for _, l := range which {
			out[l] = all[l]
		}
	} else {
		which = make([]int, store.NumLeaves)
		for i := range which {
			which[i] = i
		}
	}
	for _, l := range which {
		switch cls[l] {
		case leafNone:
			out[l] = store.Digest{}
		case leafMixed:
			var d store.Digest
			if err := s.leafUsers(rg, cls, peer, l, func(_ string, ud store.Digest) { d.Xor(ud) }); err != nil {
				return nil, err
			}
			out[l] = d
		}
	}
	return out, nil
}

func groupDigest(leaves []store.Digest, g int) store.Digest {
	var d store.Digest
	for _, l := range leaves[g*leavesInGroup : (g+1)*leavesInGroup] {
		d.Xor(l)
	}
	return d
}

// hexDigest is d in hex, or "" for the zero digest (absent in answers).
func hexDigest(d store.Digest) string {
	if d.IsZero() {
		return ""
	}
	return hex.EncodeToString(d[:])
}

// digests is the node-to-node half of anti-entropy.
func (s *Syncer) digests(w http.ResponseWriter, r *http.Request) {
	var req digestRequest
	if !transport.ReadJSON(w, r, &req, maxDigestBody) {
		return
	}
	rg := s.c.Ring()
	if !rg.Has(req.Peer) {
		transport.WriteError(w, http.StatusBadRequest, fmt.Errorf("peer %q is not a member of this ring", req.Peer))
		return
	}
	if len(req.Groups) > maxGroupsPerCall || len(req.Leaves) > maxLeavesPerCall || len(req.Groups) > 0 && len(req.Leaves) > 0 {
		transport.WriteError(w, http.StatusBadRequest, fmt.Errorf("%d groups and %d leaves: ask for at most %d groups or %d leaves", len(req.Groups), len(req.Leaves), maxGroupsPerCall, maxLeavesPerCall))
		return
	}
	for _, g := range req.Groups {
		if g < 0 || g >= numGroups {
			transport.WriteError(w, http.StatusBadRequest, fmt.Errorf("group %d is not from 0 to %d", g, numGroups-1))
			return
		}
	}
	for _, l := range req.Leaves {
		if l < 0 || l >= store.NumLeaves {
			transport.WriteError(w, http.StatusBadRequest, fmt.Errorf("leaf %d is not from 0 to %d", l, store.NumLeaves-1))
			return
		}
	}
	var ans digestAnswer
	switch {
	case len(req.Leaves) > 0:
		cls := s.leafClasses(rg, req.Peer)
		ans.Users = map[string]string{}
		for _, l := range req.Leaves {
			err := s.leafUsers(rg, cls, req.Peer, l, func(name string, d store.Digest) { ans.Users[name] = hexDigest(d) })
			if err != nil {
				transport.StoreError(w, err)
				return
			}
		}
	case len(req.Groups) > 0:
		var which []int
		for _, g := range req.Groups {
			for l := g * leavesInGroup; l < (g+1)*leavesInGroup; l++ {
				which = append(which, l)
			}
		}
		leaves, err := s.sharedLeaves(rg, req.Peer, which)
		if err != nil {
			transport.StoreError(w, err)
			return
		}
		ans.Leaves = map[int]string{}
		for _, l := range which {
			if !leaves[l].IsZero() {
				ans.Leaves[l] = hexDigest(leaves[l])
			}
		}
	default:
		leaves, err := s.sharedLeaves(rg, req.Peer, nil)
		if err != nil {
			transport.StoreError(w, err)
			return
		}
		ans.Groups = make([]string, numGroups)
		for g := range ans.Groups {
			d := groupDigest(leaves, g)
			ans.Groups[g] = hex.EncodeToString(d[:])
		}
	}
	transport.WriteJSON(w, http.StatusOK, ans)
}

// maxDigestBody fits a digest request of maxLeavesPerCall leaves.
const maxDigestBody = maxLeavesPerCall*6 + 1024

// SetInterval sets how often Run compares; 0 means DefaultInterval. It
// applies from the next round.
func (s *Syncer) SetInterval(d time.Duration) {
	if d <= 0 {
		d = DefaultInterval
	}
	s.interval.Store(int64(d))
}

// Run compares with the other live members (those whose address sorts
// after this one's) every anti-entropy interval until ctx is done.
func (s *Syncer) Run(ctx context.Context) error {
	t := time.NewTimer(time.Duration(s.interval.Load()))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		for _, m := range s.c.Ring().Members() {
			if m <= s.c.Self() || !s.c.Alive(m) {
				continue
			}
			if n, err := s.Compare(ctx, m); err != nil {
				s.log.Warn("anti-entropy", "op", "anti-entropy", "peer", m, "err", err)
			} else if n > 0 {
				s.log.Info("anti-entropy", "op", "anti-entropy", "peer", m, "users", n)
			}
		}
		t.Reset(time.Duration(s.interval.Load()))
	}
}

// Compare compares this member's users shared with peer against
// peer's, and reconciles every user whose records differ (at most
// maxSyncUsers, at anti_entropy_rate records per second). It returns
// how many users it reconciled.
func (s *Syncer) Compare(ctx context.Context, peer string) (int, error) {
	n, _, err := s.round(ctx, peer)
	return n, err
}

// round is Compare; truncated reports that the round hit
// one of its bounds (differing leaves or users) and left differences
// for another round.
func (s *Syncer) round(ctx context.Context, peer string) (synced int, truncated bool, err error) {
	rg := s.c.Ring()
	mine, err := s.sharedLeaves(rg, peer, nil)
	if err != nil {
		return 0, false, fmt.Errorf("digests here: %w", err)
	}
	var top digestAnswer
	if err := s.c.Call(ctx, http.MethodPost, peer, "/internal/v1/digests", digestRequest{Peer: s.c.Self()}, &top); err != nil {
		return 0, false, fmt.Errorf("group digests of %s: %w", peer, err)
	}
	if len(top.Groups) != numGroups {
		return 0, false, fmt.Errorf("group digests of %s: %d groups, want %d", peer, len(top.Groups), numGroups)
	}
	var groups []int
	for g, h := range top.Groups {
		d := groupDigest(mine, g)
		if hex.EncodeToString(d[:]) != h {
			groups = append(groups, g)
		}
	}
	if len(groups) == 0 {
		s.metrics.rounds.WithLabelValues("same").Inc()
		return 0, false, nil
	}
	// Open the differing groups into leaves.
	var leaves []int
	for len(groups) > 0 && len(leaves) < maxLeavesPerRound {
		chunk := groups[:min(len(groups), maxGroupsPerCall)]
		groups = groups[len(chunk):]
		var ans digestAnswer
		if err := s.c.Call(ctx, http.MethodPost, peer, "/internal/v1/digests", digestRequest{Peer: s.c.Self(), Groups: chunk}, &ans); err != nil {
			return 0, false, fmt.Errorf("leaf digests of %s: %w", peer, err)
		}
		for _, g := range chunk {
			for l := g * leavesInGroup; l < (g+1)*leavesInGroup; l++ {
				if hexDigest(mine[l]) != ans.Leaves[l] {
					leaves = append(leaves, l)
				}
			}
		}
	}
	truncated = len(groups) > 0 || len(leaves) > maxLeavesPerRound
	leaves = leaves[:min(len(leaves), maxLeavesPerRound)]
	// Open the differing leaves into users.
	cls := s.leafClasses(rg, peer)
	var names []string
	for len(leaves) > 0 && len(names) < maxSyncUsers {
		chunk := leaves[:min(len(leaves), maxLeavesPerCall)]
		leaves = leaves[len(chunk):]
		var ans digestAnswer
		if err := s.c.Call(ctx, http.MethodPost, peer, "/internal/v1/digests", digestRequest{Peer: s.c.Self(), Leaves: chunk}, &ans); err != nil {
			return 0, false, fmt.Errorf("user digests of %s: %w", peer, err)
		}
		local := map[string]string{}
		for _, l := range chunk {
			if err := s.leafUsers(rg, cls, peer, l, func(name string, d store.Digest) { local[name] = hexDigest(d) }); err != nil {
				return 0, false, fmt.Errorf("user digests here: %w", err)
			}
		}
		for name, h := range local {
			if ans.Users[name] != h {
				names = append(names, name)
			}
		}
		for name := range ans.Users {
			if _, ok := local[name]; !ok {
				if feed.ValidName(name) != nil {
					return 0, false, fmt.Errorf("user digests of %s: bad name %q", peer, name)
				}
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	truncated = truncated || len(leaves) > 0
	if len(names) > maxSyncUsers {
		names, truncated = names[:maxSyncUsers], true
	}
	var errs error
	synced = 0
	for _, name := range names {
		if err := s.syncUserPaced(ctx, peer, name, true); err != nil {
			errs = errors.Join(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		synced++
	}
	result := "repaired"
	if errs != nil {
		result = "failed"
	}
	s.metrics.rounds.WithLabelValues(result).Inc()
	return synced, truncated, errs
}

// syncUser reconciles all of name's records with peer (see
// syncUserPaced), unpaced: rebalancing has its own rate, in users.
func (s *Syncer) syncUser(ctx context.Context, peer, name string) error {
	return s.syncUserPaced(ctx, peer, name, false)
}

// syncUserPaced reconciles all of name's records with peer: the edges
// and every post, a page at a time from the newest, and the user record
// last, so a member that has the user has all of it. When paced, every
// page waits for its records (both sides' posts and edges) to fit in
// anti_entropy_rate.
func (s *Syncer) syncUserPaced(ctx context.Context, peer, name string, paced bool) error {
	var before feed.ID
	for range maxSyncPages {
		local, err := s.rep.LocalRecords(name, before, feed.MaxPage)
		if err != nil {
			return fmt.Errorf("reading %s's records here: %w", name, err)
		}
		remote, err := s.rep.RemoteRecords(ctx, peer, name, before, feed.MaxPage)
		if err != nil {
			return err
		}
		last := !local.More && !remote.More
		if _, err := s.rep.Reconcile(ctx, peer, name, local, remote, last); err != nil {
			return err
		}
		if paced {
			n := len(local.Posts) + len(remote.Posts) + len(local.Following) + len(local.Followers) + len(remote.Following) + len(remote.Followers)
			if err := s.pace(ctx, n); err != nil {
				return fmt.Errorf("syncing %s with %s: %w", name, peer, err)
			}
		}
		if last {
			return nil
		}
		// Both pages cover every post from their oldest up to before;
		// the next page starts below the part both covered.
		var next feed.ID
		if local.More {
			next = local.Posts[len(local.Posts)-1].ID
		}
		if remote.More {
			if o := remote.Posts[len(remote.Posts)-1].ID; o.Compare(next) > 0 {
				next = o
			}
		}
		before = next
	}
	return fmt.Errorf("syncing %s with %s: more than %d pages", name, peer, maxSyncPages)
}
