package feed

import (
	"crypto/md5"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Timestamp is a hybrid logical clock value: milliseconds since the
// Unix epoch in the top 48 bits and a logical counter in the low 16.
// Timestamps from one Clock are strictly increasing; comparing two is
// comparing the numbers.
type Timestamp uint64

// logicalBits is the width of the logical counter: 65536 events per
// millisecond per node before the clock runs ahead of the wall clock.
const logicalBits = 16

// Time is the physical part of t.
func (t Timestamp) Time() time.Time {
	return time.UnixMilli(int64(t >> logicalBits)).UTC()
}

// Clock is a hybrid logical clock (Kulkarni et al.). It is safe for
// concurrent use.
type Clock struct {
	now  func() time.Time
	last atomic.Uint64
}

// NewClock returns a clock reading now; nil means time.Now.
func NewClock(now func() time.Time) *Clock {
	if now == nil {
		now = time.Now
	}
	return &Clock{now: now}
}

// Now returns a timestamp greater than every one this clock returned or
// observed before.
func (c *Clock) Now() Timestamp {
	phys := uint64(c.now().UnixMilli()) << logicalBits
	for {
		last := c.last.Load()
		next := max(phys, last+1)
		if c.last.CompareAndSwap(last, next) {
			return Timestamp(next)
		}
	}
}

// Last returns the clock's latest timestamp, without moving it.
func (c *Clock) Last() Timestamp { return Timestamp(c.last.Load()) }

// Observe moves the clock past a timestamp seen from another node, so
// causally later events get later timestamps.
func (c *Clock) Observe(t Timestamp) {
	for {
		last := c.last.Load()
		if uint64(t) <= last || c.last.CompareAndSwap(last, uint64(t)) {
			return
		}
	}
}

// ClientSkew is how far a post id or an edge clock chosen by a client
// may be from the clock of the member that stores it: wide enough for
// clients and members whose clocks disagree, narrow enough that nobody
// pins a post to the top of timelines, or an edge beyond later
// changes, for long.
const ClientSkew = 5 * time.Minute

// ID is a post id: 16 bytes that sort by time and are unique across the
// cluster: an HLC timestamp (8 bytes), a node tag (4 bytes, from the
// node's address) and a per-node sequence number (4 bytes). Its text
// form is 26 characters of a sort-preserving base32.
type ID [16]byte

// idAlphabet is Crockford's base32 in lower case: its characters are in
// ASCII order, so the text form sorts like the bytes.
const idAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

var idEncoding = base32.NewEncoding(idAlphabet).WithPadding(base32.NoPadding)

// IDLen is the length of an ID's text form.
const IDLen = 26

// ErrBadID is returned for a malformed id or cursor.
var ErrBadID = errors.New("malformed post id")

// Time is when the post was made, from the id's clock.
func (id ID) Time() time.Time { return Timestamp(binary.BigEndian.Uint64(id[:8])).Time() }

// IsZero reports whether id is the zero ID (used as "no cursor").
func (id ID) IsZero() bool { return id == ID{} }

// String returns the 26-character text form.
func (id ID) String() string { return idEncoding.EncodeToString(id[:]) }

// Compare returns -1, 0 or 1 as id sorts before, equal to or after o.
func (id ID) Compare(o ID) int {
	for i := range id {
		switch {
		case id[i] < o[i]:
			return -1
		case id[i] > o[i]:
			return 1
		}
	}
	return 0
}

// ParseID parses the text form.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != IDLen {
		return id, fmt.Errorf("%w: %q is not %d characters", ErrBadID, s, IDLen)
	}
	n, err := idEncoding.Decode(id[:], []byte(s))
	if err != nil || n != len(id) || idEncoding.EncodeToString(id[:]) != s {
		return ID{}, fmt.Errorf("%w: %q", ErrBadID, s)
	}
	return id, nil
}

// MarshalText implements encoding.TextMarshaler.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// IDSource makes post ids for one node. It is safe for concurrent use.
type IDSource struct {
	clock *Clock
	tag   [4]byte
	mu    sync.Mutex // guards seq
	seq   uint32
}

// NewIDSource returns an id source for the node advertised at addr.
func NewIDSource(clock *Clock, addr string) *IDSource {
	sum := md5.Sum([]byte(addr))
	s := &IDSource{clock: clock}
	copy(s.tag[:], sum[:4])
	return s
}

// Next returns a new id, later than every id this source made before.
func (s *IDSource) Next() ID {
	var id ID
	binary.BigEndian.PutUint64(id[:8], uint64(s.clock.Now()))
	copy(id[8:12], s.tag[:])
	s.mu.Lock()
	s.seq++
	binary.BigEndian.PutUint32(id[12:], s.seq)
	s.mu.Unlock()
	return id
}
