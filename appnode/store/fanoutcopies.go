package store

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ringfront/ringfront/appnode/feed"
)

// Fan-out copies keep a post's fan-out alive when its coordinator is
// lost. A post's outbox entries (the deliveries to the members holding
// its author's followers' inboxes) are written on the member that took
// the post; if that member's disk is lost before they are delivered,
// the followers' timelines elsewhere would miss the post for good. So
// the post's other replicas keep a copy of each entry, in the batch
// that stores their copy of the post:
//
//	c/<coordinator>\x00<post id><member>  the delivery, the coordinator's
//	                                      store id, and when it was made
//
// The coordinator tells them when it has delivered an entry and they
// delete their copy. They deliver it themselves when the coordinator
// left the ring, answers with another store id (a new disk), or has not
// said so for a long time; a delivery is idempotent, so one made twice
// is harmless.
const copyPrefix = "c/"

// storeIDKey holds this store's id, made when the store is created.
const storeIDKey = "s/id"

func init() { kinds["fan-out copies"] = copyPrefix }

func copyCoordPrefix(coord string) []byte { return []byte(copyPrefix + coord + "\x00") }

func copyKey(coord string, post feed.ID, member string) []byte {
	return append(append(copyCoordPrefix(coord), post[:]...), member...)
}

// FanoutCopy is a copy of another member's outbox entry for Member.
type FanoutCopy struct {
	Coordinator string        `json:"-"`
	Post        feed.ID       `json:"-"`
	Member      string        `json:"-"`
	Delivery    InboxDelivery `json:"delivery"`
	// Store is the coordinator's store id when it made the entry.
	Store string    `json:"store"`
	Made  time.Time `json:"made"`
}

// ID is this store's id: random, made when the store was created, so a
// member on a new (or wiped) disk has a new one.
func (s *Store) ID() string { return s.id }

// initID reads the store's id, making one for a new store.
func (s *Store) initID() error {
	v, err := s.db.Get([]byte(storeIDKey))
	if err != nil {
		return fmt.Errorf("reading the store id: %w", err)
	}
	if v != nil {
		s.id = string(v)
		return nil
	}
	return s.newID()
}

// newID gives the store a new random id, stored durably.
func (s *Store) newID() error {
	var raw [16]byte
	rand.Read(raw[:])
	id := hex.EncodeToString(raw[:])
	b := s.db.NewBatch()
	defer b.Close()
	b.Set([]byte(storeIDKey), []byte(id))
	if err := s.db.Apply(b); err != nil {
		return fmt.Errorf("storing the store id: %w", err)
	}
	s.id = id
	return nil
}

// CopyWrite returns the write that keeps c, for AddPost's batch.
func CopyWrite(c FanoutCopy) (Write, error) {
	val, err := json.Marshal(c)
	if err != nil {
		return Write{}, fmt.Errorf("encoding a fan-out copy: %w", err)
	}
	return Write{Key: copyKey(c.Coordinator, c.Post, c.Member), Value: val}, nil
}

// CopyCoordinators lists the coordinators this store keeps fan-out
// copies for, one seek each.
func (s *Store) CopyCoordinators() ([]string, error) {
	out, err := s.db.Names(copyPrefix)
	if err != nil {
		return nil, fmt.Errorf("listing fan-out copies: %w", err)
	}
	return out, nil
}

// Copies returns up to limit of the fan-out copies kept for coord,
// oldest post first.
func (s *Store) Copies(coord string, limit int) ([]FanoutCopy, error) {
	lower := copyCoordPrefix(coord)
	it, err := s.db.Prefix(lower)
	if err != nil {
		return nil, fmt.Errorf("reading fan-out copies of %s: %w", coord, err)
	}
	var out []FanoutCopy
	var errs error
	for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
		k := it.Key()[len(lower):]
		var c FanoutCopy
		if len(k) <= len(c.Post) {
			errs = errors.Join(errs, fmt.Errorf("malformed fan-out copy key %q", it.Key()))
			continue
		}
		if err := json.Unmarshal(it.Value(), &c); err != nil {
			errs = errors.Join(errs, fmt.Errorf("fan-out copy %q: %w", it.Key(), err))
			continue
		}
		copy(c.Post[:], k)
		c.Coordinator, c.Member = coord, string(k[len(c.Post):])
		out = append(out, c)
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("reading fan-out copies of %s: %w", coord, err)
	}
	return out, errs
}

// CopyRef names one fan-out copy: coordinator, post and member.
type CopyRef struct {
	Post   feed.ID `json:"post"`
	Member string  `json:"member"`
}

// DeleteCopies deletes the fan-out copies coord delivered, not synced:
// a deletion lost in a crash only delivers the entry again later.
func (s *Store) DeleteCopies(coord string, refs []CopyRef) error {
	b := s.db.NewBatch()
	defer b.Close()
	for _, r := range refs {
		b.Delete(copyKey(coord, r.Post, r.Member))
	}
	if err := s.db.Commit(b, false); err != nil {
		return fmt.Errorf("deleting %d fan-out copies of %s: %w", len(refs), coord, err)
	}
	return nil
}

// CountCopies counts the fan-out copies, up to limit (0: all).
func (s *Store) CountCopies(limit int) (int, error) { return s.db.Count(copyPrefix, limit) }
