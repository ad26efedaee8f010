package kv

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Queues are durable per-member queues: records kept for one member
// each, in the order they were made, until they are delivered. A queue
// is a key prefix; its entries are
//
//	<prefix><member>\x00<8-byte seq>
//
// so one member's entries are contiguous and in order. The sequence is
// shared by every queue of the database and starts at the wall clock in
// nanoseconds, so entries made after a restart sort after older ones.
// What an entry holds is its user's business (package queue delivers
// them).

// Queue is one durable per-member queue of the database. It is safe
// for concurrent use.
type Queue struct {
	db     *DB
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

// Queue returns the queue under prefix; what names its entries in
// errors, and sync says whether deletions are synced.
func (d *DB) Queue(prefix, what string, sync bool) *Queue {
	return &Queue{db: d, prefix: prefix, what: what, sync: sync}
}

func (q *Queue) memberPrefix(member string) []byte { return []byte(q.prefix + member + "\x00") }

func (q *Queue) key(member string) []byte {
	return binary.BigEndian.AppendUint64(q.memberPrefix(member), q.db.seq.Add(1))
}

// Write returns the write that queues value for member, to go in
// another record's batch (AddPost's), and the entry it makes.
func (q *Queue) Write(member string, value []byte) (Write, QueueEntry) {
	k := q.key(member)
	return Write{Key: k, Value: value}, QueueEntry{Key: k, Value: value}
}

// Add queues values for member, synced.
func (q *Queue) Add(member string, values ...[]byte) error {
	return q.Move(nil, map[string][][]byte{member: values})
}

// Read returns up to limit of member's entries, oldest first.
func (q *Queue) Read(member string, limit int) ([]QueueEntry, error) {
	if q.db.failed.Load() {
		return nil, fmt.Errorf("reading %s for %s: %w", q.what, member, ErrFailed)
	}
	it, err := q.db.Prefix(q.memberPrefix(member))
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
	b := q.db.NewBatch()
	defer b.Close()
	for _, e := range es {
		b.Delete(e.Key)
	}
	if err := q.db.Commit(b, q.sync); err != nil {
		return fmt.Errorf("deleting %d delivered %s: %w", len(es), q.what, err)
	}
	return nil
}

// Move replaces entries delivered elsewhere or re-addressed: in one
// synced batch it queues each value of add for its member and deletes
// old. A crash leaves either the old entries or the new ones, never
// neither (and never both).
func (q *Queue) Move(old []QueueEntry, add map[string][][]byte) error {
	b := q.db.NewBatch()
	defer b.Close()
	n := 0
	for member, values := range add {
		for _, v := range values {
			b.Set(q.key(member), v)
			n++
		}
	}
	for _, e := range old {
		b.Delete(e.Key)
	}
	if err := q.db.Apply(b); err != nil {
		return fmt.Errorf("moving %d %s to %d new ones: %w", len(old), q.what, n, err)
	}
	return nil
}

// Members lists the members with entries waiting. It seeks from one
// member's entries to the next, so it costs one seek per member, not one
// step per entry: deliveries call it every round.
func (q *Queue) Members() ([]string, error) {
	out, err := q.db.Names(q.prefix)
	if err != nil {
		return nil, fmt.Errorf("listing the members with %s: %w", q.what, err)
	}
	return out, nil
}

// Names lists the names under prefix of keys prefix + name + "\x00" +
// ... (the members of a queue), seeking from one name to the next, so it
// costs one seek per name, not one step per key.
func (d *DB) Names(prefix string) ([]string, error) {
	if d.failed.Load() {
		return nil, ErrFailed
	}
	it, err := d.Prefix([]byte(prefix))
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
		ok = it.SeekGE(PrefixEnd([]byte(prefix + name + "\x00")))
	}
	if err := it.Close(); err != nil {
		return nil, err
	}
	return out, nil
}

// Count counts the entries waiting, stopping at limit when it is
// positive: a metric scraped every few seconds must not read a huge
// queue (a member down for hours) every time.
func (q *Queue) Count(limit int) (int, error) { return q.db.Count(q.prefix, limit) }

// CountFor counts the entries waiting for member.
func (q *Queue) CountFor(member string) (int, error) {
	return q.db.Count(string(q.memberPrefix(member)), 0)
}

// Counts counts the entries waiting, by member, reading at most limit
// of them (0: all), so a caller that runs often (a metrics scrape)
// costs a bounded read however long a member has been down.
func (q *Queue) Counts(limit int) (map[string]int, error) {
	if q.db.failed.Load() {
		return nil, fmt.Errorf("counting %s: %w", q.what, ErrFailed)
	}
	it, err := q.db.Prefix([]byte(q.prefix))
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
