package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/ringfront/ringfront/appnode/ring"
	"github.com/ringfront/ringfront/appnode/store"
)

// ringOptions says which ring figures to measure.
type ringOptions struct {
	members []int // ring sizes
	vnodes  []int // positions per member
	// budget is the ring positions hashed and sorted per cell across
	// its random member sets: small rings get many sets (up to maxSets),
	// the largest at least minSets.
	budget           int
	minSets, maxSets int
	seed             uint64
	lookups          int // owner lookups timed per cell
}

// spread is a figure over many random member sets.
type spread struct{ median, worst float64 }

func spreadOf(v []float64) spread {
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v) == 0 {
		return spread{}
	}
	return spread{median: v[len(v)/2], worst: v[len(v)-1]}
}

// placementRow is one scheme at one size.
type placementRow struct {
	scheme  string // "ring", "jump", "maglev"
	members int
	size    string // vnodes, or Maglev's table size
	sets    int
	lookup  time.Duration // one owner lookup, md5 of the key included
	build   time.Duration
	memory  int64 // bytes the structure holds
	walk    time.Duration
	// peak is the largest member's share of the key space × members;
	// join and leave are the share of keys that move when a member
	// joins an N-member set (or one of N+1 leaves), ÷ 1/(N+1).
	peak, join, leave spread
	// mixed is the share of anti-entropy's hash-tree leaves that a ring
	// position cuts (ring only; see measureRing).
	mixed spread
	exact bool // false: the figure is the scheme's by construction
}

// randomMembers returns n distinct member addresses. They are only
// names to hash: nothing is ever sent to them.
func randomMembers(rng *rand.Rand, n int) []string {
	seen := make(map[uint32]bool, n)
	out := make([]string, 0, n)
	for len(out) < n {
		ip := rng.Uint32() & 0x00ffffff
		if seen[ip] {
			continue
		}
		seen[ip] = true
		out = append(out, "10."+strconv.Itoa(int(ip>>16))+"."+strconv.Itoa(int(ip>>8&255))+"."+strconv.Itoa(int(ip&255))+":8081")
	}
	return out
}

// indexBits is how many low bits of a packed position hold the member
// index; the 48 high bits of md5 left are plenty to order 20 million
// positions (a tie between two members has odds of about 2^-24 per
// run), and the arcs lose at most 2^16/2^64 each.
const indexBits = 16

// packedPositions returns every ring position of names, each as the
// high 64 bits of its md5 with the member's index in the low
// indexBits, sorted: what ring.New builds, in an eighth of the memory.
func packedPositions(names []string, vnodes int) []uint64 {
	pts := make([]uint64, 0, len(names)*vnodes)
	for i, m := range names {
		for v := range vnodes {
			pts = append(pts, ring.PositionHash(m, v).Hi&^(1<<indexBits-1)|uint64(i))
		}
	}
	slices.Sort(pts)
	return pts
}

// arcShares returns each member's exact share of the key space: a key
// belongs to the first position above its hash, so each position owns
// the arc from the position before it. Member without (if >= 0) is
// left out, as if it had left. This is the share of users a member
// holds as the number of users grows.
func arcShares(pts []uint64, n, without int) []float64 {
	share := make([]float64, n)
	last := len(pts) - 1
	for last >= 0 && int(pts[last]&(1<<indexBits-1)) == without {
		last--
	}
	prev := pts[last] &^ (1<<indexBits - 1)
	for _, p := range pts {
		m := int(p & (1<<indexBits - 1))
		if m == without {
			continue
		}
		h := p &^ (1<<indexBits - 1)
		share[m] += float64(h - prev) // wraps around for the first
		prev = h
	}
	for i := range share {
		share[i] /= 1 << 64
	}
	if without >= 0 {
		share = append(share[:without:without], share[without+1:]...)
	}
	return share
}

// mixedLeaves is the share of anti-entropy's 2^LeafBits hash-tree leaves
// that hold a ring position of a member other than without: in such a
// leaf not every user has the same preference list, so a round reads
// each of its users' digests instead of comparing the leaf's.
func mixedLeaves(pts []uint64, without int) float64 {
	cut := make([]bool, store.NumLeaves)
	n := 0
	for _, p := range pts {
		if int(p&(1<<indexBits-1)) == without {
			continue
		}
		if l := p >> (64 - store.LeafBits); !cut[l] {
			cut[l] = true
			n++
		}
	}
	return float64(n) / float64(store.NumLeaves)
}

// setsFor is how many random member sets a cell of cost positions per
// set gets.
func (o ringOptions) setsFor(cost int) int {
	return min(max(o.budget/max(cost, 1), o.minSets), o.maxSets)
}

// parallel runs f(0..n-1) on every CPU.
func parallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range next {
				f(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// measureRing measures appnode's ring at n members × vnodes: over many
// random member sets the balance, the movement on a join and a leave,
// and the cut anti-entropy leaves; on one set the real ring's build
// time, memory, owner lookup and hinted-copy walk.
func measureRing(o ringOptions, n, vnodes int) placementRow {
	row := placementRow{scheme: "ring", members: n, size: strconv.Itoa(vnodes), exact: true}
	row.sets = o.setsFor((n + 1) * vnodes)
	peak := make([]float64, row.sets)
	join := make([]float64, row.sets)
	leave := make([]float64, row.sets)
	mixed := make([]float64, row.sets)
	parallel(row.sets, func(s int) {
		rng := rand.New(rand.NewPCG(o.seed, uint64(n*1_000_003+vnodes*7919+s)))
		names := randomMembers(rng, n+1) // the last one joins
		pts := packedPositions(names, vnodes)
		all := arcShares(pts, n+1, -1)
		opt := 1 / float64(n+1)
		join[s] = all[n] / opt              // everything the newcomer owns moved to it
		leave[s] = all[rng.IntN(n+1)] / opt // everything a leaver owned moves away
		peak[s] = peakToMean(arcShares(pts, n+1, n))
		mixed[s] = mixedLeaves(pts, n)
	})
	row.peak, row.join, row.leave, row.mixed = spreadOf(peak), spreadOf(join), spreadOf(leave), spreadOf(mixed)

	names := randomMembers(rand.New(rand.NewPCG(o.seed, 1)), n)
	var rg *ring.Ring
	row.build, row.memory = built(func() {
		var err error
		rg, err = ring.New(ring.Config{Members: names, VNodes: vnodes, Replicas: 2})
		if err != nil {
			panic(err) // the sizes are the benchmark's own
		}
	})
	keys := lookupKeys(o.lookups)
	row.lookup = perCall(len(keys), func(i int) { _ = rg.Owner(keys[i]) })
	walks := max(1, min(200, int(2e7/float64(n*vnodes))))
	row.walk = perCall(walks, func(i int) { _ = rg.Walk(nil, keys[i%len(keys)]) })
	runtime.KeepAlive(rg)
	return row
}

// measureJump measures jump hash at n buckets: its lookup (md5 of the
// key, the jump, the bucket's name). Balance and movement are exact by
// construction and printed as such.
func measureJump(o ringOptions, n int) placementRow {
	row := placementRow{scheme: "jump", members: n, size: "-",
		peak: spread{1, 1}, join: spread{1, 1}, leave: spread{1, 1}}
	names := randomMembers(rand.New(rand.NewPCG(o.seed, 1)), n)
	// Jump hash holds nothing but the members' names in bucket order:
	// one string header each (the heap figure of so small a slice is
	// lost in the collector's own noise).
	var held []string
	row.build, _ = built(func() { held = slices.Clone(names) })
	row.memory = int64(n) * int64(unsafe.Sizeof(""))
	keys := lookupKeys(o.lookups)
	row.lookup = perCall(len(keys), func(i int) { _ = held[jump(ring.HashKey(keys[i]).Hi, n)] })
	return row
}

// maxMaglevTable bounds the larger Maglev tables measured: 20,000
// backends at 1000N (20 million slots) took 90 s for three member sets
// here, and what a table's size does to balance and movement depends on
// M/N, which the 2,000-backend row at 1000N shows already.
const maxMaglevTable = 2_000_000

// measureMaglev measures Maglev's table at n backends over many random
// sets: balance, the share of slots that change on a join (appended
// last) and on a leave (a random backend of n+1), and on one set the
// build time, memory and lookup.
func measureMaglev(o ringOptions, n, perBackend int) placementRow {
	m := maglevSize(n, perBackend)
	m1 := maglevSize(n+1, perBackend)
	row := placementRow{scheme: "maglev", members: n, size: fmt.Sprintf("M=%d", m), exact: true}
	// A table costs about as much as hashing its size in positions,
	// three tables a set.
	row.sets = o.setsFor(3 * m)
	peak := make([]float64, row.sets)
	join := make([]float64, row.sets)
	leave := make([]float64, row.sets)
	parallel(row.sets, func(s int) {
		rng := rand.New(rand.NewPCG(o.seed^0x9e3779b9, uint64(n*1_000_003+s)))
		names := randomMembers(rng, n+1)
		opt := 1 / float64(n+1)
		// Both sizes are the same table when 100(n+1) stays below the
		// next prime: the usual case, as an operator keeps M when a
		// backend joins. Compare tables of the same size.
		small := newMaglev(names[:n], m1)
		large := newMaglev(names, m1)
		peak[s] = peakToMean(newMaglev(names[:n], m).shares(n))
		join[s] = moved(small, names[:n], large, names) / opt
		j := rng.IntN(n + 1)
		without := slices.Delete(slices.Clone(names), j, j+1)
		leave[s] = moved(large, names, newMaglev(without, m1), without) / opt
	})
	row.peak, row.join, row.leave = spreadOf(peak), spreadOf(join), spreadOf(leave)
	names := randomMembers(rand.New(rand.NewPCG(o.seed, 1)), n)
	var t *maglev
	row.build, row.memory = built(func() { t = newMaglev(names, m) })
	keys := lookupKeys(o.lookups)
	row.lookup = perCall(len(keys), func(i int) { _ = names[t.lookup(ring.HashKey(keys[i]).Hi)] })
	runtime.KeepAlive(t)
	return row
}

// built runs build once and returns its time and the heap it left
// allocated (live after a collection).
func built(build func()) (time.Duration, int64) {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	build()
	took := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	return took, int64(after.HeapAlloc) - int64(before.HeapAlloc)
}

// lookupKeys returns n user names to look up.
func lookupKeys(n int) []string {
	rng := rand.New(rand.NewPCG(7, 7))
	out := make([]string, n)
	for i := range out {
		out[i] = "user" + strconv.FormatUint(rng.Uint64()%100_000_000, 10)
	}
	return out
}

// perCall times f(0..n-1) and returns the time per call.
func perCall(n int, f func(i int)) time.Duration {
	start := time.Now()
	for i := range n {
		f(i)
	}
	return time.Since(start) / time.Duration(n)
}

// runRing measures every ring size × vnodes beside jump hash and
// Maglev, and prints the tables.
func runRing(w io.Writer, o ringOptions) {
	var rows []placementRow
	for _, n := range o.members {
		for _, v := range o.vnodes {
			start := time.Now()
			rows = append(rows, measureRing(o, n, v))
			logf("ring %d members × %d vnodes: %d sets in %.1fs", n, v, rows[len(rows)-1].sets, time.Since(start).Seconds())
			debug.FreeOSMemory()
		}
		rows = append(rows, measureJump(o, n))
		for _, per := range []int{100, 1000} {
			if per > 100 && (maglevSize(n, per) == maglevSize(n, 100) || per*n > maxMaglevTable) {
				continue // the same table, or one too slow to fill sets of
			}
			start := time.Now()
			rows = append(rows, measureMaglev(o, n, per))
			logf("maglev %d backends, M=%d: %d sets in %.1fs", n, maglevSize(n, per), rows[len(rows)-1].sets, time.Since(start).Seconds())
			debug.FreeOSMemory()
		}
	}
	printPlacement(w, rows)
}

func printPlacement(w io.Writer, rows []placementRow) {
	fmt.Fprintln(w, "### Placement: balance and movement")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Peak/mean: the largest member's share of the key space × members (1 = even), the share of users it holds as users grow.")
	fmt.Fprintln(w, "Moved: the share of keys that move when a member joins N (or one of N+1 leaves), ÷ the optimum 1/(N+1).")
	fmt.Fprintln(w, "Median and worst over the random member sets; † = exact by construction (jump hash), not measured.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| members | scheme | vnodes / table | sets | peak/mean median | peak/mean worst | moved on join median | worst | moved on leave median | worst |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		f := func(v float64) string {
			if !r.exact {
				return fmt.Sprintf("%.2f†", v)
			}
			return fmt.Sprintf("%.3f", v)
		}
		leaveMedian, leaveWorst := f(r.leave.median), f(r.leave.worst)
		if r.scheme == "jump" {
			leaveMedian, leaveWorst = "last bucket only†", "-"
		}
		sets := strconv.Itoa(r.sets)
		if !r.exact {
			sets = "-"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", group(r.members), r.scheme, r.size, sets,
			f(r.peak.median), f(r.peak.worst), f(r.join.median), f(r.join.worst), leaveMedian, leaveWorst)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "### Placement: cost")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Lookup: one owner lookup, md5 of the user name included. Memory: heap the structure holds. Walk: ring.Walk, the order a hinted copy")
	fmt.Fprintln(w, "tries members in. Leaves cut: the share of anti-entropy's 65,536 hash-tree leaves holding a ring position (median over the sets):")
	fmt.Fprintln(w, "for those, a round reads every user's digest rather than the leaf's.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| members | scheme | vnodes / table | lookup ns | build | memory | walk | leaves cut |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		walk, cut := "-", "-"
		if r.scheme == "ring" {
			walk = duration(r.walk)
			cut = fmt.Sprintf("%.1f%%", 100*r.mixed.median)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %.0f | %s | %s | %s | %s |\n", group(r.members), r.scheme, r.size,
			float64(r.lookup.Nanoseconds()), duration(r.build), bytesOf(r.memory), walk, cut)
	}
	fmt.Fprintln(w)
}
