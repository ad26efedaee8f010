package main

import (
	"crypto/md5"
	"encoding/binary"
	"math"
)

// This file holds the two reference placements the ring is compared
// with. They exist only inside this benchmark, to show the trade
// beside appnode's ring: they are not used by appnode.

// jump is Lamping and Veach's jump consistent hash ("A Fast, Minimal
// Memory, Consistent Hash Algorithm", 2014): the bucket in [0, n) of a
// 64-bit key. Each bucket gets 1/n of the keys, and going from n to n+1
// buckets moves exactly the keys that land in the new bucket; but only
// the last bucket can be removed without moving more.
func jump(key uint64, n int) int {
	b, j := int64(-1), int64(0)
	for j < int64(n) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int(b)
}

// maglev is Maglev's lookup table (Eisenbud et al., "Maglev: A Fast and
// Reliable Software Network Load Balancer", NSDI 2016, §3.4): each
// backend fills the table's free slots in the order of its own
// permutation, in turns, so every backend gets within one slot of
// M/N. Table[i] is a backend's index.
type maglev struct {
	table []int32
}

// maglevSize is the table size for n backends: a prime, at least
// 65537 (the paper's small table) and at least perBackend·n; the paper
// asks for M > 100N, which keeps every backend's share within about 1%
// of even. A larger table moves fewer keys on a change.
func maglevSize(n, perBackend int) int {
	m := max(65537, perBackend*n)
	for !isPrime(m) {
		m++
	}
	return m
}

func isPrime(n int) bool {
	if n < 2 {
		return false
	}
	for d := 2; d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}

// newMaglev fills a table of size m (a prime) for the named backends.
// Each backend's permutation comes from the md5 of its name: offset
// from the first half, skip from the second (the paper's two hashes).
func newMaglev(names []string, m int) *maglev {
	n := len(names)
	offset := make([]uint64, n)
	skip := make([]uint64, n)
	next := make([]uint64, n)
	for i, name := range names {
		sum := md5.Sum([]byte(name))
		offset[i] = binary.BigEndian.Uint64(sum[:8]) % uint64(m)
		skip[i] = binary.BigEndian.Uint64(sum[8:])%uint64(m-1) + 1
	}
	t := &maglev{table: make([]int32, m)}
	for i := range t.table {
		t.table[i] = -1
	}
	filled := 0
	for {
		for i := range n {
			c := (offset[i] + next[i]*skip[i]) % uint64(m)
			for t.table[c] >= 0 {
				next[i]++
				c = (offset[i] + next[i]*skip[i]) % uint64(m)
			}
			t.table[c] = int32(i)
			next[i]++
			filled++
			if filled == m {
				return t
			}
		}
	}
}

// lookup returns the backend of a 64-bit key hash.
func (t *maglev) lookup(key uint64) int { return int(t.table[key%uint64(len(t.table))]) }

// shares returns each backend's share of the table (of the keys).
func (t *maglev) shares(n int) []float64 {
	out := make([]float64, n)
	for _, b := range t.table {
		out[b]++
	}
	for i := range out {
		out[i] /= float64(len(t.table))
	}
	return out
}

// moved returns the share of slots whose backend name differs between
// two tables over the name lists a and b.
func moved(ta *maglev, a []string, tb *maglev, b []string) float64 {
	diff := 0
	for i := range ta.table {
		if a[ta.table[i]] != b[tb.table[i]] {
			diff++
		}
	}
	return float64(diff) / float64(len(ta.table))
}

// peakToMean is the largest share times the number of members: 1 is a
// perfectly even split.
func peakToMean(shares []float64) float64 {
	most := 0.0
	for _, s := range shares {
		most = math.Max(most, s)
	}
	return most * float64(len(shares))
}
