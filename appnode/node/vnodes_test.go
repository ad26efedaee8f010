package node

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/ringfront/ringfront/appnode/ring"
)

// TestDefaultVNodesBalance: with the default vnodes, the most loaded of
// 20 members, and of 200, owns at most 1.3 times an even share of the
// key space (of users, as users grow), for every one of many random
// member sets; 128 vnodes did not (bench/scale measures both).
func TestDefaultVNodesBalance(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 240 rings; skipped with -short")
	}
	for _, tc := range []struct{ members, sets int }{{20, 200}, {200, 40}} {
		rng := rand.New(rand.NewPCG(19, uint64(tc.members)))
		worst := 0.0
		for range tc.sets {
			members := make([]string, tc.members)
			for i := range members {
				members[i] = fmt.Sprintf("10.%d.%d.%d:8081", rng.IntN(256), rng.IntN(256), rng.IntN(256))
			}
			r, err := ring.New(ring.Config{Members: members, VNodes: DefaultVNodes})
			if err != nil {
				continue // the same address drawn twice
			}
			worst = max(worst, peakToMean(r))
		}
		t.Logf("%d members × %d vnodes: most loaded member at worst %.3f× an even share over %d sets", tc.members, DefaultVNodes, worst, tc.sets)
		if worst > 1.3 {
			t.Errorf("%d members × %d vnodes: a member owns %.3f× an even share, want at most 1.3", tc.members, DefaultVNodes, worst)
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
