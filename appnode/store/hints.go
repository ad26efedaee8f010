package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Hints are writes kept for a replica that did not take them (it was
// dead, or the call failed), durable like every other write, until they
// are delivered. Keys: "h/" + member + "\x00" + 8-byte sequence, so one
// member's hints are contiguous and in the order they were made.

const hintPrefix = "h/"

func hintMemberPrefix(member string) []byte { return []byte(hintPrefix + member + "\x00") }

// Hint is one stored hint.
type Hint struct {
	Key    []byte // for DeleteHints
	Record []byte // what the replica should have received
}

// AddHint stores record for member, synced.
func (s *Store) AddHint(member string, record []byte) error {
	key := binary.BigEndian.AppendUint64(hintMemberPrefix(member), s.hintSeq.Add(1))
	b := s.db.NewBatch()
	defer b.Close()
	b.Set(key, record, nil)
	if err := s.apply(b); err != nil {
		return fmt.Errorf("storing a hint for %s: %w", member, err)
	}
	return nil
}

// Hints returns up to limit of member's hints, oldest first.
func (s *Store) Hints(member string, limit int) ([]Hint, error) {
	if s.failed.Load() {
		return nil, fmt.Errorf("reading hints: %w", ErrFailed)
	}
	lower := hintMemberPrefix(member)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return nil, fmt.Errorf("reading hints for %s: %w", member, err)
	}
	var out []Hint
	for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
		out = append(out, Hint{Key: bytes.Clone(it.Key()), Record: bytes.Clone(it.Value())})
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("reading hints for %s: %w", member, err)
	}
	return out, nil
}

// DeleteHints removes delivered hints, synced.
func (s *Store) DeleteHints(hs []Hint) error {
	b := s.db.NewBatch()
	defer b.Close()
	for _, h := range hs {
		b.Delete(h.Key, nil)
	}
	if err := s.apply(b); err != nil {
		return fmt.Errorf("deleting %d delivered hints: %w", len(hs), err)
	}
	return nil
}

// HintCounts counts the stored hints by member.
func (s *Store) HintCounts() (map[string]int, error) { return s.HintCountsUpTo(0) }

// HintCountsUpTo counts the stored hints by member, reading at most
// limit of them (0: all), so a caller that runs often (a metrics
// scrape) costs a bounded read however long a member has been down.
func (s *Store) HintCountsUpTo(limit int) (map[string]int, error) {
	if s.failed.Load() {
		return nil, fmt.Errorf("counting hints: %w", ErrFailed)
	}
	lower := []byte(hintPrefix)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return nil, fmt.Errorf("counting hints: %w", err)
	}
	out := map[string]int{}
	n := 0
	for ok := it.First(); ok && (limit <= 0 || n < limit); ok = it.Next() {
		n++
		k := it.Key()[len(hintPrefix):]
		if i := bytes.IndexByte(k, 0); i >= 0 {
			out[string(k[:i])]++
		}
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("counting hints: %w", err)
	}
	return out, nil
}

// HintCountFor counts the hints stored for member.
func (s *Store) HintCountFor(member string) (int, error) {
	return s.countPrefix(string(hintMemberPrefix(member)), 0)
}

// HintMembers lists the members that have hints waiting. It seeks from
// one member's hints to the next, so it costs one seek per member, not
// one step per hint: handoff calls it every round.
func (s *Store) HintMembers() ([]string, error) {
	out, err := s.queueNames(hintPrefix)
	if err != nil {
		return nil, fmt.Errorf("listing hinted members: %w", err)
	}
	return out, nil
}

// queueNames lists the names of the queues under prefix (keys prefix +
// name + "\x00" + ...), seeking from one queue to the next, so it costs
// one seek per queue, not one step per entry.
func (s *Store) queueNames(prefix string) ([]string, error) {
	if s.failed.Load() {
		return nil, ErrFailed
	}
	lower := []byte(prefix)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return nil, err
	}
	var out []string
	for ok := it.First(); ok; {
		k := it.Key()[len(prefix):]
		i := bytes.IndexByte(k, 0)
		if i < 0 {
			ok = it.Next() // not a queue key; step over it
			continue
		}
		name := string(k[:i])
		out = append(out, name)
		ok = it.SeekGE(prefixEnd([]byte(prefix + name + "\x00")))
	}
	if err := it.Close(); err != nil {
		return nil, err
	}
	return out, nil
}

// initHintSeq starts the hint sequence at the wall clock in
// nanoseconds, so hints made after a restart sort after older ones.
func (s *Store) initHintSeq() { s.hintSeq.Store(uint64(time.Now().UnixNano())) }

// MoveHints replaces delivered-elsewhere or re-addressed hints: in one
// synced batch it stores each record of add for its member and deletes
// old. A crash leaves either the old hints or the new ones, never
// neither (and never both).
func (s *Store) MoveHints(old []Hint, add map[string][][]byte) error {
	b := s.db.NewBatch()
	defer b.Close()
	n := 0
	for member, recs := range add {
		for _, rec := range recs {
			b.Set(binary.BigEndian.AppendUint64(hintMemberPrefix(member), s.hintSeq.Add(1)), rec, nil)
			n++
		}
	}
	for _, h := range old {
		b.Delete(h.Key, nil)
	}
	if err := s.apply(b); err != nil {
		return fmt.Errorf("moving %d hints to %d new ones: %w", len(old), n, err)
	}
	return nil
}
