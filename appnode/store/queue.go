package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Queues are durable per-member queues: records kept for one member
// each, in the order they were made, until they are delivered. There are
// two, with one key layout:
//
//	h/<member>\x00<8-byte seq>  hints: writes kept for a replica that
//	                            did not take them (it was dead, or the
//	                            call failed)
//	o/<member>\x00<8-byte seq>  the fan-out outbox: inbox deliveries
//	                            still to make to member
//
// One member's entries are contiguous and in order; the sequence is
// shared by both queues and starts at the wall clock in nanoseconds, so
// entries made after a restart sort after older ones. What an entry
// holds is its user's business (package queue delivers them).
const (
	hintPrefix   = "h/"
	outboxPrefix = "o/"
)

func init() { kinds["outbox"] = outboxPrefix }

// Queue is one durable per-member queue of the store. It is safe for
// concurrent use.
type Queue struct {
	s      *Store
	prefix string
	what   string // for errors
	// sync says whether deletions are synced: a hint lost to a crash
	// after its deletion was not synced would come back (harmless), an
	// outbox entry too; the outbox is not synced because every post
	// would pay a second sync.
	sync bool
}

// QueueEntry is one entry of a queue.
type QueueEntry struct {
	Key   []byte // for Delete and Move
	Value []byte
}

// Hints is the queue of hints.
func (s *Store) Hints() *Queue { return &Queue{s: s, prefix: hintPrefix, what: "hints", sync: true} }

// Outbox is the fan-out outbox.
func (s *Store) Outbox() *Queue { return &Queue{s: s, prefix: outboxPrefix, what: "outbox entries"} }

func (q *Queue) memberPrefix(member string) []byte { return []byte(q.prefix + member + "\x00") }

func (q *Queue) key(member string) []byte {
	return binary.BigEndian.AppendUint64(q.memberPrefix(member), q.s.seq.Add(1))
}

// Write returns the write that queues value for member, to go in
// another record's batch (AddPost's), and the entry it makes.
func (q *Queue) Write(member string, value []byte) (Write, QueueEntry) {
	k := q.key(member)
	return Write{key: k, value: value}, QueueEntry{Key: k, Value: value}
}

// Add queues values for member, synced.
func (q *Queue) Add(member string, values ...[]byte) error {
	return q.Move(nil, map[string][][]byte{member: values})
}

// Read returns up to limit of member's entries, oldest first.
func (q *Queue) Read(member string, limit int) ([]QueueEntry, error) {
	if q.s.failed.Load() {
		return nil, fmt.Errorf("reading %s for %s: %w", q.what, member, ErrFailed)
	}
	lower := q.memberPrefix(member)
	it, err := q.s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return nil, fmt.Errorf("reading %s for %s: %w", q.what, member, err)
	}
	var out []QueueEntry
	for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
		out = append(out, QueueEntry{Key: bytes.Clone(it.Key()), Value: bytes.Clone(it.Value())})
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("reading %s for %s: %w", q.what, member, err)
	}
	return out, nil
}

// Delete removes delivered entries.
func (q *Queue) Delete(es []QueueEntry) error {
	b := q.s.db.NewBatch()
	defer b.Close()
	for _, e := range es {
		b.Delete(e.Key, nil)
	}
	opts := pebble.NoSync
	if q.sync {
		opts = pebble.Sync
	}
	if err := q.s.commit(b, opts); err != nil {
		return fmt.Errorf("deleting %d delivered %s: %w", len(es), q.what, err)
	}
	return nil
}

// Move replaces entries delivered elsewhere or re-addressed: in one
// synced batch it queues each value of add for its member and deletes
// old. A crash leaves either the old entries or the new ones, never
// neither (and never both).
func (q *Queue) Move(old []QueueEntry, add map[string][][]byte) error {
	b := q.s.db.NewBatch()
	defer b.Close()
	n := 0
	for member, values := range add {
		for _, v := range values {
			b.Set(q.key(member), v, nil)
			n++
		}
	}
	for _, e := range old {
		b.Delete(e.Key, nil)
	}
	if err := q.s.apply(b); err != nil {
		return fmt.Errorf("moving %d %s to %d new ones: %w", len(old), q.what, n, err)
	}
	return nil
}

// Members lists the members with entries waiting. It seeks from one
// member's entries to the next, so it costs one seek per member, not one
// step per entry: deliveries call it every round.
func (q *Queue) Members() ([]string, error) {
	out, err := q.s.queueNames(q.prefix)
	if err != nil {
		return nil, fmt.Errorf("listing the members with %s: %w", q.what, err)
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

// Count counts the entries waiting, stopping at limit when it is
// positive: a metric scraped every few seconds must not read a huge
// queue (a member down for hours) every time.
func (q *Queue) Count(limit int) (int, error) { return q.s.countPrefix(q.prefix, limit) }

// CountFor counts the entries waiting for member.
func (q *Queue) CountFor(member string) (int, error) {
	return q.s.countPrefix(string(q.memberPrefix(member)), 0)
}

// Counts counts the entries waiting, by member, reading at most limit
// of them (0: all), so a caller that runs often (a metrics scrape)
// costs a bounded read however long a member has been down.
func (q *Queue) Counts(limit int) (map[string]int, error) {
	if q.s.failed.Load() {
		return nil, fmt.Errorf("counting %s: %w", q.what, ErrFailed)
	}
	lower := []byte(q.prefix)
	it, err := q.s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return nil, fmt.Errorf("counting %s: %w", q.what, err)
	}
	out := map[string]int{}
	n := 0
	for ok := it.First(); ok && (limit <= 0 || n < limit); ok = it.Next() {
		n++
		k := it.Key()[len(q.prefix):]
		if i := bytes.IndexByte(k, 0); i >= 0 {
			out[string(k[:i])]++
		}
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("counting %s: %w", q.what, err)
	}
	return out, nil
}

// initSeq starts the queue sequence at the wall clock in nanoseconds,
// so entries made after a restart sort after older ones.
func (s *Store) initSeq() { s.seq.Store(uint64(time.Now().UnixNano())) }
