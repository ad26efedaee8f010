package limits

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Kind is a kind of request, limited apart from the others.
type Kind int

// The kinds of request.
const (
	Signup Kind = iota
	Post
	Follow
	Read
	numKinds
)

// Kinds lists every kind, in order.
var Kinds = []Kind{Signup, Post, Follow, Read}

var kindNames = [numKinds]string{"signup", "post", "follow", "read"}

// String is the kind's name in metrics and errors.
func (k Kind) String() string { return kindNames[k] }

// plural names the kind's requests in an error.
func (k Kind) plural() string {
	return [numKinds]string{"sign-ups", "posts", "follows and unfollows", "reads"}[k]
}

// Rule is a token bucket: Burst requests at once, refilled at Rate per
// second. The zero Rule limits nothing.
type Rule struct {
	Rate  rate.Limit
	Burst int
}

// On reports whether the rule limits anything.
func (r Rule) On() bool { return r.Rate > 0 && r.Burst > 0 }

// share is this member's part of a cluster-wide rule when members
// members each enforce it: the rate divided, the burst divided and
// rounded up (at least 1, so a lone request always gets through).
func (r Rule) share(members int) Rule {
	if !r.On() || members <= 1 {
		return r
	}
	return Rule{Rate: r.Rate / rate.Limit(members), Burst: (r.Burst + members - 1) / members}
}

// Config is every rule, cluster-wide, and the tables' size.
type Config struct {
	// Address and User are the rules per client network and per user,
	// by Kind (User[Signup] is not used: nobody is signed in yet).
	Address, User [numKinds]Rule
	// TableSize bounds each table (addresses, users) in entries; an
	// entry is one bucket (one address or user, one kind). 0 means
	// DefaultTableSize.
	TableSize int
	// Exempt lists the networks whose requests are never limited.
	Exempt []netip.Prefix
}

// DefaultTableSize bounds each table by default: 65,536 entries of
// about 340 bytes (key, bucket, the LRU's element and map slot), under
// 24 MiB a table (TestTableBound measures it: 21.5 MiB). The entries a flood pushes out are those least recently used:
// a client that keeps sending keeps its entry, and an entry that went
// unused for long has refilled its bucket anyway.
const DefaultTableSize = 1 << 16

// shards splits each table, so that concurrent requests seldom wait
// for each other's lock.
const shards = 32

// Limiter decides whether a request may go ahead. It is safe for
// concurrent use; Configure and SetMembers may be called while it
// serves.
type Limiter struct {
	mu      sync.Mutex // guards cfg and members, and serializes changes
	cfg     Config
	members int

	cur   atomicSettings
	addrs *table[addrKey]
	users *table[userKey]
}

// settings is what one decision reads, replaced whole on a change.
type settings struct {
	gen           uint64
	address, user [numKinds]Rule // address: this member's share
	exempt        []netip.Prefix
}

// New returns a limiter that limits nothing until Configure.
func New() *Limiter {
	l := &Limiter{members: 1}
	l.addrs = newTable[addrKey](DefaultTableSize)
	l.users = newTable[userKey](DefaultTableSize)
	l.cur.Store(&settings{})
	return l
}

// Configure installs cfg: buckets already in the tables take the new
// rules at their next use, keeping their tokens (up to the new burst).
func (l *Limiter) Configure(cfg Config) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cfg = cfg
	size := cfg.TableSize
	if size <= 0 {
		size = DefaultTableSize
	}
	l.addrs.resize(size)
	l.users.resize(size)
	l.update()
}

// SetMembers sets how many members share the address rules (at least
// 1).
func (l *Limiter) SetMembers(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.members = max(n, 1)
	l.update()
}

// update installs the settings for l.cfg and l.members; l.mu is held.
func (l *Limiter) update() {
	s := &settings{gen: l.cur.Load().gen + 1, user: l.cfg.User, exempt: l.cfg.Exempt}
	for k := range numKinds {
		s.address[k] = l.cfg.Address[k].share(l.members)
	}
	l.cur.Store(s)
}

// Share returns the address rule of kind k as this member enforces it.
func (l *Limiter) Share(k Kind) Rule { return l.cur.Load().address[k] }

// Exempt reports whether requests from addr are never limited.
func (l *Limiter) Exempt(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range l.cur.Load().exempt {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Denied says why a request was refused and when to try again.
type Denied struct {
	Kind Kind
	// By is "address" or "user".
	By string
	// Who is the network or user name limited.
	Who string
	// Rule is the rule as this member enforces it.
	Rule Rule
	// RetryAfter is how long until the request would be admitted.
	RetryAfter time.Duration
}

func (d *Denied) Error() string {
	return fmt.Sprintf("too many %s from %s %s: at most %s with bursts of %d; try again in %s",
		d.Kind.plural(), d.By, d.Who, perSecond(d.Rule.Rate), d.Rule.Burst, d.RetryAfter.Round(time.Millisecond))
}

// RetryAfterSeconds is RetryAfter in whole seconds, rounded up (at least
// 1), for the Retry-After header.
func (d *Denied) RetryAfterSeconds() int {
	return max(1, int(math.Ceil(d.RetryAfter.Seconds())))
}

// perSecond writes a rate in the unit that shows it best.
func perSecond(r rate.Limit) string {
	n, unit := float64(r), "second"
	switch {
	case r >= 1:
	case r*60 >= 1:
		n, unit = n*60, "minute"
	default:
		n, unit = n*3600, "hour"
	}
	return strconv.FormatFloat(n, 'g', 3, 64) + " per " + unit
}

// AllowAddress takes a token from addr's bucket of kind k at now, or
// says why not. Exempt addresses are always admitted.
func (l *Limiter) AllowAddress(k Kind, addr netip.Addr, now time.Time) *Denied {
	s := l.cur.Load()
	rule := s.address[k]
	if !rule.On() || l.Exempt(addr) {
		return nil
	}
	key := addrKey{kind: k, net: Network(addr)}
	b := l.addrs.get(key, s.gen, rule)
	if d := b.take(now, rule, s.gen); d > 0 {
		return &Denied{Kind: k, By: "address", Who: netip.PrefixFrom(key.net, bitsOf(key.net)).String(), Rule: rule, RetryAfter: d}
	}
	return nil
}

// AllowUser takes a token from user's bucket of kind k at now, or says
// why not.
func (l *Limiter) AllowUser(k Kind, user string, now time.Time) *Denied {
	s := l.cur.Load()
	rule := s.user[k]
	if !rule.On() {
		return nil
	}
	b := l.users.get(userKey{kind: k, name: user}, s.gen, rule)
	if d := b.take(now, rule, s.gen); d > 0 {
		return &Denied{Kind: k, By: "user", Who: user, Rule: rule, RetryAfter: d}
	}
	return nil
}

// Entries returns how many buckets each table holds.
func (l *Limiter) Entries() (addresses, users int) { return l.addrs.len(), l.users.len() }

// Network is the network addr counts for: the address itself for IPv4
// (and IPv4-mapped IPv6), its /64 for IPv6, as an address with the
// host bits zero.
func Network(addr netip.Addr) netip.Addr {
	addr = addr.Unmap().WithZone("")
	if addr.Is4() {
		return addr
	}
	p, _ := addr.Prefix(64)
	return p.Addr()
}

func bitsOf(a netip.Addr) int {
	if a.Is4() {
		return 32
	}
	return 64
}

// addrKey is a bucket of the address table.
type addrKey struct {
	kind Kind
	net  netip.Addr
}

// userKey is a bucket of the user table.
type userKey struct {
	kind Kind
	name string
}

// bucket is one token bucket and the settings generation its rule
// came from.
type bucket struct {
	mu  sync.Mutex // guards gen (the limiter has its own lock)
	gen uint64
	lim *rate.Limiter
}

// take takes a token at now, first moving the bucket to rule when the
// settings changed since it was made; it returns 0, or how long until a
// token is there (and takes none).
func (b *bucket) take(now time.Time, rule Rule, gen uint64) time.Duration {
	b.mu.Lock()
	if b.gen != gen {
		b.lim.SetLimitAt(now, rule.Rate)
		b.lim.SetBurstAt(now, rule.Burst)
		b.gen = gen
	}
	b.mu.Unlock()
	r := b.lim.ReserveN(now, 1)
	if !r.OK() {
		return time.Duration(math.MaxInt64)
	}
	d := r.DelayFrom(now)
	if d > 0 {
		r.CancelAt(now)
	}
	return d
}
