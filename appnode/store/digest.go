package store

import (
	"bytes"
	"crypto/sha256"
	"fmt"

	"github.com/cockroachdb/pebble"
)

// Digest summarises every record of one user: the XOR of a hash of each
// record's key and value, so it does not depend on the order records
// were written in, and two replicas holding the same records have the
// same digest.
type Digest [16]byte

// IsZero reports whether d is the digest of no records.
func (d Digest) IsZero() bool { return d == Digest{} }

// Xor folds o into d.
func (d *Digest) Xor(o Digest) {
	for i := range d {
		d[i] ^= o[i]
	}
}

// userPrefixes are the record kinds kept per user: the user itself, its
// posts, and its edges on both sides.
var userPrefixes = []string{"u/", "p/", "f/", "r/"}

// UserDigests returns the digest of every user that has a record and
// for whom keep (called once per user) is true. It reads the whole
// database once.
func (s *Store) UserDigests(keep func(name string) bool) (map[string]Digest, error) {
	if s.failed.Load() {
		return nil, fmt.Errorf("computing digests: %w", ErrFailed)
	}
	out := map[string]Digest{}
	kept := map[string]bool{}
	for _, prefix := range userPrefixes {
		lower := []byte(prefix)
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
		if err != nil {
			return nil, fmt.Errorf("computing digests: %w", err)
		}
		var h [sha256.Size]byte
		for ok := it.First(); ok; ok = it.Next() {
			key := it.Key()
			rest := key[len(prefix):]
			if i := bytes.IndexByte(rest, '/'); i >= 0 && prefix != "u/" {
				rest = rest[:i]
			}
			name := string(rest)
			k, seen := kept[name]
			if !seen {
				k = keep(name)
				kept[name] = k
			}
			if !k {
				continue
			}
			m := sha256.New()
			m.Write(key)
			m.Write([]byte{0})
			m.Write(it.Value())
			var d Digest
			copy(d[:], m.Sum(h[:0]))
			acc := out[name]
			acc.Xor(d)
			out[name] = acc
		}
		if err := it.Close(); err != nil {
			return nil, fmt.Errorf("computing digests: %w", err)
		}
	}
	return out, nil
}
