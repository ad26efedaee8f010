package node

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ringfront/ringfront/appnode/ring"
)

// TestDefaultVNodesBalance: with the default vnodes the most loaded of
// 20 members owns at most 1.3 times an even share of the key space (of
// users, as users grow) in every one of 200 random member sets, as the
// config promises, and of 200 members at most 1.35 times, 1.2 times in
// the median set. 128 vnodes, the old default, fails each bound here
// (worst 1.34 of 20, 1.35 of 200, median 1.25 of 200); bench/scale
// gives both over 500 sets.
func TestDefaultVNodesBalance(t *testing.T) {
	for _, tc := range []struct {
		members, sets int
		worst, median float64
	}{{20, 200, 1.3, 1.15}, {200, 40, 1.35, 1.2}} {
		rng := rand.New(rand.NewPCG(19, uint64(tc.members)))
		var peaks []float64
		for range tc.sets {
			members := make([]string, tc.members)
			for i := range members {
				members[i] = fmt.Sprintf("10.%d.%d.%d:8081", rng.IntN(256), rng.IntN(256), rng.IntN(256))
			}
			r, err := ring.New(ring.Config{Members: members, VNodes: DefaultVNodes})
			if err != nil {
				continue // the same address drawn twice
			}
			peaks = append(peaks, peakToMean(r))
		}
		slices.Sort(peaks)
		worst, median := peaks[len(peaks)-1], peaks[len(peaks)/2]
		t.Logf("%d members × %d vnodes over %d sets: most loaded member %.3f× an even share in the median set, %.3f× at worst", tc.members, DefaultVNodes, len(peaks), median, worst)
		if worst > tc.worst || median > tc.median {
			t.Errorf("%d members × %d vnodes: most loaded member %.3f× an even share at worst, %.3f× in the median set; want at most %.2f and %.2f", tc.members, DefaultVNodes, worst, median, tc.worst, tc.median)
		}
	}
}

// peakToMean is the largest member's share of the key space times the
// number of members: each position owns the arc from the position
// before it (a key belongs to the first position above its hash).
func peakToMean(r *ring.Ring) float64 {
	pos := r.Positions()
	share := make([]float64, len(r.Members()))
	prev := pos[len(pos)-1].Hash.Hi
	for _, p := range pos {
		share[p.Member] += float64(p.Hash.Hi - prev) // wraps around for the first
		prev = p.Hash.Hi
	}
	most := 0.0
	for _, s := range share {
		most = max(most, s)
	}
	return most / (1 << 64) * float64(len(share))
}
