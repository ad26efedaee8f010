package timeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/peer"
	"github.com/ringfront/ringfront/appnode/store"
	"github.com/ringfront/ringfront/appnode/transport"
	"golang.org/x/sync/errgroup"
)

// Home timelines as they are read: one range scan of the reader's inbox
// (filled by fan-out on write, package fanout), plus, merged at read
// time, the posts of followees that are not pushed (more than half the
// fan-out limit of followers) and, below the inbox's horizon, of every
// followee. Posts are merged where their authors live: the authors are
// grouped by the member that answers for them, each member merges its
// authors' pages (POST /internal/v1/merge), and the reader's member
// merges those.

// Page reads one page of name's home timeline: the inbox (one
// range scan, down to its horizon) plus, merged at read time, the posts
// of followees not pushed (celebrities) and, when the page reaches below
// the horizon, of every followee. following are the users name follows.
func (s *Timeline) Page(ctx context.Context, name string, following []string, before feed.ID, limit int) ([]store.RawPost, bool, error) {
	authors := append(slices.Clip(following), name)
	meta, trusted, err := s.store.Meta(name)
	if err != nil {
		return nil, false, err
	}
	if !trusted {
		// No inbox here that can be trusted (the user arrived by a
		// move, or a replica never served it): merge, and start the
		// inbox from now on.
		posts, more, missed, err := s.MergeAuthors(ctx, authors, before, limit)
		if err == nil && len(missed) > 0 {
			// Without an inbox, a followee nobody answers for is not
			// in the page at all: refuse rather than answer without.
			return nil, false, fmt.Errorf("%w: no member answers for %d of the followees (%s)", peer.ErrNoMember, len(missed), strings.Join(missed, ", "))
		}
		if err == nil {
			if err := s.store.SetHorizon(name, s.HorizonNow()); err != nil {
				s.log.Warn("starting an inbox", "op", "timeline", "user", name, "err", err)
			}
		}
		return posts, more, err
	}
	follows := make(map[string]bool, len(authors))
	for _, a := range authors {
		follows[a] = true
	}
	inbox, more, err := s.store.Inbox(name, before, meta.Horizon, limit, func(a string) bool { return follows[a] })
	if err != nil {
		return nil, false, err
	}
	all := make([]store.RawPost, 0, 2*limit)
	for _, e := range inbox {
		all = append(all, e.RawPost)
	}
	celebs, err := s.Merged(ctx, following)
	if err != nil {
		return nil, false, err
	}
	// The inbox runs out on this page: below the horizon, every
	// author's posts are merged (also when the page is full, to learn
	// whether more follow).
	below := !meta.Horizon.IsZero() && !more
	belowBefore := meta.Horizon
	if !before.IsZero() && before.Compare(belowBefore) < 0 {
		belowBefore = before
	}
	g, gctx := errgroup.WithContext(ctx)
	var mu sync.Mutex // guards all and more
	merge := func(as []string, before feed.ID) {
		if len(as) == 0 {
			return
		}
		g.Go(func() error {
			// Followees nobody answers for are left out: their pushed
			// posts are in the inbox, and the rest are unreachable for
			// now (a partition) whatever this member does.
			posts, more1, missed, err := s.MergeAuthors(gctx, as, before, limit)
			if err != nil {
				return err
			}
			if len(missed) > 0 {
				s.log.Debug("timeline merged without followees nobody answers for", "op", "timeline", "user", name, "peer", strings.Join(missed, ","))
			}
			mu.Lock()
			all = append(all, posts...)
			more = more || more1
			mu.Unlock()
			return nil
		})
	}
	merge(celebs, before)
	if below {
		merge(authors, belowBefore)
	}
	if err := g.Wait(); err != nil {
		return nil, false, err
	}
	all, more = top(dedupe(all), limit, more)
	return all, more, nil
}

// dedupe drops posts that occur twice (from the inbox and a merge).
func dedupe(posts []store.RawPost) []store.RawPost {
	slices.SortFunc(posts, func(a, b store.RawPost) int { return b.ID.Compare(a.ID) })
	return slices.CompactFunc(posts, func(a, b store.RawPost) bool { return a.ID == b.ID })
}

// Merged returns the followees whose posts a timeline read merges:
// every one when nobody is pushed, else those with more than half the
// fan-out limit of followers (see countTTL). A followee whose count
// cannot be learnt is merged too: merging is always correct, only
// slower.
func (s *Timeline) Merged(ctx context.Context, following []string) ([]string, error) {
	limit := int(s.limit.Load())
	if limit < 0 {
		return following, nil
	}
	now := time.Now()
	counts := make(map[string]int, len(following))
	var missing []string
	s.mu.Lock()
	for _, a := range following {
		if c, ok := s.counts[a]; ok && now.Sub(c.at) < countTTL {
			counts[a] = c.n
		} else {
			missing = append(missing, a)
		}
	}
	s.mu.Unlock()
	if len(missing) > 0 {
		fetched := s.followerCounts(ctx, missing, limit)
		s.mu.Lock()
		if len(s.counts) > maxCachedCounts {
			clear(s.counts)
		}
		for a, n := range fetched {
			counts[a] = n
			s.counts[a] = followerCount{n: n, at: now}
		}
		s.mu.Unlock()
	}
	var out []string
	for _, a := range following {
		n, ok := counts[a]
		if !ok || n > limit/2 {
			out = append(out, a)
		}
	}
	return out, nil
}

// followerCounts asks each author's member how many followers it has,
// counting up to limit+1; authors whose member did not answer are left
// out.
func (s *Timeline) followerCounts(ctx context.Context, authors []string, limit int) map[string]int {
	rg := s.c.Ring()
	groups := map[string][]string{}
	for _, a := range authors {
		m := s.c.Target(rg, a)
		groups[m] = append(groups[m], a)
	}
	out := map[string]int{}
	var mu sync.Mutex // guards out
	var wg sync.WaitGroup
	for m, as := range groups {
		wg.Go(func() {
			var counts map[string]int
			var err error
			if m == s.c.Self() {
				counts, err = s.CountFollowers(as, limit)
			} else {
				var ans countsAnswer
				cctx, cancel := context.WithTimeout(ctx, s.c.MemberTimeout(m))
				err = s.c.Call(cctx, http.MethodPost, m, "/internal/v1/follower-counts", countsRequest{Users: as, Max: limit}, &ans)
				cancel()
				counts = ans.Counts
			}
			if err != nil {
				s.log.Debug("counting followers", "op", "timeline", "peer", m, "err", err)
				return
			}
			mu.Lock()
			for _, a := range as {
				if n, ok := counts[a]; ok {
					out[a] = n
				}
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// CountFollowers counts each user's followers here, up to limit+1.
func (s *Timeline) CountFollowers(users []string, limit int) (map[string]int, error) {
	out := make(map[string]int, len(users))
	for _, u := range users {
		fs, err := s.store.ActiveFollowers(u, limit)
		if err != nil {
			return nil, err
		}
		out[u] = len(fs)
	}
	return out, nil
}

// countsRequest is the body of POST /internal/v1/follower-counts.
type countsRequest struct {
	Users []string `json:"users"`
	Max   int      `json:"max"`
}

type countsAnswer struct {
	Counts map[string]int `json:"counts"`
}

// maxCountUsers bounds one follower-counts request.
const maxCountUsers = maxMergeAuthors

func (s *Timeline) followerCountsHandler(w http.ResponseWriter, r *http.Request) {
	var req countsRequest
	if !transport.ReadJSON(w, r, &req, maxMergeBody) {
		return
	}
	if len(req.Users) > maxCountUsers || req.Max < 0 || req.Max > 10_000_000 {
		transport.WriteError(w, http.StatusBadRequest, fmt.Errorf("%d users (at most %d) or max %d out of range", len(req.Users), maxCountUsers, req.Max))
		return
	}
	for _, u := range req.Users {
		if err := feed.ValidName(u); err != nil {
			transport.WriteError(w, http.StatusBadRequest, err)
			return
		}
	}
	counts, err := s.CountFollowers(req.Users, req.Max)
	if err != nil {
		transport.StoreError(w, err)
		return
	}
	transport.WriteJSON(w, http.StatusOK, countsAnswer{Counts: counts})
}

// top sorts posts newest first and keeps limit of them; more reports
// whether anything is left beyond.
func top(posts []store.RawPost, limit int, more bool) ([]store.RawPost, bool) {
	slices.SortFunc(posts, func(a, b store.RawPost) int { return b.ID.Compare(a.ID) })
	if len(posts) > limit {
		return posts[:limit], true
	}
	return posts, more
}

// mergeLocal merges one page of the authors' posts from this member's
// store; authors that do not exist have no posts.
func (s *Timeline) mergeLocal(authors []string, before feed.ID, limit int) ([]store.RawPost, bool, error) {
	return s.store.MergePosts(authors, before, limit)
}

// mergeRequest is the body of POST /internal/v1/merge.
type mergeRequest struct {
	Authors []string `json:"authors"`
	Before  string   `json:"before,omitempty"`
	Limit   int      `json:"limit"`
}

// mergeAnswer is its answer: the merged page, ids beside the posts so
// the caller merges without decoding the posts.
type mergeAnswer struct {
	IDs   []feed.ID         `json:"ids"`
	Posts []json.RawMessage `json:"posts"`
	More  bool              `json:"more"`
}

// maxMergeAuthors bounds one merge request: far more than anyone follows
// before fan-out on write takes over timelines.
const maxMergeAuthors = 20_000

// maxMergeBody fits maxMergeAuthors names of the longest kind, quoted.
const maxMergeBody = maxMergeAuthors*(feed.MaxNameLen+3) + 1024

func (s *Timeline) mergeRemote(ctx context.Context, member string, authors []string, before feed.ID, limit int) ([]store.RawPost, bool, error) {
	req := mergeRequest{Authors: authors, Limit: limit}
	if !before.IsZero() {
		req.Before = before.String()
	}
	var ans mergeAnswer
	if err := s.c.Call(ctx, http.MethodPost, member, "/internal/v1/merge", req, &ans); err != nil {
		return nil, false, fmt.Errorf("merging posts on %s: %w", member, err)
	}
	if len(ans.IDs) != len(ans.Posts) {
		return nil, false, fmt.Errorf("merging posts on %s: %d ids for %d posts", member, len(ans.IDs), len(ans.Posts))
	}
	out := make([]store.RawPost, len(ans.IDs))
	for i := range out {
		out[i] = store.RawPost{ID: ans.IDs[i], JSON: ans.Posts[i]}
	}
	return out, ans.More, nil
}

// merge is the node-to-node half of a timeline read.
func (s *Timeline) merge(w http.ResponseWriter, r *http.Request) {
	var req mergeRequest
	if !transport.ReadJSON(w, r, &req, maxMergeBody) {
		return
	}
	if req.Limit < 1 || req.Limit > feed.MaxPage || len(req.Authors) > maxMergeAuthors {
		transport.WriteError(w, http.StatusBadRequest, fmt.Errorf("limit %d or %d authors out of range", req.Limit, len(req.Authors)))
		return
	}
	var before feed.ID
	if req.Before != "" {
		var err error
		if before, err = feed.ParseID(req.Before); err != nil {
			transport.WriteError(w, http.StatusBadRequest, fmt.Errorf("before: %w", err))
			return
		}
	}
	for _, a := range req.Authors {
		if err := feed.ValidName(a); err != nil {
			transport.WriteError(w, http.StatusBadRequest, err)
			return
		}
	}
	posts, more, err := s.mergeLocal(req.Authors, before, req.Limit)
	if err != nil {
		transport.StoreError(w, err)
		return
	}
	ans := mergeAnswer{IDs: make([]feed.ID, len(posts)), Posts: make([]json.RawMessage, len(posts)), More: more}
	for i, p := range posts {
		ans.IDs[i], ans.Posts[i] = p.ID, p.JSON
	}
	transport.WriteJSON(w, http.StatusOK, ans)
}

// MergeAuthors merges one page of the authors' posts, at read time: the
// authors are grouped by the member that answers for them; each member
// merges its authors' pages (POST /internal/v1/merge, in parallel) and
// this member merges those. The top limit of the union of every
// author's top limit is exactly the top limit overall, so cursor paging
// is exact. Authors whose member does not answer within the member
// timeout (or cannot be reached) are asked of the next member of their
// preference lists; those none of whose members answer are returned in
// missed, and left out of the page.
func (s *Timeline) MergeAuthors(ctx context.Context, authors []string, before feed.ID, limit int) (page []store.RawPost, more bool, missed []string, err error) {
	rg := s.c.Ring()
	ctx, cancel := context.WithTimeout(ctx, timelineTimeout)
	defer cancel()
	var all []store.RawPost
	skip := slices.Clip(peer.Skipped(ctx))
	for attempt := 0; len(authors) > 0 && attempt <= rg.Replicas(); attempt++ {
		groups := map[string][]string{}
		for _, a := range authors {
			if c, _ := s.c.Candidates(rg, a, skip); len(c) > 0 {
				groups[c[0]] = append(groups[c[0]], a)
			} else {
				missed = append(missed, a)
			}
		}
		g, gctx := errgroup.WithContext(ctx)
		var mu sync.Mutex // guards all, more, retry and down
		var retry, down []string
		for m, as := range groups {
			g.Go(func() error {
				var posts []store.RawPost
				var more1 bool
				var err error
				if m == s.c.Self() {
					posts, more1, err = s.mergeLocal(as, before, limit)
				} else {
					cctx, cancel := context.WithTimeout(gctx, s.c.MemberTimeout(m))
					posts, more1, err = s.mergeRemote(cctx, m, as, before, limit)
					cancel()
				}
				mu.Lock()
				defer mu.Unlock()
				var te *transport.Error
				if err != nil && m != s.c.Self() && !errors.As(err, &te) && ctx.Err() == nil {
					// No answer: the next member of their lists.
					s.c.Failed(m, err.Error())
					retry = append(retry, as...)
					down = append(down, m)
					return nil
				}
				if err != nil {
					return err
				}
				all = append(all, posts...)
				more = more || more1
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, false, nil, err
		}
		authors = retry
		skip = append(skip, down...)
	}
	missed = append(missed, authors...)
	if len(missed) > 0 {
		s.partial.Inc()
	}
	all, more = top(all, limit, more)
	return all, more, missed, nil
}
