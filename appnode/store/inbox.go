package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/store/kv"
)

// Home-timeline inboxes (fan-out on write) are derived data, kept under
// prefixes of their own, outside the user, post and edge records that
// replication and anti-entropy compare:
//
//	t/<name>/<post id><author>  one inbox entry: the post's JSON; the
//	                            author in the key lets a read filter
//	                            unfollowed authors without decoding
//	i/<name>                    inbox meta: the horizon (see InboxMeta)
//
// Outbox entries (o/, queue.go) are InboxDeliveries still to make to
// another member.
// An inbox is rebuilt from nothing by the read-time merge, so losing one
// loses no data, only speed.
const (
	inboxPrefix = "t/"
	metaPrefix  = "i/"
)

func init() {
	kinds["inbox"] = inboxPrefix
}

func inboxUserPrefix(name string) []byte { return []byte(inboxPrefix + name + "/") }

func inboxKey(name string, id feed.ID, author string) []byte {
	k := append(inboxUserPrefix(name), id[:]...)
	return append(k, author...)
}

func metaKey(name string) []byte { return []byte(metaPrefix + name) }

// Write is one extra record for AddPost to write in the post's batch:
// an inbox entry or an outbox entry (see InboxWrite and Queue.Write).
type Write = kv.Write

// InboxWrite returns the write that puts post (p's JSON in raw) into
// user name's inbox.
func InboxWrite(name string, p feed.Post, raw []byte) Write {
	return Write{Key: inboxKey(name, p.ID, p.Author), Value: raw}
}

// InboxDelivery is what an outbox entry asks a member to do: put Posts
// into the inboxes of Users, and raise their horizons to at least
// Horizon (when not zero).
type InboxDelivery struct {
	Users   []string    `json:"users"`
	Posts   []feed.Post `json:"posts"`
	Horizon feed.ID     `json:"horizon,omitzero"`
	// Backfill marks older posts of a newly followed author: they are
	// not new timeline entries, so live streams do not show them.
	Backfill bool `json:"backfill,omitempty"`
}

// Put writes extra records (inbox and outbox entries) on their own,
// synced.
func (s *Store) Put(ws ...Write) error {
	b := s.db.NewBatch()
	defer b.Close()
	for _, w := range ws {
		b.Set(w.Key, w.Value)
	}
	if err := s.db.Apply(b); err != nil {
		return fmt.Errorf("queueing %d inbox deliveries: %w", len(ws), err)
	}
	return nil
}

// Deliver applies a delivery to this member's inboxes, synced: every
// post into every user's inbox (writing an entry twice is harmless, so
// deliveries are idempotent), and the horizons raised.
func (s *Store) Deliver(d InboxDelivery) error {
	b := s.db.NewBatch()
	defer b.Close()
	for _, p := range d.Posts {
		raw, err := json.Marshal(p)
		if err != nil {
			return fmt.Errorf("encoding post %s: %w", p.ID, err)
		}
		for _, u := range d.Users {
			b.Set(inboxKey(u, p.ID, p.Author), raw)
		}
	}
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	if !d.Horizon.IsZero() {
		for _, u := range d.Users {
			if err := s.raiseHorizon(b, u, d.Horizon, false); err != nil {
				return err
			}
		}
	}
	if err := s.db.Apply(b); err != nil {
		return fmt.Errorf("delivering %d posts to %d inboxes: %w", len(d.Posts), len(d.Users), err)
	}
	return nil
}

// InboxMeta is what a member knows about one user's inbox here.
type InboxMeta struct {
	// Horizon: every post of a followed, pushed author with an id at or
	// above it is in the inbox (once delivered); below it a read merges
	// the authors' posts instead. Zero means the inbox is complete.
	Horizon feed.ID `json:"horizon,omitzero"`
}

// Meta returns user name's inbox meta; ok is false when this member has
// none, so its inbox cannot be trusted (the user came here by
// rebalancing, or was created before fan-out).
func (s *Store) Meta(name string) (m InboxMeta, ok bool, err error) {
	switch err := s.get(metaKey(name), &m); {
	case errors.Is(err, ErrNotFound):
		return m, false, nil
	case err != nil:
		return m, false, fmt.Errorf("reading the inbox meta of %s: %w", name, err)
	}
	return m, true, nil
}

// SetHorizon raises user name's horizon to at least h (creating the
// meta when there is none), synced.
func (s *Store) SetHorizon(name string, h feed.ID) error {
	b := s.db.NewBatch()
	defer b.Close()
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	if err := s.raiseHorizon(b, name, h, true); err != nil {
		return err
	}
	if err := s.db.Apply(b); err != nil {
		return fmt.Errorf("storing the inbox horizon of %s: %w", name, err)
	}
	return nil
}

// raiseHorizon adds to b the meta of name with its horizon at least h.
// Without create, a user with no meta here keeps none: its inbox is not
// trusted, and a raised horizon would make it look trusted. Callers
// hold metaMu.
func (s *Store) raiseHorizon(b *kv.Batch, name string, h feed.ID, create bool) error {
	m, ok, err := s.Meta(name)
	if err != nil {
		return err
	}
	if !ok && !create {
		return nil
	}
	if h.Compare(m.Horizon) > 0 {
		m.Horizon = h
	}
	val, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encoding the inbox meta of %s: %w", name, err)
	}
	b.Set(metaKey(name), val)
	return nil
}

// InboxEntry is one entry read from an inbox.
type InboxEntry struct {
	RawPost
	Author string
}

// Inbox returns up to limit entries of name's inbox with ids below
// before (all when zero) and at or above floor, newest first, passing
// over entries whose author keep rejects; scanned counts the entries
// looked at. It is one reverse range scan.
func (s *Store) Inbox(name string, before, floor feed.ID, limit int, keep func(author string) bool) (out []InboxEntry, more bool, err error) {
	if s.db.Failed() {
		return nil, false, fmt.Errorf("reading the inbox of %s: %w", name, ErrFailed)
	}
	if !before.IsZero() && before.Compare(floor) <= 0 {
		return nil, false, nil // the page is below the floor
	}
	prefix := inboxUserPrefix(name)
	lower := append(bytes.Clone(prefix), floor[:]...)
	upper := kv.PrefixEnd(prefix)
	if !before.IsZero() {
		upper = append(bytes.Clone(prefix), before[:]...)
	}
	it, err := s.db.NewIter(lower, upper)
	if err != nil {
		return nil, false, fmt.Errorf("reading the inbox of %s: %w", name, err)
	}
	defer it.Close()
	for ok := it.Last(); ok; ok = it.Prev() {
		key := it.Key()
		if len(key) < len(prefix)+len(feed.ID{}) {
			continue // not an entry
		}
		author := key[len(prefix)+len(feed.ID{}):]
		if keep != nil && !keep(string(author)) {
			continue
		}
		if len(out) == limit {
			more = true
			break
		}
		var e InboxEntry
		copy(e.ID[:], key[len(prefix):])
		e.Author = string(author)
		e.JSON = bytes.Clone(it.Value())
		out = append(out, e)
	}
	if err := it.Error(); err != nil {
		return nil, false, fmt.Errorf("reading the inbox of %s: %w", name, err)
	}
	return out, more, nil
}

// InboxAfter returns up to limit entries of name's inbox with ids above
// after, oldest first (a stream's replay after Last-Event-ID).
func (s *Store) InboxAfter(name string, after feed.ID, limit int, keep func(author string) bool) ([]InboxEntry, error) {
	if s.db.Failed() {
		return nil, fmt.Errorf("reading the inbox of %s: %w", name, ErrFailed)
	}
	prefix := inboxUserPrefix(name)
	// Every key of id after sorts below after + 0xff: authors are
	// [a-z0-9_].
	lower := append(append(bytes.Clone(prefix), after[:]...), 0xff)
	it, err := s.db.NewIter(lower, kv.PrefixEnd(prefix))
	if err != nil {
		return nil, fmt.Errorf("reading the inbox of %s: %w", name, err)
	}
	defer it.Close()
	var out []InboxEntry
	for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
		key := it.Key()
		if len(key) < len(prefix)+len(feed.ID{}) {
			continue
		}
		author := string(key[len(prefix)+len(feed.ID{}):])
		if keep != nil && !keep(author) {
			continue
		}
		var e InboxEntry
		copy(e.ID[:], key[len(prefix):])
		e.Author = author
		e.JSON = bytes.Clone(it.Value())
		out = append(out, e)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("reading the inbox of %s: %w", name, err)
	}
	return out, nil
}

// TrimInbox keeps the newest max entries of name's inbox and deletes
// the rest, raising the horizon to the oldest entry kept, synced. It
// reports how many entries it deleted (0 when there were at most max).
func (s *Store) TrimInbox(name string, max int) (int, error) {
	if s.db.Failed() {
		return 0, fmt.Errorf("trimming the inbox of %s: %w", name, ErrFailed)
	}
	prefix := inboxUserPrefix(name)
	it, err := s.db.Prefix(prefix)
	if err != nil {
		return 0, fmt.Errorf("trimming the inbox of %s: %w", name, err)
	}
	var keepFrom []byte
	n := 0
	ok := it.Last()
	for ; ok && n < max; ok = it.Prev() {
		n++
		if n == max {
			keepFrom = bytes.Clone(it.Key()) // the iterator reuses its key
		}
	}
	if !ok {
		return 0, it.Close()
	}
	dropped := 0
	for ; ok; ok = it.Prev() {
		dropped++
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("trimming the inbox of %s: %w", name, err)
	}
	var horizon feed.ID
	copy(horizon[:], keepFrom[len(prefix):])
	b := s.db.NewBatch()
	defer b.Close()
	b.DeleteRange(prefix, keepFrom)
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	if err := s.raiseHorizon(b, name, horizon, false); err != nil {
		return 0, err
	}
	if err := s.db.Apply(b); err != nil {
		return 0, fmt.Errorf("trimming the inbox of %s: %w", name, err)
	}
	return dropped, nil
}

// InboxLen counts the entries of name's inbox.
func (s *Store) InboxLen(name string) (int, error) {
	prefix := inboxUserPrefix(name)
	it, err := s.db.Prefix(prefix)
	if err != nil {
		return 0, fmt.Errorf("counting the inbox of %s: %w", name, err)
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	return n, it.Close()
}

// removedMark is how a removed edge's JSON says so (feed.Edge's
// "removed" field is omitted when false).
var removedMark = []byte(`"removed":true`)

// ActiveFollowers returns up to max+1 of the users following name (not
// removed edges), reading keys and not decoding values, so an author
// with very many followers costs one short scan per post.
func (s *Store) ActiveFollowers(name string, max int) ([]string, error) {
	return s.activeEdges(Followers, name, max)
}

// ActiveFollowing returns the users name follows (not removed edges),
// without decoding the edges: a timeline read needs it every time.
func (s *Store) ActiveFollowing(name string) ([]string, error) {
	return s.activeEdges(Following, name, math.MaxInt-1)
}

func (s *Store) activeEdges(side Side, name string, max int) ([]string, error) {
	if s.db.Failed() {
		return nil, fmt.Errorf("reading the edges of %s: %w", name, ErrFailed)
	}
	lower := []byte(string(byte(side)) + "/" + name + "/")
	it, err := s.db.Prefix(lower)
	if err != nil {
		return nil, fmt.Errorf("reading the edges of %s: %w", name, err)
	}
	out := []string{}
	for ok := it.First(); ok && len(out) <= max; ok = it.Next() {
		if bytes.Contains(it.Value(), removedMark) {
			continue
		}
		out = append(out, string(it.Key()[len(lower):]))
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("reading the edges of %s: %w", name, err)
	}
	return out, nil
}
