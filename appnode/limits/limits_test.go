package limits

import (
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestNetwork(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"198.51.100.7", "198.51.100.7"},
		{"::ffff:198.51.100.7", "198.51.100.7"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"},
		{"2001:db8:1:2::9", "2001:db8:1:2::"},
		{"fe80::1%eth0", "fe80::"},
	} {
		if got := Network(netip.MustParseAddr(tc.in)).String(); got != tc.want {
			t.Errorf("Network(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func limiter(cfg Config) *Limiter {
	l := New()
	l.Configure(cfg)
	return l
}

// admitted counts how many of n requests of kind k from addr at now
// are admitted.
func admitted(l *Limiter, k Kind, addr string, n int, now time.Time) int {
	ok := 0
	for range n {
		if l.AllowAddress(k, netip.MustParseAddr(addr), now) == nil {
			ok++
		}
	}
	return ok
}

func TestAllowAddress(t *testing.T) {
	var cfg Config
	cfg.Address[Post] = Rule{Rate: 2, Burst: 5}
	cfg.Exempt = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	l := limiter(cfg)
	for _, tc := range []struct {
		name string
		addr string
		kind Kind
		at   time.Duration
		n    int
		want int
	}{
		{"a burst", "198.51.100.1", Post, 0, 10, 5},
		{"a kind without a rule", "198.51.100.1", Read, 0, 10, 10},
		{"another address is apart", "198.51.100.2", Post, 0, 10, 5},
		{"refilled at the rate", "198.51.100.1", Post, 2 * time.Second, 10, 4},
		{"one /64 is one client", "2001:db8:0:1::1", Post, 0, 3, 3},
		{"the same /64", "2001:db8:0:1:ffff::2", Post, 0, 10, 2},
		{"the next /64", "2001:db8:0:2::1", Post, 0, 10, 5},
		{"exempt", "127.0.0.1", Post, 0, 100, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := admitted(l, tc.kind, tc.addr, tc.n, t0.Add(tc.at)); got != tc.want {
				t.Errorf("admitted %d of %d, want %d", got, tc.n, tc.want)
			}
		})
	}
}

func TestDenied(t *testing.T) {
	var cfg Config
	cfg.Address[Signup] = Rule{Rate: 1.0 / 60, Burst: 1}
	cfg.User[Post] = Rule{Rate: 0.5, Burst: 1}
	l := limiter(cfg)
	addr := netip.MustParseAddr("2001:db8::7")
	if d := l.AllowAddress(Signup, addr, t0); d != nil {
		t.Fatalf("first sign-up refused: %v", d)
	}
	d := l.AllowAddress(Signup, addr, t0.Add(30*time.Second))
	if d == nil {
		t.Fatal("second sign-up within a minute admitted")
	}
	if d.RetryAfter != 30*time.Second || d.RetryAfterSeconds() != 30 {
		t.Errorf("retry after %v (%ds), want 30s", d.RetryAfter, d.RetryAfterSeconds())
	}
	if want := "too many sign-ups from address 2001:db8::/64: at most 1 per minute with bursts of 1; try again in 30s"; d.Error() != want {
		t.Errorf("error %q, want %q", d.Error(), want)
	}
	// A refused request takes no token: it is admitted once the wait
	// is over.
	if d := l.AllowAddress(Signup, addr, t0.Add(60*time.Second)); d != nil {
		t.Errorf("sign-up after a minute refused: %v", d)
	}
	if d := l.AllowUser(Post, "alice", t0); d != nil {
		t.Fatalf("alice's first post refused: %v", d)
	}
	d = l.AllowUser(Post, "alice", t0.Add(500*time.Millisecond))
	if d == nil || !strings.Contains(d.Error(), "from user alice") || d.RetryAfterSeconds() != 2 {
		t.Errorf("alice's second post: %v, want refused for 1.5s (Retry-After 2)", d)
	}
	if d := l.AllowUser(Post, "bob", t0); d != nil {
		t.Errorf("bob refused for alice's posts: %v", d)
	}
	if d := l.AllowUser(Read, "alice", t0); d != nil {
		t.Errorf("read without a rule refused: %v", d)
	}
}

// TestShareAcrossMembers: each of 3 members enforces a third of the
// cluster's address rule, so a client that spreads its requests over
// all three gets the cluster's burst and rate, not three times them.
func TestShareAcrossMembers(t *testing.T) {
	var cfg Config
	cfg.Address[Post] = Rule{Rate: 3, Burst: 30}
	members := make([]*Limiter, 3)
	for i := range members {
		members[i] = limiter(cfg)
		members[i].SetMembers(3)
	}
	if got, want := members[0].Share(Post), (Rule{Rate: 1, Burst: 10}); got != want {
		t.Errorf("share = %+v, want %+v", got, want)
	}
	ok := 0
	for i := range 90 {
		if members[i%3].AllowAddress(Post, netip.MustParseAddr("198.51.100.9"), t0) == nil {
			ok++
		}
	}
	if ok != 30 {
		t.Errorf("a client spreading 90 posts over 3 members got %d through, want the cluster burst, 30", ok)
	}
}

func TestConfigureKeepsBuckets(t *testing.T) {
	var cfg Config
	cfg.Address[Read] = Rule{Rate: 1, Burst: 10}
	l := limiter(cfg)
	if got := admitted(l, Read, "198.51.100.3", 4, t0); got != 4 {
		t.Fatalf("admitted %d, want 4", got)
	}
	cfg.Address[Read] = Rule{Rate: 1, Burst: 8}
	l.Configure(cfg)
	// 6 tokens left, within the new burst.
	if got := admitted(l, Read, "198.51.100.3", 10, t0); got != 6 {
		t.Errorf("after a reload admitted %d, want the 6 tokens left", got)
	}
	cfg.Address[Read] = Rule{}
	l.Configure(cfg)
	if got := admitted(l, Read, "198.51.100.3", 10, t0); got != 10 {
		t.Errorf("with the rule off admitted %d, want all 10", got)
	}
}

// TestTableBound floods a limiter with a million distinct sources (one
// request each, IPv4 and IPv6 and users) and checks that each table
// keeps at most its size in entries and that the heap stays under the
// bound DefaultTableSize's comment states: 24 MiB a table.
func TestTableBound(t *testing.T) {
	if testing.Short() {
		t.Skip("a million requests: not in -short")
	}
	var cfg Config
	cfg.Address[Read] = Rule{Rate: 1, Burst: 1}
	cfg.User[Read] = Rule{Rate: 1, Burst: 1}
	l := limiter(cfg)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const sources = 1_000_000
	var b4 [4]byte
	var b16 [16]byte
	b16[0], b16[1] = 0x20, 0x01
	for i := range sources {
		b4 = [4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}
		b16[5], b16[6], b16[7] = byte(i>>16), byte(i>>8), byte(i) // a /64 each
		now := t0.Add(time.Duration(i) * time.Microsecond)
		l.AllowAddress(Read, netip.AddrFrom4(b4), now)
		l.AllowAddress(Read, netip.AddrFrom16(b16), now)
		if i%4 == 0 {
			l.AllowUser(Read, "user"+itoa(i), now)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	addrs, users := l.Entries()
	if addrs > DefaultTableSize || users > DefaultTableSize {
		t.Errorf("entries: %d addresses, %d users; want at most %d each", addrs, users, DefaultTableSize)
	}
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	const bound = 2 * 24 << 20
	t.Logf("%d sources: %d address and %d user entries, heap grew %.1f MiB (bound %d MiB)", 2*sources+sources/4, addrs, users, float64(grew)/(1<<20), bound>>20)
	if grew > bound {
		t.Errorf("heap grew %d bytes, over the bound of %d", grew, bound)
	}
	runtime.KeepAlive(l)
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		if i /= 10; i == 0 {
			return string(b[n:])
		}
	}
}
