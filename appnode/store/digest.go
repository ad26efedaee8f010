package store

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"sync"

	"github.com/ringfront/ringfront/appnode/store/digest"
)

// Each user's records are summarised by a digest, kept in the same
// batch as every write of them (package digest), so that anti-entropy
// compares replicas without reading the records.

// Digest summarises a set of records (digest.Digest).
type Digest = digest.Digest

// LeafBits is how many leading bits of md5(name) pick a user's leaf.
const LeafBits = digest.LeafBits

// NumLeaves is the number of leaves.
const NumLeaves = digest.NumLeaves

// LeafOf returns the leaf of user name.
func LeafOf(name string) int { return digest.LeafOf(name) }

// digestPrefix is where the per-user digests are kept (for Stats).
const digestPrefix = digest.Prefix

// userPrefixes are the record kinds kept per user: the user itself, its
// posts, and its edges on both sides. Every key of these kinds names
// its user right after the prefix.
var userPrefixes = []string{"u/", "p/", "f/", "r/"}

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
			acc.Xor(digest.Record(key, it.Value()))
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
func (s *Store) Leaves() []Digest { return s.digests.Leaves() }

// LeafUsers calls fn with the name and digest of every user of leaf,
// in md5 order. It reads one small entry per user of the leaf.
func (s *Store) LeafUsers(leaf int, fn func(name string, d Digest)) error {
	return s.digests.LeafUsers(leaf, fn)
}

// UserDigests returns the digest of every user that has a record and
// for whom keep (called once per user) is true. It reads one small
// entry per user, not the records.
func (s *Store) UserDigests(keep func(name string) bool) (map[string]Digest, error) {
	return s.digests.Users(keep)
}

// UserDigest returns the digest of one user (zero when it has no
// records).
func (s *Store) UserDigest(name string) (Digest, error) { return s.digests.User(name) }

// DigestReads counts the per-user digest entries read since Open (by
// LeafUsers and UserDigests): what anti-entropy costs the disk.
func (s *Store) DigestReads() uint64 { return s.digests.Reads() }
