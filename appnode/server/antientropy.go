package server

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
)

// Anti-entropy: every interval, this member compares, with each other
// live member whose address sorts after its own (so each pair is
// compared once per round, by one of the two), the users whose
// preference lists hold both. It is a two-level tree: first 256 bucket
// digests (users by the first byte of md5(name), the ring's own hash),
// then, for the buckets that differ, one digest per user; each user
// whose digests differ is reconciled in full, page by page, by union.

// DefaultAntiEntropyInterval is how often each pair of members is
// compared: often enough that a lost hint or a partition is repaired
// within minutes, rarely enough that reading the database once per
// round is a small part of a member's work.
const DefaultAntiEntropyInterval = time.Minute

// maxSyncUsers bounds the users reconciled with one member per round,
// so a member that was away for long catches up over several rounds
// without a burst.
const maxSyncUsers = 1000

// maxSyncPages bounds the pages of posts compared for one user.
const maxSyncPages = 10_000

// digestRequest is the body of POST /internal/v1/digests: the digests
// of the users shared with Peer, per bucket, or per user in Buckets.
type digestRequest struct {
	Peer    string `json:"peer"`
	Buckets []int  `json:"buckets,omitempty"`
}

// digestAnswer has Buckets (256 hex digests) or Users.
type digestAnswer struct {
	Buckets []string          `json:"buckets,omitempty"`
	Users   map[string]string `json:"users,omitempty"`
}

func bucketOf(name string) int { return int(ring.HashKey(name).Hi >> 56) }

// sharedDigests returns the digests of the users whose preference
// lists hold both this member and peer.
func (s *Server) sharedDigests(peer string) (map[string]store.Digest, error) {
	rg := s.ring.Load()
	var buf [8]string
	return s.store.UserDigests(func(name string) bool {
		if feed.ValidName(name) != nil {
			return false
		}
		pref := rg.Preference(buf[:0], name)
		return slices.Contains(pref, s.self) && slices.Contains(pref, peer)
	})
}

func bucketDigests(users map[string]store.Digest) [256]store.Digest {
	var out [256]store.Digest
	for name, d := range users {
		out[bucketOf(name)].Xor(d)
	}
	return out
}

// digests is the node-to-node half of anti-entropy.
func (s *Server) digests(w http.ResponseWriter, r *http.Request) {
	var req digestRequest
	if !readJSON(w, r, &req) {
		return
	}
	if !s.ring.Load().Has(req.Peer) {
		writeError(w, http.StatusBadRequest, fmt.Errorf("peer %q is not a member of this ring", req.Peer))
		return
	}
	users, err := s.sharedDigests(req.Peer)
	if err != nil {
		s.storeError(w, err)
		return
	}
	var ans digestAnswer
	if len(req.Buckets) == 0 {
		for _, d := range bucketDigests(users) {
			ans.Buckets = append(ans.Buckets, hex.EncodeToString(d[:]))
		}
	} else {
		want := map[int]bool{}
		for _, b := range req.Buckets {
			want[b] = true
		}
		ans.Users = map[string]string{}
		for name, d := range users {
			if want[bucketOf(name)] {
				ans.Users[name] = hex.EncodeToString(d[:])
			}
		}
	}
	writeJSON(w, http.StatusOK, ans)
}

// SetAntiEntropyInterval sets how often RunAntiEntropy compares; 0
// means DefaultAntiEntropyInterval. It applies from the next round.
func (s *Server) SetAntiEntropyInterval(d time.Duration) {
	if d <= 0 {
		d = DefaultAntiEntropyInterval
	}
	s.antiEntropyInterval.Store(int64(d))
}

// RunAntiEntropy compares with the other live members (those whose
// address sorts after this one's) every anti-entropy interval until ctx
// is done.
func (s *Server) RunAntiEntropy(ctx context.Context) error {
	t := time.NewTimer(time.Duration(s.antiEntropyInterval.Load()))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		for _, m := range s.ring.Load().Members() {
			if m <= s.self || !s.alive(m) {
				continue
			}
			if n, err := s.AntiEntropy(ctx, m); err != nil {
				s.log.Warn("anti-entropy", "op", "anti-entropy", "peer", m, "err", err)
			} else if n > 0 {
				s.log.Info("anti-entropy", "op", "anti-entropy", "peer", m, "users", n)
			}
		}
		t.Reset(time.Duration(s.antiEntropyInterval.Load()))
	}
}

// AntiEntropy compares this member's users shared with peer against
// peer's, and reconciles every user whose records differ (at most
// maxSyncUsers). It returns how many users it reconciled.
func (s *Server) AntiEntropy(ctx context.Context, peer string) (int, error) {
	local, err := s.sharedDigests(peer)
	if err != nil {
		return 0, fmt.Errorf("digests here: %w", err)
	}
	var top digestAnswer
	if err := s.call(ctx, http.MethodPost, peer, "/internal/v1/digests", digestRequest{Peer: s.self}, &top); err != nil {
		return 0, fmt.Errorf("bucket digests of %s: %w", peer, err)
	}
	if len(top.Buckets) != 256 {
		return 0, fmt.Errorf("bucket digests of %s: %d buckets, want 256", peer, len(top.Buckets))
	}
	mine := bucketDigests(local)
	var differ []int
	for i, h := range top.Buckets {
		if hex.EncodeToString(mine[i][:]) != h {
			differ = append(differ, i)
		}
	}
	if len(differ) == 0 {
		s.metrics.antiEntropy.WithLabelValues("same").Inc()
		return 0, nil
	}
	var users digestAnswer
	if err := s.call(ctx, http.MethodPost, peer, "/internal/v1/digests", digestRequest{Peer: s.self, Buckets: differ}, &users); err != nil {
		return 0, fmt.Errorf("user digests of %s: %w", peer, err)
	}
	inDiffer := map[int]bool{}
	for _, b := range differ {
		inDiffer[b] = true
	}
	var names []string
	for name, d := range local {
		if inDiffer[bucketOf(name)] && users.Users[name] != hex.EncodeToString(d[:]) {
			names = append(names, name)
		}
	}
	for name := range users.Users {
		if _, ok := local[name]; !ok {
			if feed.ValidName(name) != nil {
				return 0, fmt.Errorf("user digests of %s: bad name %q", peer, name)
			}
			names = append(names, name)
		}
	}
	slices.Sort(names)
	if len(names) > maxSyncUsers {
		names = names[:maxSyncUsers]
	}
	var errs error
	synced := 0
	for _, name := range names {
		if err := s.syncUser(ctx, peer, name); err != nil {
			errs = errors.Join(errs, err)
			continue
		}
		synced++
	}
	result := "repaired"
	if errs != nil {
		result = "failed"
	}
	s.metrics.antiEntropy.WithLabelValues(result).Inc()
	return synced, errs
}

// syncUser reconciles all of name's records with peer: the edges and
// every post, a page at a time from the newest, and the user record
// last, so a member that has the user has all of it.
func (s *Server) syncUser(ctx context.Context, peer, name string) error {
	var before feed.ID
	for range maxSyncPages {
		local, err := s.localRecords(name, before, feed.MaxPage)
		if err != nil {
			return fmt.Errorf("reading %s's records here: %w", name, err)
		}
		remote, err := s.remoteRecords(ctx, peer, name, before, feed.MaxPage)
		if err != nil {
			return err
		}
		last := !local.More && !remote.More
		if _, err := s.reconcile(ctx, peer, name, local, remote, last); err != nil {
			return err
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
