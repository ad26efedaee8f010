package digest

import (
	"crypto/md5"
	"crypto/sha256"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/ringfront/ringfront/appnode/store/kv"
)

// Digests are kept up to date with every write of the store so that
// anti-entropy never has to read the records themselves to find out
// whether two replicas agree.
//
// A user's digest is the XOR of a hash of each of the user's records
// (key and value): it does not depend on the order records were
// written in, two replicas holding the same records have the same
// digest, and a record that changes (an edge merged to a later clock, a
// user record that lost a creation conflict) is XORed out with its old
// value and in with its new one. Each user's digest is stored under
//
//	dg/<md5(name)><name>
//
// in the same synced batch as the record it covers, so the two never
// disagree, even after a crash. The keys sort by md5(name), the ring's
// own hash: the users of any ring range are one contiguous key range.
//
// Above the users, the Table keeps in memory the XOR of the digests of
// every user in each of NumLeaves leaves (users by the first LeafBits
// bits of md5(name)), rebuilt from the dg/ entries at Load (O(users)
// small reads, once) and updated after every commit. A comparison of two
// replicas reads the leaves (no store reads at all) and only for the
// leaves that differ, or that a ring position cuts in two, the per-user
// entries.
//
// A database written before digests existed has none: Load computes
// them once from the records (one full read, by the store, which knows
// which records are whose) and marks the database so it never does
// again.

// Digest summarises a set of records (see above).
type Digest [16]byte

// IsZero reports whether d is the digest of no records.
func (d Digest) IsZero() bool { return d == Digest{} }

// Xor folds o into d.
func (d *Digest) Xor(o Digest) {
	for i := range d {
		d[i] ^= o[i]
	}
}

// LeafBits is how many leading bits of md5(name) pick a user's leaf:
// 2^16 leaves keep a million users at about 15 per leaf, and the
// in-memory leaf table at 1 MiB.
const LeafBits = 16

// NumLeaves is the number of leaves.
const NumLeaves = 1 << LeafBits

// LeafOf returns the leaf of user name.
func LeafOf(name string) int {
	h := md5.Sum([]byte(name))
	return int(h[0])<<8 | int(h[1])
}

const (
	// Prefix is the prefix of the per-user digest entries.
	Prefix = "dg/"
	// MarkKey holds version once every record is covered by the dg/
	// entries.
	MarkKey = "meta/digests"
	version = "1"
)

// Key is the key of user name's digest entry.
func Key(name string) []byte {
	h := md5.Sum([]byte(name))
	k := make([]byte, 0, len(Prefix)+len(h)+len(name))
	k = append(k, Prefix...)
	k = append(k, h[:]...)
	return append(k, name...)
}

// Record is the hash of one record.
func Record(key, val []byte) Digest {
	m := sha256.New()
	m.Write(key)
	m.Write([]byte{0})
	m.Write(val)
	var sum [sha256.Size]byte
	var d Digest
	copy(d[:], m.Sum(sum[:0]))
	return d
}

// Table is the digests of one database: the per-user entries in the
// database, and in memory the XOR of the user digests of each leaf. It
// is safe for concurrent use; the writes of one user must be serialised
// by the caller (Put, then commit, then Committed).
type Table struct {
	db     *kv.DB
	mu     sync.Mutex // guards leaves
	leaves [NumLeaves]Digest
	// reads counts per-user digest entries read (Reads).
	reads atomic.Uint64
}

// Put adds to b the record key = val of user owner, which replaces old
// (nil when there was none), and the matching change of owner's digest.
// The caller holds owner's lock and, once b is committed, passes the
// returned change to Committed.
func (t *Table) Put(b *kv.Batch, owner string, key, old, val []byte) (Digest, error) {
	delta := Record(key, val)
	if old != nil {
		delta.Xor(Record(key, old))
	}
	dk := Key(owner)
	cur, err := t.read(dk)
	if err != nil {
		return Digest{}, fmt.Errorf("reading the digest of %s: %w", owner, err)
	}
	cur.Xor(delta)
	b.Set(key, val)
	b.Set(dk, cur[:])
	return delta, nil
}

// Committed folds a committed change of owner's digest into its leaf.
func (t *Table) Committed(owner string, delta Digest) {
	leaf := LeafOf(owner)
	t.mu.Lock()
	t.leaves[leaf].Xor(delta)
	t.mu.Unlock()
}

func (t *Table) read(key []byte) (Digest, error) {
	var d Digest
	_, err := t.db.View(key, func(val []byte) error {
		if len(val) != len(d) {
			return fmt.Errorf("digest %q has %d bytes, want %d", key, len(val), len(d))
		}
		copy(d[:], val)
		return nil
	})
	return d, err
}

// Load returns the digests of db, loading the leaf table from the
// per-user entries. For a database written before digests existed (no
// mark) it first backfills them with what scan computes from the
// records (every user's digest), and reports how many. It runs when the
// store opens, before any write.
func Load(db *kv.DB, scan func() (map[string]Digest, error)) (t *Table, backfilled int, err error) {
	t = &Table{db: db}
	mark, err := db.Get([]byte(MarkKey))
	if err != nil {
		return nil, 0, fmt.Errorf("reading the digest mark: %w", err)
	}
	if string(mark) != version {
		if backfilled, err = t.backfill(scan); err != nil {
			return nil, 0, err
		}
	}
	lower := []byte(Prefix)
	it, err := db.Prefix(lower)
	if err != nil {
		return nil, 0, fmt.Errorf("loading digests: %w", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) < len(Prefix)+2 || len(v) != len(Digest{}) {
			continue
		}
		leaf := int(k[len(Prefix)])<<8 | int(k[len(Prefix)+1])
		t.leaves[leaf].Xor(Digest(v))
	}
	if err := it.Close(); err != nil {
		return nil, 0, fmt.Errorf("loading digests: %w", err)
	}
	return t, backfilled, nil
}

// BackfillBatch is how many digests one batch of the backfill writes:
// a few hundred KiB, so a million users take a few hundred syncs.
const BackfillBatch = 4096

// backfill computes every user's digest from the records and stores
// them, then the mark. An interrupted backfill leaves no mark, so the
// next Load starts again from a clean slate.
func (t *Table) backfill(scan func() (map[string]Digest, error)) (int, error) {
	lower := []byte(Prefix)
	b := t.db.NewBatch()
	b.DeleteRange(lower, kv.PrefixEnd(lower))
	err := t.db.Apply(b)
	b.Close()
	if err != nil {
		return 0, fmt.Errorf("clearing partial digests: %w", err)
	}
	users, err := scan()
	if err != nil {
		return 0, fmt.Errorf("backfilling digests: %w", err)
	}
	// Synced batches of BackfillBatch digests; the mark goes with the
	// last, so it is set only once every digest is stored.
	b = t.db.NewBatch()
	n := 0
	for name, d := range users {
		b.Set(Key(name), d[:])
		if n++; n%BackfillBatch == 0 {
			err := t.db.Apply(b)
			b.Close()
			if err != nil {
				return 0, fmt.Errorf("backfilling digests: %w", err)
			}
			b = t.db.NewBatch()
		}
	}
	b.Set([]byte(MarkKey), []byte(version))
	err = t.db.Apply(b)
	b.Close()
	if err != nil {
		return 0, fmt.Errorf("backfilling digests: %w", err)
	}
	return len(users), nil
}

// Leaves returns a copy of the leaf table: the XOR of the digests of
// the users in each leaf. It reads nothing from the disk.
func (t *Table) Leaves() []Digest {
	out := make([]Digest, NumLeaves)
	t.mu.Lock()
	copy(out, t.leaves[:])
	t.mu.Unlock()
	return out
}

// LeafUsers calls fn with the name and digest of every user of leaf,
// in md5 order. It reads one small entry per user of the leaf.
func (t *Table) LeafUsers(leaf int, fn func(name string, d Digest)) error {
	if leaf < 0 || leaf >= NumLeaves {
		return fmt.Errorf("leaf %d is not from 0 to %d", leaf, NumLeaves-1)
	}
	lower := append([]byte(Prefix), byte(leaf>>8), byte(leaf))
	return t.scan(lower, fn)
}

// Users returns the digest of every user that has a record and for
// whom keep (called once per user) is true. It reads one small entry
// per user, not the records.
func (t *Table) Users(keep func(name string) bool) (map[string]Digest, error) {
	out := map[string]Digest{}
	err := t.scan([]byte(Prefix), func(name string, d Digest) {
		if keep(name) {
			out[name] = d
		}
	})
	return out, err
}

// User returns the digest of one user (zero when it has no records).
func (t *Table) User(name string) (Digest, error) {
	if t.db.Failed() {
		return Digest{}, fmt.Errorf("reading the digest of %s: %w", name, kv.ErrFailed)
	}
	d, err := t.read(Key(name))
	if err != nil {
		return Digest{}, fmt.Errorf("reading the digest of %s: %w", name, err)
	}
	return d, nil
}

// Reads counts the per-user digest entries read since Load (by
// LeafUsers and Users): what anti-entropy costs the disk.
func (t *Table) Reads() uint64 { return t.reads.Load() }

func (t *Table) scan(lower []byte, fn func(name string, d Digest)) error {
	if t.db.Failed() {
		return fmt.Errorf("reading digests: %w", kv.ErrFailed)
	}
	it, err := t.db.Prefix(lower)
	if err != nil {
		return fmt.Errorf("reading digests: %w", err)
	}
	n := uint64(0)
	for ok := it.First(); ok; ok = it.Next() {
		n++
		k, v := it.Key(), it.Value()
		if len(k) <= len(Prefix)+md5.Size || len(v) != len(Digest{}) {
			continue
		}
		fn(string(k[len(Prefix)+md5.Size:]), Digest(v))
	}
	t.reads.Add(n)
	if err := it.Close(); err != nil {
		return fmt.Errorf("reading digests: %w", err)
	}
	return nil
}
