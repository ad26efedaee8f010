package store

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"fmt"
	"hash/maphash"
	"sync"

	"github.com/ringfront/ringfront/appnode/store/kv"
)

// Digests, kept up to date with every write so that anti-entropy never
// has to read the records themselves to find out whether two replicas
// agree.
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
// Above the users, the store keeps in memory the XOR of the digests of
// every user in each of NumLeaves leaves (users by the first LeafBits
// bits of md5(name)), rebuilt from the dg/ entries at Open (O(users)
// small reads, once) and updated after every commit. A comparison of two
// replicas reads the leaves (no store reads at all) and only for the
// leaves that differ, or that a ring position cuts in two, the per-user
// entries.
//
// A database written before digests existed has none: Open computes
// them once from the records (one full read) and marks the database so
// it never does again.

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
	digestPrefix = "dg/"
	// digestMarkKey holds digestVersion once every record is covered by
	// the dg/ entries.
	digestMarkKey = "meta/digests"
	digestVersion = "1"
)

func digestKey(name string) []byte {
	h := md5.Sum([]byte(name))
	k := make([]byte, 0, len(digestPrefix)+len(h)+len(name))
	k = append(k, digestPrefix...)
	k = append(k, h[:]...)
	return append(k, name...)
}

// userPrefixes are the record kinds kept per user: the user itself, its
// posts, and its edges on both sides. Every key of these kinds names
// its user right after the prefix.
var userPrefixes = []string{"u/", "p/", "f/", "r/"}

// recordDigest is the hash of one record.
func recordDigest(key, val []byte) Digest {
	m := sha256.New()
	m.Write(key)
	m.Write([]byte{0})
	m.Write(val)
	var sum [sha256.Size]byte
	var d Digest
	copy(d[:], m.Sum(sum[:0]))
	return d
}

// userLocks serialises the writes of one user (check, then write the
// record and the user's digest); writes of different users mostly take
// different locks and share pebble's group commit.
type userLocks struct {
	seed  maphash.Seed
	locks [256]sync.Mutex // 256: 32 concurrent writers rarely collide
}

func (l *userLocks) lock(name string) func() {
	m := &l.locks[maphash.String(l.seed, name)%uint64(len(l.locks))]
	m.Lock()
	return m.Unlock
}

// leafTable is the in-memory XOR of the user digests of each leaf.
type leafTable struct {
	mu     sync.Mutex // guards leaves
	leaves [NumLeaves]Digest
}

// putRecord adds to b the record key = val of user owner, which
// replaces old (nil when there was none), and the matching change of
// owner's digest. The caller holds owner's lock and, once b is
// committed, passes the returned change to committed.
func (s *Store) putRecord(b *kv.Batch, owner string, key, old, val []byte) (Digest, error) {
	delta := recordDigest(key, val)
	if old != nil {
		delta.Xor(recordDigest(key, old))
	}
	dk := digestKey(owner)
	cur, err := s.readDigest(dk)
	if err != nil {
		return Digest{}, fmt.Errorf("reading the digest of %s: %w", owner, err)
	}
	cur.Xor(delta)
	b.Set(key, val)
	b.Set(dk, cur[:])
	return delta, nil
}

// committed folds a committed change of owner's digest into its leaf.
func (s *Store) committed(owner string, delta Digest) {
	leaf := LeafOf(owner)
	s.leaves.mu.Lock()
	s.leaves.leaves[leaf].Xor(delta)
	s.leaves.mu.Unlock()
}

func (s *Store) readDigest(key []byte) (Digest, error) {
	var d Digest
	_, err := s.db.View(key, func(val []byte) error {
		if len(val) != len(d) {
			return fmt.Errorf("digest %q has %d bytes, want %d", key, len(val), len(d))
		}
		copy(d[:], val)
		return nil
	})
	return d, err
}

// initDigests backfills the digests of a database written before they
// existed, then loads the leaf table. It runs in Open, before any write.
func (s *Store) initDigests() (backfilled int, err error) {
	mark, err := s.db.Get([]byte(digestMarkKey))
	if err != nil {
		return 0, fmt.Errorf("reading the digest mark: %w", err)
	}
	if string(mark) != digestVersion {
		if backfilled, err = s.backfillDigests(); err != nil {
			return 0, err
		}
	}
	lower := []byte(digestPrefix)
	it, err := s.db.Prefix(lower)
	if err != nil {
		return 0, fmt.Errorf("loading digests: %w", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) < len(digestPrefix)+2 || len(v) != len(Digest{}) {
			continue
		}
		leaf := int(k[len(digestPrefix)])<<8 | int(k[len(digestPrefix)+1])
		s.leaves.leaves[leaf].Xor(Digest(v))
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("loading digests: %w", err)
	}
	return backfilled, nil
}

// backfillBatch is how many digests one batch of the backfill writes:
// a few hundred KiB, so a million users take a few hundred syncs.
const backfillBatch = 4096

// backfillDigests computes every user's digest from the records and
// stores them, then the mark. An interrupted backfill leaves no mark,
// so the next Open starts again from a clean slate.
func (s *Store) backfillDigests() (int, error) {
	lower := []byte(digestPrefix)
	b := s.db.NewBatch()
	b.DeleteRange(lower, kv.PrefixEnd(lower))
	err := s.db.Apply(b)
	b.Close()
	if err != nil {
		return 0, fmt.Errorf("clearing partial digests: %w", err)
	}
	users, err := s.ScanDigests(nil)
	if err != nil {
		return 0, fmt.Errorf("backfilling digests: %w", err)
	}
	// Synced batches of backfillBatch digests; the mark goes with the
	// last, so it is set only once every digest is stored.
	b = s.db.NewBatch()
	n := 0
	for name, d := range users {
		b.Set(digestKey(name), d[:])
		if n++; n%backfillBatch == 0 {
			err := s.db.Apply(b)
			b.Close()
			if err != nil {
				return 0, fmt.Errorf("backfilling digests: %w", err)
			}
			b = s.db.NewBatch()
		}
	}
	b.Set([]byte(digestMarkKey), []byte(digestVersion))
	err = s.db.Apply(b)
	b.Close()
	if err != nil {
		return 0, fmt.Errorf("backfilling digests: %w", err)
	}
	return len(users), nil
}

// ScanDigests computes the digest of every user that has a record and
// for whom keep (nil: everyone; called once per user) is true, from the
// records themselves. It reads the whole database: Open uses it once to
// backfill, tests to check the kept digests against it.
func (s *Store) ScanDigests(keep func(name string) bool) (map[string]Digest, error) {
	if s.db.Failed() {
		return nil, fmt.Errorf("computing digests: %w", ErrFailed)
	}
	out := map[string]Digest{}
	kept := map[string]bool{}
	for _, prefix := range userPrefixes {
		lower := []byte(prefix)
		it, err := s.db.Prefix(lower)
		if err != nil {
			return nil, fmt.Errorf("computing digests: %w", err)
		}
		for ok := it.First(); ok; ok = it.Next() {
			key := it.Key()
			rest := key[len(prefix):]
			if i := bytes.IndexByte(rest, '/'); i >= 0 && prefix != "u/" {
				rest = rest[:i]
			}
			name := string(rest)
			k, seen := kept[name]
			if !seen {
				k = keep == nil || keep(name)
				kept[name] = k
			}
			if !k {
				continue
			}
			acc := out[name]
			acc.Xor(recordDigest(key, it.Value()))
			out[name] = acc
		}
		if err := it.Close(); err != nil {
			return nil, fmt.Errorf("computing digests: %w", err)
		}
	}
	return out, nil
}

// Leaves returns a copy of the leaf table: the XOR of the digests of
// the users in each leaf. It reads nothing from the disk.
func (s *Store) Leaves() []Digest {
	out := make([]Digest, NumLeaves)
	s.leaves.mu.Lock()
	copy(out, s.leaves.leaves[:])
	s.leaves.mu.Unlock()
	return out
}

// LeafUsers calls fn with the name and digest of every user of leaf,
// in md5 order. It reads one small entry per user of the leaf.
func (s *Store) LeafUsers(leaf int, fn func(name string, d Digest)) error {
	if leaf < 0 || leaf >= NumLeaves {
		return fmt.Errorf("leaf %d is not from 0 to %d", leaf, NumLeaves-1)
	}
	lower := append([]byte(digestPrefix), byte(leaf>>8), byte(leaf))
	return s.scanDigests(lower, fn)
}

// UserDigests returns the digest of every user that has a record and
// for whom keep (called once per user) is true. It reads one small
// entry per user, not the records.
func (s *Store) UserDigests(keep func(name string) bool) (map[string]Digest, error) {
	out := map[string]Digest{}
	err := s.scanDigests([]byte(digestPrefix), func(name string, d Digest) {
		if keep(name) {
			out[name] = d
		}
	})
	return out, err
}

// UserDigest returns the digest of one user (zero when it has no
// records).
func (s *Store) UserDigest(name string) (Digest, error) {
	if s.db.Failed() {
		return Digest{}, fmt.Errorf("reading the digest of %s: %w", name, ErrFailed)
	}
	d, err := s.readDigest(digestKey(name))
	if err != nil {
		return Digest{}, fmt.Errorf("reading the digest of %s: %w", name, err)
	}
	return d, nil
}

// DigestReads counts the per-user digest entries read since Open (by
// LeafUsers and UserDigests): what anti-entropy costs the disk.
func (s *Store) DigestReads() uint64 { return s.digestReads.Load() }

func (s *Store) scanDigests(lower []byte, fn func(name string, d Digest)) error {
	if s.db.Failed() {
		return fmt.Errorf("reading digests: %w", ErrFailed)
	}
	it, err := s.db.Prefix(lower)
	if err != nil {
		return fmt.Errorf("reading digests: %w", err)
	}
	n := uint64(0)
	for ok := it.First(); ok; ok = it.Next() {
		n++
		k, v := it.Key(), it.Value()
		if len(k) <= len(digestPrefix)+md5.Size || len(v) != len(Digest{}) {
			continue
		}
		fn(string(k[len(digestPrefix)+md5.Size:]), Digest(v))
	}
	s.digestReads.Add(n)
	if err := it.Close(); err != nil {
		return fmt.Errorf("reading digests: %w", err)
	}
	return nil
}
