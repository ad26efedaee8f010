package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/store/kv"
)

// Edge notes keep the two sides of a follow edge in step. An edge is
// stored twice: on the follower's side (whom they follow) and on the
// followee's side (who follows them), on two different sets of members.
// When a side stores a change that the other side is not known to have,
// it keeps a note, in the same synced batch:
//
//	x/<side>/<follower>/<followee>  the edge as stored on side, and when
//	                                to make sure the other side has it
//
// The server delivers each due note to the other side's members and
// deletes it once they have the edge (an edge merges by its clock, so a
// delivery the other side already has changes nothing). Every replica
// of a side keeps its own note, so a note survives the loss of any one
// machine; the other side answers a note with a merge, never with a
// note back, so the two sides converge and stop.
const notePrefix = "x/"

func init() { kinds["edge notes"] = notePrefix }

func noteKey(side Side, e feed.Edge) []byte {
	return []byte(notePrefix + string(byte(side)) + "/" + e.Follower + "/" + e.Followee)
}

// EdgeNote is a stored note: the edge stored on Side, to deliver to the
// other side from Due on.
type EdgeNote struct {
	Side Side      `json:"side"`
	Edge feed.Edge `json:"edge"`
	Due  time.Time `json:"due"`

	raw []byte // the stored value, for DeleteEdgeNote
}

// Other is the side the note is for.
func (n EdgeNote) Other() Side {
	if n.Side == Following {
		return Followers
	}
	return Following
}

// User is the user whose side the note is for: the followee when the
// edge is stored on the follower's side, and the other way round.
func (n EdgeNote) User() string {
	if n.Side == Following {
		return n.Edge.Followee
	}
	return n.Edge.Follower
}

// Edge returns the edge stored on side between follower and followee;
// ErrNotFound if there is none.
func (s *Store) Edge(side Side, follower, followee string) (feed.Edge, error) {
	var e feed.Edge
	if err := s.get(side.key(feed.Edge{Follower: follower, Followee: followee}), &e); err != nil {
		return feed.Edge{}, fmt.Errorf("reading edge %s→%s: %w", follower, followee, err)
	}
	return e, nil
}

// MergeEdge merges e into the copy stored on the given side (feed.Merge:
// the later clock wins) and returns the edge now stored and whether it
// changed. When it changed and note is set, the same batch keeps an
// edge note due after delay (see the top of this file): the caller does
// not know that the other side has the edge.
func (s *Store) MergeEdge(side Side, e feed.Edge, note bool, delay time.Duration) (feed.Edge, bool, error) {
	key := side.key(e)
	owner := e.Follower
	if side == Followers {
		owner = e.Followee
	}
	defer s.users.lock(owner)()
	old, err := s.db.Get(key)
	if err != nil {
		return feed.Edge{}, false, fmt.Errorf("merging edge %s→%s: %w", e.Follower, e.Followee, err)
	}
	if old != nil {
		var prev feed.Edge
		if err := json.Unmarshal(old, &prev); err != nil {
			return feed.Edge{}, false, fmt.Errorf("decoding record %q: %w", key, err)
		}
		merged := feed.Merge(prev, e)
		if merged == prev {
			return prev, false, nil
		}
		e = merged
	}
	val, err := json.Marshal(e)
	if err != nil {
		return feed.Edge{}, false, fmt.Errorf("encoding edge: %w", err)
	}
	var extra []func(*kv.Batch)
	if note {
		nv, err := json.Marshal(EdgeNote{Side: side, Edge: e, Due: s.now().Add(delay)})
		if err != nil {
			return feed.Edge{}, false, fmt.Errorf("encoding edge note: %w", err)
		}
		extra = append(extra, func(b *kv.Batch) { b.Set(noteKey(side, e), nv) })
	}
	if err := s.write(owner, key, old, val, extra...); err != nil {
		return feed.Edge{}, false, fmt.Errorf("storing edge %s→%s: %w", e.Follower, e.Followee, err)
	}
	return e, true, nil
}

// EdgeNotes returns up to limit edge notes, due or not.
func (s *Store) EdgeNotes(limit int) ([]EdgeNote, error) {
	if s.db.Failed() {
		return nil, fmt.Errorf("reading edge notes: %w", ErrFailed)
	}
	lower := []byte(notePrefix)
	it, err := s.db.Prefix(lower)
	if err != nil {
		return nil, fmt.Errorf("reading edge notes: %w", err)
	}
	var out []EdgeNote
	var errs error
	for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
		var n EdgeNote
		if err := json.Unmarshal(it.Value(), &n); err != nil {
			errs = errors.Join(errs, fmt.Errorf("decoding edge note %q: %w", it.Key(), err))
			continue
		}
		n.raw = bytes.Clone(it.Value())
		out = append(out, n)
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("reading edge notes: %w", err)
	}
	return out, errs
}

// CountEdgeNotes counts the edge notes, up to limit (0: all).
func (s *Store) CountEdgeNotes(limit int) (int, error) {
	return s.db.Count(notePrefix, limit)
}

// DeleteEdgeNote deletes a delivered note, unless a newer change of the
// edge replaced it meanwhile (then that one is still to deliver). The
// deletion is not synced: a note that comes back after a crash is only
// delivered again, which changes nothing.
func (s *Store) DeleteEdgeNote(n EdgeNote) error {
	owner := n.Edge.Follower
	if n.Side == Followers {
		owner = n.Edge.Followee
	}
	defer s.users.lock(owner)()
	key := noteKey(n.Side, n.Edge)
	cur, err := s.db.Get(key)
	if err != nil {
		return fmt.Errorf("deleting edge note %q: %w", key, err)
	}
	if !bytes.Equal(cur, n.raw) {
		return nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	b.Delete(key)
	if err := s.db.Commit(b, false); err != nil {
		return fmt.Errorf("deleting edge note %q: %w", key, err)
	}
	return nil
}
