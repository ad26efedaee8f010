package ring

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
)

// Placement says how replicas after the owner are chosen.
type Placement string

const (
	// Successor takes the next distinct members clockwise from the
	// owner's position (the default, as in Dynamo).
	Successor Placement = "successor"
	// Opposite takes first the member whose position is nearest 180
	// degrees from the owner's position, then successors. It keeps the
	// two copies of a key on members that are far apart on the ring.
	Opposite Placement = "opposite"
)

// Limits on the settings, so a typo cannot build a ring that eats all
// memory: 4096 positions per member is far more than balance needs.
const (
	MaxVNodes = 4096
	// MaxStackKey is the longest key that is hashed without allocating.
	MaxStackKey = 256
)

// Errors returned by New.
var (
	ErrNoMembers = errors.New("ring has no members")
)

// Config describes a ring.
type Config struct {
	// Members are the advertised host:port addresses. Order does not
	// matter; duplicates are an error.
	Members []string
	// VNodes is the number of positions per member (default 1).
	VNodes int
	// Replicas is the length of a preference list, owner included
	// (default 1). It is capped at the number of members.
	Replicas int
	// Placement chooses replicas; empty means Successor.
	Placement Placement
}

// Hash is a 128-bit big-endian md5 value.
type Hash struct{ Hi, Lo uint64 }

// Less reports whether h < o.
func (h Hash) Less(o Hash) bool { return h.Hi < o.Hi || (h.Hi == o.Hi && h.Lo < o.Lo) }

// String is the hash in hex, as md5sum prints it.
func (h Hash) String() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], h.Hi)
	binary.BigEndian.PutUint64(b[8:], h.Lo)
	return hex.EncodeToString(b[:])
}

// sub returns h - o modulo 2^128: the clockwise distance from o to h.
func (h Hash) sub(o Hash) Hash {
	lo, borrow := bits.Sub64(h.Lo, o.Lo, 0)
	hi, _ := bits.Sub64(h.Hi, o.Hi, borrow)
	return Hash{hi, lo}
}

// half is 2^127, a half turn of the circle.
var half = Hash{Hi: 1 << 63}

// HashKey returns md5(key) as a 128-bit big-endian number. It allocates
// nothing for keys up to MaxStackKey bytes.
func HashKey(key string) Hash {
	var sum [16]byte
	if len(key) <= MaxStackKey {
		var buf [MaxStackKey]byte
		n := copy(buf[:], key)
		sum = md5.Sum(buf[:n])
	} else {
		sum = md5.Sum([]byte(key))
	}
	return Hash{binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:])}
}

// Position is one point on the ring.
type Position struct {
	Hash   Hash
	Member int // index into Ring.Members()
	VNode  int
}

// Ring is an immutable md5 ring. It is safe for concurrent use.
type Ring struct {
	members   []string // sorted
	points    []Position
	vnodes    int
	replicas  int // capped at len(members)
	placement Placement
	version   string
}

// New builds a ring from cfg, filling defaults.
func New(cfg Config) (*Ring, error) {
	if len(cfg.Members) == 0 {
		return nil, ErrNoMembers
	}
	if cfg.VNodes == 0 {
		cfg.VNodes = 1
	}
	if cfg.VNodes < 0 || cfg.VNodes > MaxVNodes {
		return nil, fmt.Errorf("building ring: vnodes %d is outside 1..%d", cfg.VNodes, MaxVNodes)
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.Replicas < 0 {
		return nil, fmt.Errorf("building ring: replicas %d is negative", cfg.Replicas)
	}
	switch cfg.Placement {
	case "":
		cfg.Placement = Successor
	case Successor, Opposite:
	default:
		return nil, fmt.Errorf("building ring: placement %q is not successor or opposite", cfg.Placement)
	}
	members := slices.Clone(cfg.Members)
	slices.Sort(members)
	for i, m := range members {
		if m == "" {
			return nil, errors.New("building ring: empty member address")
		}
		if i > 0 && members[i-1] == m {
			return nil, fmt.Errorf("building ring: member %s is listed twice", m)
		}
	}
	r := &Ring{
		members:   members,
		points:    make([]Position, 0, len(members)*cfg.VNodes),
		vnodes:    cfg.VNodes,
		replicas:  min(cfg.Replicas, len(members)),
		placement: cfg.Placement,
	}
	for mi, m := range members {
		for v := range cfg.VNodes {
			r.points = append(r.points, Position{Hash: PositionHash(m, v), Member: mi, VNode: v})
		}
	}
	slices.SortFunc(r.points, func(a, b Position) int {
		switch {
		case a.Hash.Less(b.Hash):
			return -1
		case b.Hash.Less(a.Hash):
			return 1
		}
		// Equal md5 values do not happen in practice; order by
		// member so the ring is still deterministic.
		return a.Member - b.Member
	})
	h := sha256.New()
	fmt.Fprintf(h, "vnodes=%d\nreplicas=%d\nplacement=%s\n", r.vnodes, r.replicas, r.placement)
	for _, m := range members {
		fmt.Fprintf(h, "member=%s\n", m)
	}
	r.version = hex.EncodeToString(h.Sum(nil)[:8])
	return r, nil
}

// PositionKey is the string whose md5 is position vnode of member:
// the address itself for vnode 0, address + "#" + vnode otherwise.
func PositionKey(member string, vnode int) string {
	if vnode == 0 {
		return member
	}
	return member + "#" + strconv.Itoa(vnode)
}

// PositionHash is HashKey(PositionKey(member, vnode)), without
// allocating for addresses up to MaxStackKey-20 bytes: building a ring
// of 20,000 members × 1,024 vnodes hashes 20 million positions.
func PositionHash(member string, vnode int) Hash {
	if vnode == 0 {
		return HashKey(member)
	}
	var buf [MaxStackKey]byte
	if len(member) > len(buf)-20 { // "#" and at most 19 digits
		return HashKey(PositionKey(member, vnode))
	}
	b := append(buf[:0], member...)
	b = append(b, '#')
	b = strconv.AppendInt(b, int64(vnode), 10)
	sum := md5.Sum(b)
	return Hash{binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:])}
}

// Members returns the sorted member addresses. The caller must not
// modify the slice.
func (r *Ring) Members() []string { return r.members }

// Positions returns the sorted positions. The caller must not modify
// the slice.
func (r *Ring) Positions() []Position { return r.points }

// VNodes is the number of positions per member.
func (r *Ring) VNodes() int { return r.vnodes }

// Replicas is the length of every preference list.
func (r *Ring) Replicas() int { return r.replicas }

// Placement is the replica placement.
func (r *Ring) Placement() Placement { return r.placement }

// Version is a hash of the sorted membership and the settings; two rings
// with the same version place every key the same way.
func (r *Ring) Version() string { return r.version }

// Has reports whether addr is a member.
func (r *Ring) Has(addr string) bool {
	_, ok := slices.BinarySearch(r.members, addr)
	return ok
}

// index returns the index of the position owning h: the first position
// strictly greater than h, wrapping to 0.
func (r *Ring) index(h Hash) int {
	lo, hi := 0, len(r.points)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if h.Less(r.points[m].Hash) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	if lo == len(r.points) {
		return 0
	}
	return lo
}

// Owner returns the member that owns key. It allocates nothing.
func (r *Ring) Owner(key string) string {
	return r.members[r.points[r.index(HashKey(key))].Member]
}

// IsOwner reports whether addr is the owner of key.
func (r *Ring) IsOwner(key, addr string) bool { return r.Owner(key) == addr }

// Preference appends the preference list of key to dst and returns it:
// the owner first, then Replicas-1 distinct further members. It
// allocates nothing when dst has room for Replicas() entries.
func (r *Ring) Preference(dst []string, key string) []string {
	var idx [16]int // member indexes; replicas beyond 16 use the heap
	list := idx[:0]
	list = r.preference(list, r.index(HashKey(key)))
	for _, m := range list {
		dst = append(dst, r.members[m])
	}
	return dst
}

// Walk appends every member to dst in the order key would reach them:
// its preference list first, then the other members in the order they
// first appear clockwise from key. The members after the preference
// list are where a sloppy quorum puts hinted copies for replicas that
// are down (Dynamo's "next healthy node clockwise").
//
// It takes time in proportion to the positions it passes, not to
// positions × members: a set of the members already named keeps a ring
// of 20,000 members × 128 vnodes to milliseconds (bench/scale).
func (r *Ring) Walk(dst []string, key string) []string {
	start := r.index(HashKey(key))
	list := r.preference(make([]int, 0, len(r.members)), start)
	seen := make([]uint64, (len(r.members)+63)/64)
	for _, m := range list {
		seen[m/64] |= 1 << (m % 64)
	}
	n := len(r.points)
	for i := 1; i < n && len(list) < len(r.members); i++ {
		if m := r.points[(start+i)%n].Member; seen[m/64]&(1<<(m%64)) == 0 {
			seen[m/64] |= 1 << (m % 64)
			list = append(list, m)
		}
	}
	for _, m := range list {
		dst = append(dst, r.members[m])
	}
	return dst
}

// InPreference reports whether addr is in key's preference list.
func (r *Ring) InPreference(key, addr string) bool {
	var idx [16]int
	for _, m := range r.preference(idx[:0], r.index(HashKey(key))) {
		if r.members[m] == addr {
			return true
		}
	}
	return false
}

func contains(list []int, m int) bool {
	for _, x := range list {
		if x == m {
			return true
		}
	}
	return false
}

// preference appends the member indexes of the preference list that
// starts at position start.
func (r *Ring) preference(list []int, start int) []int {
	owner := r.points[start].Member
	list = append(list, owner)
	if r.replicas > 1 && r.placement == Opposite {
		list = append(list, r.opposite(start))
	}
	n := len(r.points)
	for i := 1; i < n && len(list) < r.replicas; i++ {
		m := r.points[(start+i)%n].Member
		if !contains(list, m) {
			list = append(list, m)
		}
	}
	return list
}

// opposite returns the member, other than the owner of position start,
// whose position is nearest to the point half a turn from start. Ties
// go to the clockwise side.
func (r *Ring) opposite(start int) int {
	owner := r.points[start].Member
	target := r.points[start].Hash.sub(half) // + 2^127 == - 2^127
	n := len(r.points)
	// j is the first position >= target; walk clockwise from j and
	// counter-clockwise from j-1 to the first non-owner on each side.
	j := r.index(target.sub(Hash{0, 1}))
	cw, ccw := -1, -1
	for i := 0; i < n; i++ {
		if p := r.points[(j+i)%n]; p.Member != owner {
			cw = (j + i) % n
			break
		}
	}
	for i := 1; i <= n; i++ {
		if p := r.points[((j-i)%n+n)%n]; p.Member != owner {
			ccw = ((j-i)%n + n) % n
			break
		}
	}
	dcw := r.points[cw].Hash.sub(target)
	dccw := target.sub(r.points[ccw].Hash)
	if dccw.Less(dcw) {
		return r.points[ccw].Member
	}
	return r.points[cw].Member
}

// Info is the JSON form of a ring, as GET /v1/ring publishes it.
type Info struct {
	Members   []string  `json:"members"`
	VNodes    int       `json:"vnodes"`
	Replicas  int       `json:"replicas"`
	Placement Placement `json:"placement"`
	Version   string    `json:"version"`
}

// Info returns the ring's description.
func (r *Ring) Info() Info {
	return Info{Members: slices.Clone(r.members), VNodes: r.vnodes, Replicas: r.replicas, Placement: r.placement, Version: r.version}
}

// FromInfo rebuilds a ring from its published description and checks
// that the version matches, so a client and the server agree exactly.
func FromInfo(in Info) (*Ring, error) {
	r, err := New(Config{Members: in.Members, VNodes: in.VNodes, Replicas: in.Replicas, Placement: in.Placement})
	if err != nil {
		return nil, err
	}
	if in.Version != "" && r.version != in.Version {
		return nil, fmt.Errorf("rebuilding ring: version %s does not match the published %s (different ring code?)", r.version, in.Version)
	}
	return r, nil
}

// String describes the ring for logs.
func (r *Ring) String() string {
	return fmt.Sprintf("ring %s: %d members × %d vnodes, %d replicas (%s): %s",
		r.version, len(r.members), r.vnodes, r.replicas, r.placement, strings.Join(r.members, ","))
}

// PreferenceAt is Preference for a key whose hash is h: anti-entropy
// uses it for whole ranges of keys at once.
func (r *Ring) PreferenceAt(dst []string, h Hash) []string {
	var idx [16]int
	for _, m := range r.preference(idx[:0], r.index(h)) {
		dst = append(dst, r.members[m])
	}
	return dst
}
