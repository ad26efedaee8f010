package main

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/ringfront/ringfront/appnode/ring"
)

// TestArcSharesMatchRing: the exact shares the benchmark computes from
// packed positions are what appnode's ring gives keys: counted over
// 200,000 user names through ring.Owner, every member's share is within
// 0.005 of its arc share (about 6 standard deviations of the count).
func TestArcSharesMatchRing(t *testing.T) {
	names := randomMembers(rand.New(rand.NewPCG(3, 4)), 7)
	r, err := ring.New(ring.Config{Members: names, VNodes: 16})
	if err != nil {
		t.Fatal(err)
	}
	shares := arcShares(packedPositions(names, 16), len(names), -1)
	count := map[string]int{}
	const keys = 200_000
	for i := range keys {
		count[r.Owner("user"+strconv.Itoa(i))]++
	}
	sum := 0.0
	for i, m := range names {
		got := float64(count[m]) / keys
		if math.Abs(got-shares[i]) > 0.005 {
			t.Errorf("%s owns %.4f of the keys, its arcs %.4f of the circle", m, got, shares[i])
		}
		sum += shares[i]
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Errorf("the shares add up to %v, want 1", sum)
	}
	// Leaving a member out gives its arcs to the members after them:
	// what the ring without it gives.
	without := arcShares(packedPositions(names, 16), len(names), 2)
	rest := append(append([]string{}, names[:2]...), names[3:]...)
	want := arcShares(packedPositions(rest, 16), len(rest), -1)
	for i := range want {
		if math.Abs(without[i]-want[i]) > 1e-12 {
			t.Errorf("member %d: %v without member 2, %v in a ring without it", i, without[i], want[i])
		}
	}
}

// TestJump: jump hash keeps a key where it was or moves it to the new
// bucket when a bucket is added, and spreads keys evenly.
func TestJump(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	const n = 10
	count := make([]int, n)
	for range 100_000 {
		k := rng.Uint64()
		if jump(k, 1) != 0 {
			t.Fatal("one bucket: not bucket 0")
		}
		for b := 1; b < n; b++ {
			if a, c := jump(k, b), jump(k, b+1); c != a && c != b {
				t.Fatalf("key %x: bucket %d of %d, then %d of %d", k, a, b, c, b+1)
			}
		}
		count[jump(k, n)]++
	}
	for b, c := range count {
		if c < 9_000 || c > 11_000 {
			t.Errorf("bucket %d got %d of 100,000 keys, want about 10,000", b, c)
		}
	}
}

// TestMaglev: every backend gets within one slot of an even share of
// the table (the paper's guarantee), and a join moves at least the
// newcomer's share.
func TestMaglev(t *testing.T) {
	names := randomMembers(rand.New(rand.NewPCG(5, 6)), 13)
	const m = 65537
	tb := newMaglev(names[:12], m)
	counts := make([]int, 12)
	for _, b := range tb.table {
		counts[b]++
	}
	for i, c := range counts {
		if c < m/12 || c > m/12+1 {
			t.Errorf("backend %d has %d slots, want %d or %d", i, c, m/12, m/12+1)
		}
	}
	if p := peakToMean(tb.shares(12)); p > 1.001 {
		t.Errorf("peak/mean %v, want about 1", p)
	}
	if !isPrime(maglevSize(2000, 100)) || maglevSize(20, 100) != 65537 || maglevSize(2000, 100) < 200_000 {
		t.Errorf("table sizes %d and %d", maglevSize(20, 100), maglevSize(2000, 100))
	}
	joined := newMaglev(names, m)
	if mv := moved(tb, names[:12], joined, names); mv < 1.0/13*0.99 || mv > 0.5 {
		t.Errorf("a join moved %.4f of the slots, want at least 1/13", mv)
	}
}
