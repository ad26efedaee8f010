package ring

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var three = []string{"127.0.0.1:8081", "127.0.0.1:8082", "127.0.0.1:8083"}

// The md5 values below were computed with `printf %s KEY | md5sum`:
//
//	127.0.0.1:8081   df2b80dc43705d28db9be6f29fe58da3
//	127.0.0.1:8082   91d8c8e93642cca5c0f2be69d199ee22
//	127.0.0.1:8083   6a93711a8c3f9c2641dfc71c359a1abe
//	127.0.0.1:8081#1 98d41bc9aa635aad98c9c7c19c012f1a
//	127.0.0.1:8082#1 4620b4c86d5ecd9339d2439f43a25381
//	127.0.0.1:8083#1 b1a51c68baa2616c801a70dcb8ba5e25
//	joe   8ff32489f92f33416694be8fdc2d4c22
//	alice 6384e2b2184bcbf58eccf10ca7a6563c
//	bob   9f9d51bc70ef21ca5c14f307980a29d8
//	carol a9a0198010a6073db96434f6cc5f22a8
//	dave  1610838743cc90e3e4fdda748282d9b8
//	eve   fa6a91ef9baa242de0b354a212e8cf82
func TestHashKeyVectors(t *testing.T) {
	for key, want := range map[string]string{
		"127.0.0.1:8081":   "df2b80dc43705d28db9be6f29fe58da3",
		"127.0.0.1:8082#1": "4620b4c86d5ecd9339d2439f43a25381",
		"joe":              "8ff32489f92f33416694be8fdc2d4c22",
		"":                 "d41d8cd98f00b204e9800998ecf8427e",
	} {
		if got := HashKey(key).String(); got != want {
			t.Errorf("HashKey(%q) = %s, want %s", key, got, want)
		}
	}
}

func TestPositionsVectors(t *testing.T) {
	r := mustRing(t, Config{Members: three, VNodes: 2})
	var got []string
	for _, p := range r.Positions() {
		got = append(got, p.Hash.String()[:4]+" "+PositionKey(r.Members()[p.Member], p.VNode))
	}
	want := []string{
		"4620 127.0.0.1:8082#1",
		"6a93 127.0.0.1:8083",
		"91d8 127.0.0.1:8082",
		"98d4 127.0.0.1:8081#1",
		"b1a5 127.0.0.1:8083#1",
		"df2b 127.0.0.1:8081",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("positions (-want +got):\n%s", diff)
	}
}

// TestPositionHash: the allocation-free position hash is the md5 of the
// position key, for short and long addresses and large vnode numbers.
func TestPositionHash(t *testing.T) {
	long := strings.Repeat("a", MaxStackKey-20) + ":1"
	for _, m := range []string{"127.0.0.1:8081", "[2001:db8::1]:8081", long, long + long} {
		for _, v := range []int{0, 1, 9, 10, 127, 1023, MaxVNodes - 1, 1 << 30} {
			sum := md5.Sum([]byte(PositionKey(m, v)))
			if got, want := PositionHash(m, v).String(), hex.EncodeToString(sum[:]); got != want {
				t.Errorf("PositionHash(%.20q, %d) = %s, md5 of the position key is %s", m, v, got, want)
			}
		}
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = PositionHash("127.0.0.1:8081", 1023) }); allocs != 0 {
		t.Errorf("PositionHash allocates %v times, want 0", allocs)
	}
}

func TestPreferenceVectors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		key  string
		want []string
	}{
		// vnodes 1: positions 6a93 (8083) < 91d8 (8082) < df2b (8081).
		{"classic joe", Config{Members: three}, "joe", []string{"127.0.0.1:8082"}},
		{"classic alice", Config{Members: three}, "alice", []string{"127.0.0.1:8083"}},
		{"classic bob", Config{Members: three}, "bob", []string{"127.0.0.1:8081"}},
		{"classic dave below all", Config{Members: three}, "dave", []string{"127.0.0.1:8083"}},
		{"classic eve wraps", Config{Members: three}, "eve", []string{"127.0.0.1:8083"}},
		{"key on a position goes to the next", Config{Members: three}, "127.0.0.1:8083", []string{"127.0.0.1:8082"}},
		{"successor 2", Config{Members: three, Replicas: 2}, "joe", []string{"127.0.0.1:8082", "127.0.0.1:8081"}},
		{"successor wraps", Config{Members: three, Replicas: 2}, "bob", []string{"127.0.0.1:8081", "127.0.0.1:8083"}},
		{"replicas capped", Config{Members: three, Replicas: 5}, "bob", []string{"127.0.0.1:8081", "127.0.0.1:8083", "127.0.0.1:8082"}},
		// alice's owner position is 6a93; half a turn away is ea93,
		// nearest non-owner position is df2b (8081), while the
		// successor is 91d8 (8082).
		{"opposite", Config{Members: three, Replicas: 2, Placement: Opposite}, "alice", []string{"127.0.0.1:8083", "127.0.0.1:8081"}},
		{"opposite then successors", Config{Members: three, Replicas: 3, Placement: Opposite}, "alice", []string{"127.0.0.1:8083", "127.0.0.1:8081", "127.0.0.1:8082"}},
		// vnodes 2: 4620 (8082) 6a93 (8083) 91d8 (8082) 98d4 (8081) b1a5 (8083) df2b (8081).
		{"vnodes joe", Config{Members: three, VNodes: 2, Replicas: 3}, "joe", []string{"127.0.0.1:8082", "127.0.0.1:8081", "127.0.0.1:8083"}},
		{"vnodes bob", Config{Members: three, VNodes: 2, Replicas: 2}, "bob", []string{"127.0.0.1:8083", "127.0.0.1:8081"}},
		{"vnodes eve wraps", Config{Members: three, VNodes: 2, Replicas: 2}, "eve", []string{"127.0.0.1:8082", "127.0.0.1:8083"}},
		{"vnodes skips own positions", Config{Members: three, VNodes: 2, Replicas: 2}, "dave", []string{"127.0.0.1:8082", "127.0.0.1:8083"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustRing(t, tt.cfg)
			got := r.Preference(nil, tt.key)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Preference(%q) (-want +got):\n%s", tt.key, diff)
			}
			if owner := r.Owner(tt.key); owner != tt.want[0] {
				t.Errorf("Owner(%q) = %s, want %s", tt.key, owner, tt.want[0])
			}
			for _, m := range three {
				want := false
				for _, w := range tt.want {
					want = want || w == m
				}
				if got := r.InPreference(tt.key, m); got != want {
					t.Errorf("InPreference(%q, %s) = %v, want %v", tt.key, m, got, want)
				}
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no members", Config{}, "no members"},
		{"duplicate", Config{Members: []string{"a:1", "a:1"}}, "listed twice"},
		{"empty member", Config{Members: []string{""}}, "empty member"},
		{"vnodes", Config{Members: three, VNodes: MaxVNodes + 1}, "vnodes"},
		{"negative replicas", Config{Members: three, Replicas: -1}, "replicas"},
		{"placement", Config{Members: three, Placement: "random"}, "placement"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	a := mustRing(t, Config{Members: three, VNodes: 8, Replicas: 2})
	b := mustRing(t, Config{Members: []string{three[2], three[0], three[1]}, VNodes: 8, Replicas: 2})
	if a.Version() != b.Version() {
		t.Errorf("member order changed the version: %s != %s", a.Version(), b.Version())
	}
	for name, cfg := range map[string]Config{
		"vnodes":    {Members: three, VNodes: 9, Replicas: 2},
		"replicas":  {Members: three, VNodes: 8, Replicas: 3},
		"placement": {Members: three, VNodes: 8, Replicas: 2, Placement: Opposite},
		"members":   {Members: three[:2], VNodes: 8, Replicas: 2},
	} {
		if c := mustRing(t, cfg); c.Version() == a.Version() {
			t.Errorf("changing %s kept version %s", name, a.Version())
		}
	}
	back, err := FromInfo(a.Info())
	if err != nil || back.Version() != a.Version() {
		t.Errorf("FromInfo(Info()) = %v, %v", back, err)
	}
	in := a.Info()
	in.Version = "0000"
	if _, err := FromInfo(in); err == nil {
		t.Error("FromInfo accepted a wrong version")
	}
}

func members(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.0.%d.%d:8080", i/200, i%200+1)
	}
	return out
}

func keys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "user" + strconv.Itoa(i)
	}
	return out
}

// TestBalance: with 20 members and 128 vnodes the most loaded member
// owns at most 1.3 times the mean of a million keys.
func TestBalance(t *testing.T) {
	if testing.Short() {
		t.Skip("a million lookups; skipped with -short")
	}
	r := mustRing(t, Config{Members: members(20), VNodes: 128})
	count := map[string]int{}
	ks := keys(1_000_000)
	for _, k := range ks {
		count[r.Owner(k)]++
	}
	mean := float64(len(ks)) / 20
	most := 0
	for _, c := range count {
		most = max(most, c)
	}
	t.Logf("most loaded member owns %d keys, %.3f× the mean", most, float64(most)/mean)
	if len(count) != 20 || float64(most) > 1.3*mean {
		t.Errorf("most loaded member owns %d keys (%.3f× the mean %.0f) over %d members", most, float64(most)/mean, mean, len(count))
	}
}

// TestJoinMovement: adding a 21st member moves about 1/21 of the keys,
// every one of them to the new member.
func TestJoinMovement(t *testing.T) {
	if testing.Short() {
		t.Skip("a million lookups; skipped with -short")
	}
	ms := members(21)
	before := mustRing(t, Config{Members: ms[:20], VNodes: 128})
	after := mustRing(t, Config{Members: ms, VNodes: 128})
	moved, elsewhere := 0, 0
	ks := keys(1_000_000)
	for _, k := range ks {
		a, b := before.Owner(k), after.Owner(k)
		if a != b {
			moved++
			if b != ms[20] {
				elsewhere++
			}
		}
	}
	frac := float64(moved) / float64(len(ks))
	t.Logf("%.4f of keys moved (1/21 = %.4f)", frac, 1.0/21)
	if elsewhere != 0 {
		t.Errorf("%d keys moved between old members", elsewhere)
	}
	if frac < 0.7/21 || frac > 1.3/21 {
		t.Errorf("%.4f of keys moved, want about 1/21 = %.4f", frac, 1.0/21)
	}
}

// TestOppositeIsNearestHalfTurn checks opposite placement against a
// brute-force search over every position.
func TestOppositeIsNearestHalfTurn(t *testing.T) {
	r := mustRing(t, Config{Members: members(7), VNodes: 16, Replicas: 3, Placement: Opposite})
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		key := strconv.FormatUint(rng.Uint64(), 36)
		start := r.index(HashKey(key))
		owner := r.points[start].Member
		target := r.points[start].Hash.sub(half)
		best, bestDist := -1, Hash{^uint64(0), ^uint64(0)}
		for _, p := range r.points {
			if p.Member == owner {
				continue
			}
			d := p.Hash.sub(target)
			if d2 := target.sub(p.Hash); d2.Less(d) {
				d = d2
			}
			if d.Less(bestDist) {
				best, bestDist = p.Member, d
			}
		}
		list := r.Preference(nil, key)
		if list[1] != r.members[best] {
			t.Fatalf("key %q: second replica %s, nearest half-turn member is %s", key, list[1], r.members[best])
		}
		if len(list) != 3 || list[2] == list[0] || list[2] == list[1] {
			t.Fatalf("key %q: preference list %v is not 3 distinct members", key, list)
		}
	}
}

func TestLookupsAllocateNothing(t *testing.T) {
	r := mustRing(t, Config{Members: members(20), VNodes: 128, Replicas: 3})
	dst := make([]string, 0, 3)
	long := string(make([]byte, MaxStackKey))
	allocs := testing.AllocsPerRun(1000, func() {
		_ = r.Owner("joe")
		_ = r.Owner(long)
		dst = r.Preference(dst[:0], "joe")
		_ = r.InPreference("joe", "10.0.0.1:8080")
	})
	if allocs != 0 {
		t.Errorf("lookups allocate %v times per run, want 0", allocs)
	}
}

func FuzzRing(f *testing.F) {
	f.Add("joe", uint8(3), uint8(4), uint8(2), false)
	f.Add("", uint8(1), uint8(1), uint8(1), true)
	f.Add("127.0.0.1:8083", uint8(3), uint8(1), uint8(3), true)
	f.Fuzz(func(t *testing.T, key string, n, vnodes, replicas uint8, opposite bool) {
		n = n%12 + 1
		cfg := Config{Members: members(int(n)), VNodes: int(vnodes%64) + 1, Replicas: int(replicas%8) + 1}
		if opposite {
			cfg.Placement = Opposite
		}
		r, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		sum := md5.Sum([]byte(key))
		if got := HashKey(key).String(); got != hex.EncodeToString(sum[:]) {
			t.Fatalf("HashKey(%q) = %s, md5 says %x", key, got, sum)
		}
		// The owner is the member of the first position > md5(key), by a
		// linear scan.
		h := HashKey(key)
		want := r.points[0]
		for _, p := range r.points {
			if h.Less(p.Hash) {
				want = p
				break
			}
		}
		if got := r.Owner(key); got != r.members[want.Member] {
			t.Fatalf("Owner(%q) = %s, linear scan says %s", key, got, r.members[want.Member])
		}
		list := r.Preference(nil, key)
		if len(list) != min(cfg.Replicas, int(n)) || list[0] != r.Owner(key) {
			t.Fatalf("Preference(%q) = %v", key, list)
		}
		seen := map[string]bool{}
		for _, m := range list {
			if seen[m] || !r.Has(m) {
				t.Fatalf("Preference(%q) = %v: duplicate or unknown member", key, list)
			}
			seen[m] = true
		}
	})
}

func BenchmarkOwner(b *testing.B) {
	r, _ := New(Config{Members: members(20), VNodes: 128})
	b.ReportAllocs()
	for b.Loop() {
		_ = r.Owner("joe")
	}
}

func BenchmarkPreference(b *testing.B) {
	r, _ := New(Config{Members: members(20), VNodes: 128, Replicas: 3})
	dst := make([]string, 0, 3)
	b.ReportAllocs()
	for b.Loop() {
		dst = r.Preference(dst[:0], "joe")
	}
}

func mustRing(t *testing.T, cfg Config) *Ring {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestPreferenceAt: the preference list at a key's hash is the key's.
func TestPreferenceAt(t *testing.T) {
	for _, pl := range []Placement{Successor, Opposite} {
		r, err := New(Config{Members: []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"}, VNodes: 16, Replicas: 3, Placement: pl})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2000 {
			key := fmt.Sprintf("key%d", i)
			want := r.Preference(nil, key)
			if got := r.PreferenceAt(nil, HashKey(key)); !slices.Equal(want, got) {
				t.Fatalf("%s: PreferenceAt(%s) = %v, want %v", pl, key, got, want)
			}
		}
	}
}

// TestWalk: the walk starts with the preference list, names every member
// once, and the members after the list come in clockwise order.
func TestWalk(t *testing.T) {
	five := []string{"a:1", "b:1", "c:1", "d:1", "e:1"}
	for _, pl := range []Placement{Successor, Opposite} {
		r, err := New(Config{Members: five, VNodes: 8, Replicas: 2, Placement: pl})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 200 {
			key := fmt.Sprintf("user%d", i)
			walk := r.Walk(nil, key)
			pref := r.Preference(nil, key)
			if !slices.Equal(walk[:len(pref)], pref) {
				t.Fatalf("%s walk %v does not start with the preference list %v", key, walk, pref)
			}
			if got := slices.Sorted(slices.Values(walk)); !slices.Equal(got, five) {
				t.Fatalf("%s walk %v does not name every member once", key, walk)
			}
		}
	}
	// Past the preference list, members come in the order they first
	// appear clockwise from the key (checked by a plain scan, with more
	// than 64 members).
	big, err := New(Config{Members: members(150), VNodes: 4, Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		key := fmt.Sprintf("user%d", i)
		want := big.Preference(nil, key)
		start := big.index(HashKey(key))
		for j := range len(big.points) {
			if m := big.members[big.points[(start+j)%len(big.points)].Member]; !slices.Contains(want, m) {
				want = append(want, m)
			}
		}
		if got := big.Walk(nil, key); !slices.Equal(got, want) {
			t.Fatalf("walk of %s = %v, want %v", key, got, want)
		}
	}
	// With one position per member (vnode 0 at the md5 of the member's
	// address) the walk is the members in hash order, from the first
	// whose hash is above the key's, wrapping around.
	r, _ := New(Config{Members: five, VNodes: 1, Replicas: 1})
	byHash := slices.Clone(five)
	slices.SortFunc(byHash, func(a, b string) int {
		if HashKey(a).Less(HashKey(b)) {
			return -1
		}
		return 1
	})
	for i := range 50 {
		key := fmt.Sprintf("k%d", i)
		start := 0
		for start < len(byHash) && !HashKey(key).Less(HashKey(byHash[start])) {
			start++
		}
		want := append(slices.Clone(byHash[start%len(byHash):]), byHash[:start%len(byHash)]...)
		if got := r.Walk(nil, key); !slices.Equal(got, want) {
			t.Fatalf("walk of %s = %v, want %v", key, got, want)
		}
	}
}
