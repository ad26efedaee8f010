package server

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/ring"
	"github.com/ringfront/ringfront/appnode/store"
)

// Fan-out on write. A post goes, in the same synced batch as the post
// itself, into the author's own inbox here and into a durable outbox
// entry for every other member that holds a follower's inbox (each
// follower's own preference list). The entries are delivered at once
// when the fan-out is small, else (and after any failure) by
// RunFanout, with backoff per member; a delivery is idempotent (the
// inbox key is the post id), so at-least-once is safe. Authors with more
// than the fan-out limit of followers are not pushed: a timeline read
// merges their posts in. An inbox keeps about inbox_max entries and a
// horizon below which reads merge at read time, so paging never ends
// early.

// Defaults for the config keys.
const (
	// DefaultFanoutLimit is fanout_limit: an author with more followers
	// is not pushed (Twitter's answer for celebrity accounts: one post
	// would otherwise be tens of thousands of writes).
	DefaultFanoutLimit = 10_000
	// DefaultInboxMax is inbox_max: 800 entries (40 pages of 20) of
	// about 200 bytes each is ~160 KB per user and replica.
	DefaultInboxMax = 800
	// DefaultStreamHeartbeat is how often a live stream sends a comment
	// so proxies and browsers keep the connection open.
	DefaultStreamHeartbeat = 15 * time.Second
)

const (
	// maxDeliveryUsers bounds the users of one outbox entry, so an entry
	// and a delivery call stay small (~16 KB of names).
	maxDeliveryUsers = 500
	// maxDeliveryPosts bounds the posts of one delivery (a back-fill).
	maxDeliveryPosts = feed.MaxPage
	// outboxBatch is how many outbox entries go in one call: with
	// maxDeliveryUsers each, at most ~8000 inbox writes per call.
	outboxBatch = 16
	// maxOutboxBatchesPerRound bounds one member's delivery per round.
	maxOutboxBatchesPerRound = 64
	// inlineFanout is the largest fan-out (inbox writes, on every
	// member) a post delivers before it is acknowledged, about 2000
	// followers with replicas 2 (~10 ms); a larger one is left to
	// RunFanout, so a post's latency stays bounded.
	inlineFanout = 4096
	// fanoutRetry is how often RunFanout looks at the outbox; a member
	// that failed waits its backoff (fanoutBackoffMin doubling up to
	// fanoutBackoffMax) before the next try.
	fanoutRetry      = 250 * time.Millisecond
	fanoutBackoffMin = 250 * time.Millisecond
	fanoutBackoffMax = 30 * time.Second
	// countTTL is how long a timeline reader trusts a followee's
	// follower count. Followees above half the fan-out limit are merged
	// at read time (and deduplicated with the inbox), so an author who
	// crosses the limit within countTTL is still merged, never missed.
	countTTL = 30 * time.Second
	// maxCachedCounts bounds the follower-count cache (~100 bytes each).
	maxCachedCounts = 100_000
	// maxTrimCounters bounds the per-user insert counters for trimming.
	maxTrimCounters = 100_000
)

// fanout is the server's fan-out state.
type fanout struct {
	limit     atomic.Int64 // fanout_limit; negative: nobody is pushed
	inboxMax  atomic.Int64
	heartbeat atomic.Int64 // a time.Duration
	kick      chan struct{}
	hub       hub
	inline    int                       // inlineFanout; tests lower it
	authors   [authorStripes]sync.Mutex // see lockAuthor
	metrics   *fanoutMetrics

	mu      sync.Mutex      // guards busy, backoff, inserts, counts and celebs
	busy    map[string]bool // members an inline delivery is under way to
	backoff map[string]memberBackoff
	inserts map[string]int // inbox entries added per user since its last trim
	counts  map[string]followerCount
	celebs  map[string]followerCount // authors found above the limit when posting
}

type memberBackoff struct {
	wait  time.Duration
	until time.Time
}

type followerCount struct {
	n  int
	at time.Time
}

func (f *fanout) init() {
	f.limit.Store(DefaultFanoutLimit)
	f.inboxMax.Store(DefaultInboxMax)
	f.heartbeat.Store(int64(DefaultStreamHeartbeat))
	f.kick = make(chan struct{}, 1)
	f.inline = inlineFanout
	f.busy = map[string]bool{}
	f.backoff = map[string]memberBackoff{}
	f.inserts = map[string]int{}
	f.counts = map[string]followerCount{}
	f.celebs = map[string]followerCount{}
	f.hub.init()
}

// SetFanout sets fanout_limit (0: DefaultFanoutLimit; negative: no
// author is pushed, every timeline read merges) and inbox_max (0:
// DefaultInboxMax).
func (s *Server) SetFanout(limit, inboxMax int) {
	if limit == 0 {
		limit = DefaultFanoutLimit
	}
	if inboxMax <= 0 {
		inboxMax = DefaultInboxMax
	}
	s.fan.limit.Store(int64(limit))
	s.fan.inboxMax.Store(int64(inboxMax))
}

// SetStreamHeartbeat sets how often live streams send a heartbeat
// comment; 0 means DefaultStreamHeartbeat.
func (s *Server) SetStreamHeartbeat(d time.Duration) {
	if d <= 0 {
		d = DefaultStreamHeartbeat
	}
	s.fan.heartbeat.Store(int64(d))
}

// horizonNow is an id below every post made from now on.
func (s *Server) horizonNow() feed.ID {
	var id feed.ID
	binary.BigEndian.PutUint64(id[:8], uint64(s.clock.Now()))
	return id
}

// queued is an outbox entry written for a member, to deliver at once.
type queued struct {
	member string
	entry  store.OutboxEntry
}

// storePost stores a post with its fan-out (see the comment at the top):
// one synced batch holds the post, the author's own inbox entry here,
// the entries of followers whose inboxes are here, and an outbox entry
// per other member (for a fan-out above inlineFanout, the followers'
// entries here are queued too). It returns the outbox entries and how
// many inbox writes the post makes.
func (s *Server) storePost(p feed.Post) ([]queued, int, error) {
	// From reading the followers to storing the post, no follower edge
	// of the author is stored here (mergeFollowerEdge): a follow either
	// comes before (the follower is pushed) or after (its back-fill
	// reads this post).
	defer s.fan.lockAuthor(p.Author)()
	limit := int(s.fan.limit.Load())
	var followers []string
	if limit > 0 && s.knownCelebrity(p.Author, limit) {
		s.fan.metrics.notPushed.Inc()
	} else if limit > 0 {
		var err error
		if followers, err = s.store.ActiveFollowers(p.Author, limit); err != nil {
			return nil, 0, err
		}
		if len(followers) > limit {
			followers = nil // a celebrity: merged at read time
			s.fan.metrics.notPushed.Inc()
			s.fan.mu.Lock()
			if len(s.fan.celebs) > maxCachedCounts {
				clear(s.fan.celebs)
			}
			s.fan.celebs[p.Author] = followerCount{n: limit + 1, at: time.Now()}
			s.fan.mu.Unlock()
		}
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return nil, 0, fmt.Errorf("encoding post %s: %w", p.ID, err)
	}
	rg := s.ring.Load()
	var local []string
	remote := map[string][]string{}
	var buf [8]string
	for _, u := range append(followers, p.Author) {
		for _, m := range rg.Preference(buf[:0], u) {
			if m == s.self {
				local = append(local, u)
			} else {
				remote[m] = append(remote[m], u)
			}
		}
	}
	if !slices.Contains(local, p.Author) {
		// This member answers for the author without being in its
		// preference list (a previous holder during a move): the
		// author's own entry still goes here, where it reads.
		local = append(local, p.Author)
	}
	n := len(local)
	for _, users := range remote {
		n += len(users)
	}
	if n > s.fan.inline {
		// A big fan-out: only the author's own entry goes in the post's
		// batch; the followers' entries here are queued like the
		// others, so the post is acknowledged without waiting for them.
		for _, u := range local {
			if u != p.Author {
				remote[s.self] = append(remote[s.self], u)
			}
		}
		local = []string{p.Author}
	}
	writes := make([]store.Write, 0, len(local)+len(remote))
	for _, u := range local {
		writes = append(writes, store.InboxWrite(u, p, raw))
	}
	var out []queued
	for m, users := range remote {
		for chunk := range slices.Chunk(users, maxDeliveryUsers) {
			w, e, err := s.store.OutboxWrite(m, store.InboxDelivery{Users: chunk, Posts: []feed.Post{p}})
			if err != nil {
				return nil, 0, err
			}
			writes = append(writes, w)
			out = append(out, queued{m, e})
		}
	}
	if err := s.store.AddPost(p, writes...); err != nil {
		return nil, 0, err
	}
	s.delivered(store.InboxDelivery{Users: local, Posts: []feed.Post{p}}, [][]byte{raw})
	return out, n, nil
}

// authorStripes is how many locks lockAuthor spreads authors over:
// enough that unrelated authors rarely wait for each other.
const authorStripes = 256

// lockAuthor locks author's stripe and returns the unlock.
func (f *fanout) lockAuthor(author string) func() {
	h := fnv.New32a()
	h.Write([]byte(author))
	mu := &f.authors[h.Sum32()%authorStripes]
	mu.Lock()
	return mu.Unlock
}

// knownCelebrity reports whether author was found above the fan-out
// limit within countTTL, so its next posts skip counting its followers
// (a scan of limit+1 edges). Readers merge authors above half the limit,
// so a post not pushed in that window is still read.
func (s *Server) knownCelebrity(author string, limit int) bool {
	s.fan.mu.Lock()
	defer s.fan.mu.Unlock()
	c, ok := s.fan.celebs[author]
	return ok && c.n > limit && time.Since(c.at) < countTTL
}

// deliverQueued delivers outbox entries just written: at once when the
// fan-out is small and no other inline delivery to the member is under
// way (each bounded by the member timeout, whatever the caller's
// context: a member that does not answer gets it later), else
// by RunFanout, which it kicks.
func (s *Server) deliverQueued(ctx context.Context, qs []queued, writes int) {
	if len(qs) == 0 {
		return
	}
	if writes > s.fan.inline {
		s.kickFanout()
		return
	}
	byMember := map[string][]store.OutboxEntry{}
	for _, q := range qs {
		byMember[q.member] = append(byMember[q.member], q.entry)
	}
	ctx = context.WithoutCancel(ctx)
	var wg sync.WaitGroup
	failed := atomic.Bool{}
	for m, es := range byMember {
		if m == s.self {
			if err := s.deliverLocal(es); err != nil {
				failed.Store(true)
			}
			continue
		}
		if !s.alive(m) {
			failed.Store(true)
			continue
		}
		// One inline delivery to a member at a time: while one is under
		// way, posts leave theirs to RunFanout, which sends what piled
		// up in batches, so under load a member gets one call and one
		// synced write for many posts instead of one each.
		s.fan.mu.Lock()
		busy := s.fan.busy[m]
		s.fan.busy[m] = true
		s.fan.mu.Unlock()
		if busy {
			failed.Store(true) // kicks RunFanout below
			continue
		}
		wg.Go(func() {
			defer func() {
				s.fan.mu.Lock()
				delete(s.fan.busy, m)
				s.fan.mu.Unlock()
			}()
			cctx, cancel := context.WithTimeout(ctx, s.memberTimeout(m))
			defer cancel()
			if err := s.sendOutbox(cctx, m, es); err != nil {
				s.log.Debug("inline inbox delivery", "op", "fanout", "peer", m, "err", err)
				failed.Store(true)
			}
		})
	}
	wg.Wait()
	if failed.Load() {
		s.kickFanout()
	}
}

func (s *Server) kickFanout() {
	select {
	case s.fan.kick <- struct{}{}:
	default:
	}
}

// inboxRequest is the body of POST /internal/v1/inbox.
type inboxRequest struct {
	Deliveries []store.InboxDelivery `json:"deliveries"`
}

// maxInboxBody fits outboxBatch deliveries of maxDeliveryUsers names,
// or a back-fill of maxDeliveryPosts posts.
const maxInboxBody = outboxBatch*maxDeliveryUsers*(feed.MaxNameLen+3) + maxDeliveryPosts*(4<<10)

// sendOutbox delivers es to member and deletes them once it has them.
func (s *Server) sendOutbox(ctx context.Context, member string, es []store.OutboxEntry) error {
	req := inboxRequest{Deliveries: make([]store.InboxDelivery, 0, len(es))}
	for _, e := range es {
		if len(e.Delivery.Users) > 0 {
			req.Deliveries = append(req.Deliveries, e.Delivery)
		}
	}
	if len(req.Deliveries) > 0 {
		if err := s.call(ctx, http.MethodPost, member, "/internal/v1/inbox", req, nil); err != nil {
			s.fan.metrics.failed.Inc()
			return err
		}
	}
	s.fan.metrics.delivered.Add(float64(len(es)))
	s.copiesDelivered(member, es)
	return s.store.DeleteOutbox(es)
}

// inboxHandler is the node-to-node half of fan-out: it applies
// deliveries to the inboxes here, synced, then answers 204.
func (s *Server) inboxHandler(w http.ResponseWriter, r *http.Request) {
	var req inboxRequest
	if !readJSONLimit(w, r, &req, maxInboxBody) {
		return
	}
	if len(req.Deliveries) > outboxBatch {
		writeError(w, http.StatusBadRequest, fmt.Errorf("%d deliveries, at most %d", len(req.Deliveries), outboxBatch))
		return
	}
	for i, d := range req.Deliveries {
		if err := validDelivery(d); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("delivery %d: %w", i, err))
			return
		}
	}
	for i, d := range req.Deliveries {
		if err := s.deliverHere(d); err != nil {
			s.storeError(w, fmt.Errorf("delivery %d: %w", i, err))
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func validDelivery(d store.InboxDelivery) error {
	if len(d.Users) > maxDeliveryUsers || len(d.Posts) > maxDeliveryPosts {
		return fmt.Errorf("%d users and %d posts, at most %d and %d", len(d.Users), len(d.Posts), maxDeliveryUsers, maxDeliveryPosts)
	}
	for _, u := range d.Users {
		if err := feed.ValidName(u); err != nil {
			return err
		}
	}
	for _, p := range d.Posts {
		if err := feed.ValidName(p.Author); err != nil {
			return fmt.Errorf("post %s: %w", p.ID, err)
		}
		if p.ID.IsZero() {
			return errors.New("a post without an id")
		}
	}
	return nil
}

// deliverHere applies a delivery to this member's inboxes.
func (s *Server) deliverHere(d store.InboxDelivery) error {
	if err := s.store.Deliver(d); err != nil {
		return err
	}
	var raws [][]byte
	if !d.Backfill {
		for _, p := range d.Posts {
			raw, err := json.Marshal(p)
			if err != nil {
				return fmt.Errorf("encoding post %s: %w", p.ID, err)
			}
			raws = append(raws, raw)
		}
	}
	s.delivered(d, raws)
	return nil
}

// delivered follows up entries stored in inboxes here: it tells the
// live streams (raws are the posts' JSON; none for a back-fill) and
// trims inboxes that grew by a quarter of inbox_max since their last
// trim, so trimming costs a few steps per entry.
func (s *Server) delivered(d store.InboxDelivery, raws [][]byte) {
	for _, u := range d.Users {
		for i, p := range d.Posts {
			if i < len(raws) {
				s.fan.hub.publish(u, store.InboxEntry{RawPost: store.RawPost{ID: p.ID, JSON: raws[i]}, Author: p.Author})
			}
		}
	}
	s.fan.metrics.entries.Add(float64(len(d.Users) * len(d.Posts)))
	if d.Backfill {
		s.fan.metrics.backfilled.Add(float64(len(d.Posts)))
	}
	inboxMax := int(s.fan.inboxMax.Load())
	every := max(inboxMax/4, 1)
	var due []string
	s.fan.mu.Lock()
	if len(s.fan.inserts) > maxTrimCounters {
		clear(s.fan.inserts) // trims come a little later for some users
	}
	for _, u := range d.Users {
		s.fan.inserts[u] += len(d.Posts)
		if s.fan.inserts[u] >= every {
			delete(s.fan.inserts, u)
			due = append(due, u)
		}
	}
	s.fan.mu.Unlock()
	for _, u := range due {
		if _, err := s.store.TrimInbox(u, inboxMax); err != nil {
			s.log.Warn("trimming an inbox", "op", "fanout", "user", u, "err", err)
		}
	}
}

// RunFanout delivers queued outbox entries (those a post did not
// deliver at once, or whose member failed), retrying each member with
// backoff, until ctx is done; then it ends the live streams.
func (s *Server) RunFanout(ctx context.Context) error {
	defer s.fan.hub.close()
	t := time.NewTicker(fanoutRetry)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.fan.kick:
		}
		s.DeliverOutbox(ctx)
	}
}

// DeliverOutbox makes one round of outbox delivery to every member not
// in backoff, several members at once (one that does not answer holds
// up only its own entries), and returns how many entries were
// delivered.
func (s *Server) DeliverOutbox(ctx context.Context) int {
	members, err := s.store.OutboxMembers()
	if err != nil {
		s.log.Warn("listing outbox members", "op", "fanout", "err", err)
		return 0
	}
	var done atomic.Int64
	now := time.Now()
	var g errgroup.Group
	g.SetLimit(maxParallelDeliveries)
	for _, m := range members {
		s.fan.mu.Lock()
		b := s.fan.backoff[m]
		s.fan.mu.Unlock()
		if now.Before(b.until) {
			continue
		}
		g.Go(func() error {
			err := s.deliverOutboxTo(ctx, m, &done)
			s.fan.mu.Lock()
			if err != nil {
				b.wait = min(max(2*b.wait, fanoutBackoffMin), fanoutBackoffMax)
				b.until = time.Now().Add(b.wait)
				s.fan.backoff[m] = b
			} else {
				delete(s.fan.backoff, m)
			}
			s.fan.mu.Unlock()
			if err != nil {
				s.log.Debug("inbox delivery", "op", "fanout", "peer", m, "err", err, "retry_in", b.wait.Seconds())
			}
			return nil
		})
	}
	g.Wait()
	return int(done.Load())
}

// maxParallelDeliveries bounds the members DeliverOutbox delivers to at
// once.
const maxParallelDeliveries = 8

// deliverOutboxTo delivers up to maxOutboxBatchesPerRound batches of
// member m's outbox, adding to done.
func (s *Server) deliverOutboxTo(ctx context.Context, m string, done *atomic.Int64) error {
	for range maxOutboxBatchesPerRound {
		es, err := s.store.Outbox(m, outboxBatch)
		if err != nil {
			s.log.Error("undecodable outbox entries dropped", "op", "fanout", "peer", m, "err", err)
		}
		if len(es) == 0 || ctx.Err() != nil {
			return nil
		}
		switch {
		case m == s.self:
			err = s.deliverLocal(es)
		case !s.ring.Load().Has(m):
			err = s.requeue(m, es)
		case !s.alive(m):
			err = fmt.Errorf("member %s is not alive", m)
		default:
			cctx, cancel := context.WithTimeout(ctx, writeTimeouts*s.memberTimeout(m)+time.Second)
			err = s.sendOutbox(cctx, m, es)
			cancel()
		}
		if err != nil {
			return err
		}
		done.Add(int64(len(es)))
	}
	return nil
}

// requeue moves entries queued for member, which has left the ring,
// to the members that hold their users' inboxes now.
func (s *Server) requeue(member string, es []store.OutboxEntry) error {
	rg := s.ring.Load()
	var writes []store.Write
	var local []store.InboxDelivery
	for _, e := range es {
		for m, d := range splitByMember(rg, e.Delivery) {
			if m == s.self {
				local = append(local, d)
				continue
			}
			w, _, err := s.store.OutboxWrite(m, d)
			if err != nil {
				return err
			}
			writes = append(writes, w)
		}
	}
	for _, d := range local {
		if err := s.deliverHere(d); err != nil {
			return err
		}
	}
	if len(writes) > 0 {
		if err := s.store.Queue(writes...); err != nil {
			return err
		}
	}
	s.log.Info("inbox deliveries moved from a removed member", "op", "fanout", "peer", member, "entries", len(es))
	s.kickFanout()
	return s.store.DeleteOutbox(es)
}

// splitByMember splits d by the members that hold its users' inboxes
// under rg (each user's preference list).
func splitByMember(rg *ring.Ring, d store.InboxDelivery) map[string]store.InboxDelivery {
	var buf [8]string
	users := map[string][]string{}
	for _, u := range d.Users {
		for _, m := range rg.Preference(buf[:0], u) {
			users[m] = append(users[m], u)
		}
	}
	out := make(map[string]store.InboxDelivery, len(users))
	for m, us := range users {
		part := d
		part.Users = us
		out[m] = part
	}
	return out
}

// deliverLocal applies entries queued for this member itself (queued
// under an older ring, before this member joined a preference list).
func (s *Server) deliverLocal(es []store.OutboxEntry) error {
	for _, e := range es {
		if len(e.Delivery.Users) == 0 {
			continue
		}
		if err := s.deliverHere(e.Delivery); err != nil {
			return err
		}
	}
	return s.store.DeleteOutbox(es)
}

// backfill puts the recent posts of author into follower's inbox on
// every member of follower's preference list, after follower started
// following author. When author has more posts than are back-filled, or
// they cannot be read, the inboxes' horizon rises above the ones
// missing, so reads merge those in instead.
func (s *Server) backfill(ctx context.Context, follower, author string) {
	n := min(max(int(s.fan.inboxMax.Load())/4, 1), maxDeliveryPosts)
	raw, more, missed, err := s.mergeAuthors(ctx, []string{author}, feed.ID{}, n)
	if err == nil && len(missed) > 0 {
		err = fmt.Errorf("no member of %s's preference list answered", author)
	}
	d := store.InboxDelivery{Users: []string{follower}, Backfill: true}
	switch {
	case err != nil:
		s.log.Warn("back-filling a timeline", "op", "follow", "user", follower, "peer", author, "err", err)
		d.Horizon = s.horizonNow()
	case more && len(raw) > 0:
		d.Horizon = raw[len(raw)-1].ID
	}
	if err == nil {
		for _, r := range raw {
			var p feed.Post
			if err := json.Unmarshal(r.JSON, &p); err != nil {
				s.log.Warn("back-filling a timeline", "op", "follow", "user", follower, "err", fmt.Errorf("decoding post %s: %w", r.ID, err))
				d.Horizon = s.horizonNow()
				d.Posts = nil
				break
			}
			d.Posts = append(d.Posts, p)
		}
	}
	var qs []queued
	var writes []store.Write
	var buf [8]string
	for _, m := range s.ring.Load().Preference(buf[:0], follower) {
		if m == s.self {
			continue
		}
		w, e, err := s.store.OutboxWrite(m, d)
		if err != nil {
			s.log.Warn("back-filling a timeline", "op", "follow", "user", follower, "err", err)
			return
		}
		writes = append(writes, w)
		qs = append(qs, queued{m, e})
	}
	if err := s.deliverHere(d); err != nil {
		s.log.Warn("back-filling a timeline", "op", "follow", "user", follower, "err", err)
	}
	if len(writes) == 0 {
		return
	}
	if err := s.store.Queue(writes...); err != nil {
		s.log.Warn("back-filling a timeline", "op", "follow", "user", follower, "err", err)
		return
	}
	s.deliverQueued(ctx, qs, len(qs)*len(d.Posts))
}

// timelinePage reads one page of name's home timeline: the inbox (one
// range scan, down to its horizon) plus, merged at read time, the posts
// of followees not pushed (celebrities) and, when the page reaches below
// the horizon, of every followee. following are the users name follows.
func (s *Server) timelinePage(ctx context.Context, name string, following []string, before feed.ID, limit int) ([]store.RawPost, bool, error) {
	authors := append(slices.Clip(following), name)
	meta, trusted, err := s.store.Meta(name)
	if err != nil {
		return nil, false, err
	}
	if !trusted {
		// No inbox here that can be trusted (the user arrived by a
		// move, or a replica never served it): merge, and start the
		// inbox from now on.
		posts, more, missed, err := s.mergeAuthors(ctx, authors, before, limit)
		if err == nil && len(missed) > 0 {
			// Without an inbox, a followee nobody answers for is not
			// in the page at all: refuse rather than answer without.
			return nil, false, fmt.Errorf("%w: no member answers for %d of the followees (%s)", errNoMember, len(missed), strings.Join(missed, ", "))
		}
		if err == nil {
			if err := s.store.SetHorizon(name, s.horizonNow()); err != nil {
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
	celebs, err := s.readMerged(ctx, following)
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
			posts, more1, missed, err := s.mergeAuthors(gctx, as, before, limit)
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

// readMerged returns the followees whose posts a timeline read merges:
// every one when nobody is pushed, else those with more than half the
// fan-out limit of followers (see countTTL). A followee whose count
// cannot be learnt is merged too: merging is always correct, only
// slower.
func (s *Server) readMerged(ctx context.Context, following []string) ([]string, error) {
	limit := int(s.fan.limit.Load())
	if limit < 0 {
		return following, nil
	}
	now := time.Now()
	counts := make(map[string]int, len(following))
	var missing []string
	s.fan.mu.Lock()
	for _, a := range following {
		if c, ok := s.fan.counts[a]; ok && now.Sub(c.at) < countTTL {
			counts[a] = c.n
		} else {
			missing = append(missing, a)
		}
	}
	s.fan.mu.Unlock()
	if len(missing) > 0 {
		fetched := s.followerCounts(ctx, missing, limit)
		s.fan.mu.Lock()
		if len(s.fan.counts) > maxCachedCounts {
			clear(s.fan.counts)
		}
		for a, n := range fetched {
			counts[a] = n
			s.fan.counts[a] = followerCount{n: n, at: now}
		}
		s.fan.mu.Unlock()
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
func (s *Server) followerCounts(ctx context.Context, authors []string, limit int) map[string]int {
	rg := s.ring.Load()
	groups := map[string][]string{}
	for _, a := range authors {
		m := s.target(rg, a)
		groups[m] = append(groups[m], a)
	}
	out := map[string]int{}
	var mu sync.Mutex // guards out
	var wg sync.WaitGroup
	for m, as := range groups {
		wg.Go(func() {
			var counts map[string]int
			var err error
			if m == s.self {
				counts, err = s.countLocal(as, limit)
			} else {
				var ans countsAnswer
				cctx, cancel := context.WithTimeout(ctx, s.memberTimeout(m))
				err = s.call(cctx, http.MethodPost, m, "/internal/v1/follower-counts", countsRequest{Users: as, Max: limit}, &ans)
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

func (s *Server) countLocal(users []string, limit int) (map[string]int, error) {
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

func (s *Server) followerCountsHandler(w http.ResponseWriter, r *http.Request) {
	var req countsRequest
	if !readJSONLimit(w, r, &req, maxMergeBody) {
		return
	}
	if len(req.Users) > maxCountUsers || req.Max < 0 || req.Max > 10_000_000 {
		writeError(w, http.StatusBadRequest, fmt.Errorf("%d users (at most %d) or max %d out of range", len(req.Users), maxCountUsers, req.Max))
		return
	}
	for _, u := range req.Users {
		if err := feed.ValidName(u); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
	}
	counts, err := s.countLocal(req.Users, req.Max)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, countsAnswer{Counts: counts})
}

// mergeAuthors merges one page of the authors' posts, at read time: the
// authors are grouped by the member that answers for them; each member
// merges its authors' pages (POST /internal/v1/merge, in parallel) and
// this member merges those. The top limit of the union of every
// author's top limit is exactly the top limit overall, so cursor paging
// is exact. Authors whose member does not answer within the member
// timeout (or cannot be reached) are asked of the next member of their
// preference lists; those none of whose members answer are returned in
// missed, and left out of the page.
func (s *Server) mergeAuthors(ctx context.Context, authors []string, before feed.ID, limit int) (page []store.RawPost, more bool, missed []string, err error) {
	rg := s.ring.Load()
	ctx, cancel := context.WithTimeout(ctx, timelineTimeout)
	defer cancel()
	var all []store.RawPost
	skip := slices.Clip(skipped(ctx))
	for attempt := 0; len(authors) > 0 && attempt <= rg.Replicas(); attempt++ {
		groups := map[string][]string{}
		for _, a := range authors {
			if c, _ := s.candidates(rg, a, skip); len(c) > 0 {
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
				if m == s.self {
					posts, more1, err = s.mergeLocal(as, before, limit)
				} else {
					cctx, cancel := context.WithTimeout(gctx, s.memberTimeout(m))
					posts, more1, err = s.mergeRemote(cctx, m, as, before, limit)
					cancel()
				}
				mu.Lock()
				defer mu.Unlock()
				var pe *peerError
				if err != nil && m != s.self && !errors.As(err, &pe) && ctx.Err() == nil {
					// No answer: the next member of their lists.
					s.failed(m, err.Error())
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
		s.fan.metrics.partial.Inc()
	}
	all, more = top(all, limit, more)
	return all, more, missed, nil
}
