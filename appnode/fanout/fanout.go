package fanout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/peer"
	"github.com/ringfront/ringfront/appnode/queue"
	"github.com/ringfront/ringfront/appnode/ring"
	"github.com/ringfront/ringfront/appnode/store"
	"github.com/ringfront/ringfront/appnode/timeline"
	"github.com/ringfront/ringfront/appnode/transport"
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
	// DefaultFanoutLimit is fanout_limit (see timeline).
	DefaultFanoutLimit = timeline.DefaultFanoutLimit
	// DefaultInboxMax is inbox_max: 800 entries (40 pages of 20) of
	// about 200 bytes each is ~160 KB per user and replica.
	DefaultInboxMax = 800
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
	// countTTL is how long a post trusts that its author has more
	// followers than the fan-out limit (see knownCelebrity).
	countTTL = 30 * time.Second
	// maxCachedCounts bounds the celebrity cache (~100 bytes each).
	maxCachedCounts = 100_000
	// maxParallelDeliveries bounds the members the outbox is delivered
	// to at once.
	maxParallelDeliveries = 8
	// maxTrimCounters bounds the per-user insert counters for trimming.
	maxTrimCounters = 100_000
)

// SetLimits sets fanout_limit (0: DefaultFanoutLimit; negative: no
// author is pushed, every timeline read merges) and inbox_max (0:
// DefaultInboxMax).
func (s *Fanout) SetLimits(limit, inboxMax int) {
	if limit == 0 {
		limit = DefaultFanoutLimit
	}
	if inboxMax <= 0 {
		inboxMax = DefaultInboxMax
	}
	s.limit.Store(int64(limit))
	s.inboxMax.Store(int64(inboxMax))
	s.tl.SetFanoutLimit(limit)
}

// Queued is an outbox entry written for a member, to deliver at once.
type Queued struct {
	Member   string
	Entry    store.QueueEntry
	Delivery store.InboxDelivery
}

// outboxWrite returns the write that queues d for member, and the
// entry it makes.
func (s *Fanout) outboxWrite(member string, d store.InboxDelivery) (store.Write, Queued, error) {
	v, err := json.Marshal(d)
	if err != nil {
		return store.Write{}, Queued{}, fmt.Errorf("encoding an outbox entry for %s: %w", member, err)
	}
	w, e := s.store.Outbox().Write(member, v)
	return w, Queued{Member: member, Entry: e, Delivery: d}, nil
}

// StorePost stores a post with its fan-out (see the comment at the top):
// one synced batch holds the post, the author's own inbox entry here,
// the entries of followers whose inboxes are here, and an outbox entry
// per other member (for a fan-out above inlineFanout, the followers'
// entries here are queued too). It returns the outbox entries and how
// many inbox writes the post makes.
func (s *Fanout) StorePost(p feed.Post) ([]Queued, int, error) {
	// From reading the followers to storing the post, no follower edge
	// of the author is stored here (replica's MergeEdge): a follow either
	// comes before (the follower is pushed) or after (its back-fill
	// reads this post).
	defer s.LockAuthor(p.Author)()
	limit := int(s.limit.Load())
	var followers []string
	if limit > 0 && s.knownCelebrity(p.Author, limit) {
		s.metrics.notPushed.Inc()
	} else if limit > 0 {
		var err error
		if followers, err = s.store.ActiveFollowers(p.Author, limit); err != nil {
			return nil, 0, err
		}
		if len(followers) > limit {
			followers = nil // a celebrity: merged at read time
			s.metrics.notPushed.Inc()
			s.mu.Lock()
			if len(s.celebs) > maxCachedCounts {
				clear(s.celebs)
			}
			s.celebs[p.Author] = followerCount{n: limit + 1, at: time.Now()}
			s.mu.Unlock()
		}
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return nil, 0, fmt.Errorf("encoding post %s: %w", p.ID, err)
	}
	rg := s.c.Ring()
	var local []string
	remote := map[string][]string{}
	var buf [8]string
	for _, u := range append(followers, p.Author) {
		for _, m := range rg.Preference(buf[:0], u) {
			if m == s.c.Self() {
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
	if n > s.inline {
		// A big fan-out: only the author's own entry goes in the post's
		// batch; the followers' entries here are queued like the
		// others, so the post is acknowledged without waiting for them.
		for _, u := range local {
			if u != p.Author {
				remote[s.c.Self()] = append(remote[s.c.Self()], u)
			}
		}
		local = []string{p.Author}
	}
	writes := make([]store.Write, 0, len(local)+len(remote))
	for _, u := range local {
		writes = append(writes, store.InboxWrite(u, p, raw))
	}
	var out []Queued
	for m, users := range remote {
		for chunk := range slices.Chunk(users, maxDeliveryUsers) {
			w, q, err := s.outboxWrite(m, store.InboxDelivery{Users: chunk, Posts: []feed.Post{p}})
			if err != nil {
				return nil, 0, err
			}
			writes = append(writes, w)
			out = append(out, q)
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

// LockAuthor locks author's stripe and returns the unlock: from
// reading the author's followers to storing a post, no follower edge of
// the author is stored here.
func (s *Fanout) LockAuthor(author string) func() {
	h := fnv.New32a()
	h.Write([]byte(author))
	mu := &s.authors[h.Sum32()%authorStripes]
	mu.Lock()
	return mu.Unlock
}

// knownCelebrity reports whether author was found above the fan-out
// limit within countTTL, so its next posts skip counting its followers
// (a scan of limit+1 edges). Readers merge authors above half the limit,
// so a post not pushed in that window is still read.
func (s *Fanout) knownCelebrity(author string, limit int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.celebs[author]
	return ok && c.n > limit && time.Since(c.at) < countTTL
}

// DeliverQueued delivers outbox entries just written: at once when the
// fan-out is small and no other inline delivery to the member is under
// way (each bounded by the member timeout, whatever the caller's
// context: a member that does not answer gets it later), else
// by Run, which it kicks.
func (s *Fanout) DeliverQueued(ctx context.Context, qs []Queued, writes int) {
	if len(qs) == 0 {
		return
	}
	if writes > s.inline {
		s.Kick()
		return
	}
	byMember := map[string][]Queued{}
	for _, q := range qs {
		byMember[q.Member] = append(byMember[q.Member], q)
	}
	ctx = context.WithoutCancel(ctx)
	var wg sync.WaitGroup
	failed := atomic.Bool{}
	for m, es := range byMember {
		if m == s.c.Self() {
			if err := s.sendAndDelete(ctx, m, es); err != nil {
				failed.Store(true)
			}
			continue
		}
		if !s.c.Alive(m) {
			failed.Store(true)
			continue
		}
		// One inline delivery to a member at a time: while one is under
		// way, posts leave theirs to RunFanout, which sends what piled
		// up in batches, so under load a member gets one call and one
		// synced write for many posts instead of one each.
		s.mu.Lock()
		busy := s.busy[m]
		s.busy[m] = true
		s.mu.Unlock()
		if busy {
			failed.Store(true) // kicks RunFanout below
			continue
		}
		wg.Go(func() {
			defer func() {
				s.mu.Lock()
				delete(s.busy, m)
				s.mu.Unlock()
			}()
			cctx, cancel := context.WithTimeout(ctx, s.c.MemberTimeout(m))
			defer cancel()
			if err := s.sendAndDelete(cctx, m, es); err != nil {
				s.log.Debug("inline inbox delivery", "op", "fanout", "peer", m, "err", err)
				failed.Store(true)
			}
		})
	}
	wg.Wait()
	if failed.Load() {
		s.Kick()
	}
}

// Kick has Run deliver the outbox now.
func (s *Fanout) Kick() { s.outbox.Kick() }

// inboxRequest is the body of POST /internal/v1/inbox.
type inboxRequest struct {
	Deliveries []store.InboxDelivery `json:"deliveries"`
}

// maxInboxBody fits outboxBatch deliveries of maxDeliveryUsers names,
// or a back-fill of maxDeliveryPosts posts.
const maxInboxBody = outboxBatch*maxDeliveryUsers*(feed.MaxNameLen+3) + maxDeliveryPosts*(4<<10)

// sendAndDelete delivers outbox entries (see send) and deletes them once
// member has them.
func (s *Fanout) sendAndDelete(ctx context.Context, member string, qs []Queued) error {
	ds := make([]store.InboxDelivery, len(qs))
	es := make([]store.QueueEntry, len(qs))
	for i, q := range qs {
		ds[i], es[i] = q.Delivery, q.Entry
	}
	if err := s.send(ctx, member, ds); err != nil {
		s.metrics.failed.Inc()
		return err
	}
	if err := s.store.Outbox().Delete(es); err != nil {
		return err
	}
	s.metrics.delivered.Add(float64(len(es)))
	return nil
}

// send delivers deliveries to member (this member itself: to its own
// inboxes), and notes them for the replicas that keep their copies.
func (s *Fanout) send(ctx context.Context, member string, ds []store.InboxDelivery) error {
	req := inboxRequest{Deliveries: make([]store.InboxDelivery, 0, len(ds))}
	for _, d := range ds {
		if len(d.Users) > 0 {
			req.Deliveries = append(req.Deliveries, d)
		}
	}
	if member == s.c.Self() {
		for _, d := range req.Deliveries {
			if err := s.DeliverHere(d); err != nil {
				return err
			}
		}
		return nil
	}
	if len(req.Deliveries) > 0 {
		if err := s.c.Call(ctx, http.MethodPost, member, "/internal/v1/inbox", req, nil); err != nil {
			return err
		}
	}
	s.copiesDelivered(member, ds)
	return nil
}

// inboxHandler is the node-to-node half of fan-out: it applies
// deliveries to the inboxes here, synced, then answers 204.
func (s *Fanout) inboxHandler(w http.ResponseWriter, r *http.Request) {
	var req inboxRequest
	if !transport.ReadJSON(w, r, &req, maxInboxBody) {
		return
	}
	if len(req.Deliveries) > outboxBatch {
		transport.WriteError(w, http.StatusBadRequest, fmt.Errorf("%d deliveries, at most %d", len(req.Deliveries), outboxBatch))
		return
	}
	for i, d := range req.Deliveries {
		if err := ValidDelivery(d); err != nil {
			transport.WriteError(w, http.StatusBadRequest, fmt.Errorf("delivery %d: %w", i, err))
			return
		}
	}
	for i, d := range req.Deliveries {
		if err := s.DeliverHere(d); err != nil {
			transport.StoreError(w, fmt.Errorf("delivery %d: %w", i, err))
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// ValidDelivery checks a delivery that came from another member.
func ValidDelivery(d store.InboxDelivery) error {
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

// DeliverHere applies a delivery to this member's inboxes.
func (s *Fanout) DeliverHere(d store.InboxDelivery) error {
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
func (s *Fanout) delivered(d store.InboxDelivery, raws [][]byte) {
	for _, u := range d.Users {
		for i, p := range d.Posts {
			if i < len(raws) {
				s.hub.publish(u, store.InboxEntry{RawPost: store.RawPost{ID: p.ID, JSON: raws[i]}, Author: p.Author})
			}
		}
	}
	s.metrics.entries.Add(float64(len(d.Users) * len(d.Posts)))
	if d.Backfill {
		s.metrics.backfilled.Add(float64(len(d.Posts)))
	}
	inboxMax := int(s.inboxMax.Load())
	every := max(inboxMax/4, 1)
	var due []string
	s.mu.Lock()
	if len(s.inserts) > maxTrimCounters {
		clear(s.inserts) // trims come a little later for some users
	}
	for _, u := range d.Users {
		s.inserts[u] += len(d.Posts)
		if s.inserts[u] >= every {
			delete(s.inserts, u)
			due = append(due, u)
		}
	}
	s.mu.Unlock()
	for _, u := range due {
		if _, err := s.store.TrimInbox(u, inboxMax); err != nil {
			s.log.Warn("trimming an inbox", "op", "fanout", "user", u, "err", err)
		}
	}
}

// Run delivers queued outbox entries (those a post did not deliver at
// once, or whose member failed), retrying each member with backoff,
// until ctx is done; then it ends the live streams.
func (s *Fanout) Run(ctx context.Context) error {
	defer s.hub.close()
	return s.outbox.Run(ctx, fanoutRetry, nil)
}

// DeliverOutbox makes one round of outbox delivery to every member not
// in backoff, several members at once (one that does not answer holds
// up only its own entries), and returns how many entries were
// delivered.
func (s *Fanout) DeliverOutbox(ctx context.Context) int { return s.outbox.Round(ctx) }

// newOutbox returns the outbox's Deliverer.
func (s *Fanout) newOutbox() *queue.Deliverer {
	return queue.New(queue.Config{
		Name: "fanout", Queue: s.store.Outbox(),
		Batch: outboxBatch, MaxBatches: maxOutboxBatchesPerRound, Parallel: maxParallelDeliveries,
		BackoffMin: fanoutBackoffMin, BackoffMax: fanoutBackoffMax,
		Ready: s.c.Alive,
		Gone:  func(m string) bool { return m != s.c.Self() && !s.c.Ring().Has(m) },
		Send: func(ctx context.Context, m string, es []store.QueueEntry) error {
			ctx, cancel := context.WithTimeout(ctx, peer.WriteTimeouts*s.c.MemberTimeout(m)+time.Second)
			defer cancel()
			return s.send(ctx, m, s.decode(m, es))
		},
		Readdress: s.requeue,
		Delivered: s.metrics.delivered, Failed: s.metrics.failed,
		Log: s.log,
	})
}

// decode decodes outbox entries; one that does not decode (never
// written by this code) is logged and delivered as nothing, so it does
// not block its member's queue for ever.
func (s *Fanout) decode(member string, es []store.QueueEntry) []store.InboxDelivery {
	ds := make([]store.InboxDelivery, len(es))
	for i, e := range es {
		if err := json.Unmarshal(e.Value, &ds[i]); err != nil {
			s.log.Error("undecodable outbox entry dropped", "op", "fanout", "peer", member, "err", err)
			ds[i] = store.InboxDelivery{}
		}
	}
	return ds
}

// requeue moves entries queued for member, which has left the ring,
// to the members that hold their users' inboxes now.
func (s *Fanout) requeue(ctx context.Context, member string, es []store.QueueEntry) error {
	rg := s.c.Ring()
	add := map[string][][]byte{}
	var local []store.InboxDelivery
	for _, d := range s.decode(member, es) {
		for m, part := range SplitByMember(rg, d) {
			if m == s.c.Self() {
				local = append(local, part)
				continue
			}
			v, err := json.Marshal(part)
			if err != nil {
				return fmt.Errorf("encoding an outbox entry for %s: %w", m, err)
			}
			add[m] = append(add[m], v)
		}
	}
	for _, d := range local {
		if err := s.DeliverHere(d); err != nil {
			return err
		}
	}
	if err := s.store.Outbox().Move(es, add); err != nil {
		return err
	}
	s.log.Info("inbox deliveries moved from a removed member", "op", "fanout", "peer", member, "entries", len(es))
	s.Kick()
	return nil
}

// SplitByMember splits d by the members that hold its users' inboxes
// under rg (each user's preference list).
func SplitByMember(rg *ring.Ring, d store.InboxDelivery) map[string]store.InboxDelivery {
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

// Backfill puts the recent posts of author into follower's inbox on
// every member of follower's preference list, after follower started
// following author. When author has more posts than are back-filled, or
// they cannot be read, the inboxes' horizon rises above the ones
// missing, so reads merge those in instead.
func (s *Fanout) Backfill(ctx context.Context, follower, author string) {
	n := s.latePush()
	raw, more, missed, err := s.tl.MergeAuthors(ctx, []string{author}, feed.ID{}, n)
	if err == nil && len(missed) > 0 {
		err = fmt.Errorf("no member of %s's preference list answered", author)
	}
	d := store.InboxDelivery{Users: []string{follower}, Backfill: true}
	switch {
	case err != nil:
		s.log.Warn("back-filling a timeline", "op", "follow", "user", follower, "peer", author, "err", err)
		d.Horizon = s.tl.HorizonNow()
	case more && len(raw) > 0:
		d.Horizon = raw[len(raw)-1].ID
	}
	if err == nil {
		for _, r := range raw {
			var p feed.Post
			if err := json.Unmarshal(r.JSON, &p); err != nil {
				s.log.Warn("back-filling a timeline", "op", "follow", "user", follower, "err", fmt.Errorf("decoding post %s: %w", r.ID, err))
				d.Horizon = s.tl.HorizonNow()
				d.Posts = nil
				break
			}
			d.Posts = append(d.Posts, p)
		}
	}
	var qs []Queued
	var writes []store.Write
	var buf [8]string
	for _, m := range s.c.Ring().Preference(buf[:0], follower) {
		if m == s.c.Self() {
			continue
		}
		w, q, err := s.outboxWrite(m, d)
		if err != nil {
			s.log.Warn("back-filling a timeline", "op", "follow", "user", follower, "err", err)
			return
		}
		writes = append(writes, w)
		qs = append(qs, q)
	}
	if err := s.DeliverHere(d); err != nil {
		s.log.Warn("back-filling a timeline", "op", "follow", "user", follower, "err", err)
	}
	if len(writes) == 0 {
		return
	}
	if err := s.store.Put(writes...); err != nil {
		s.log.Warn("back-filling a timeline", "op", "follow", "user", follower, "err", err)
		return
	}
	s.DeliverQueued(ctx, qs, len(qs)*len(d.Posts))
}
