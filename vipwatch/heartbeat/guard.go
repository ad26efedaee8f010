package heartbeat

import (
	"errors"
	"fmt"
)

// Drop is why a Guard refused a datagram. The zero value means the
// datagram was accepted.
type Drop uint8

// Drop reasons. Their String forms are metric label values.
const (
	Accepted   Drop = iota
	Malformed       // too short, bad magic, or a body that does not parse
	BadMAC          // the HMAC does not match: wrong key or tampered
	BadVersion      // a version this daemon does not speak
	WrongNode       // from a node that is not the configured partner
	Replay          // sequence not newer than the last seen for its boot id
	// Unproven is the state machine's reason, not the Guard's: an
	// authentic, new heartbeat that proves nothing. Its ack and echo
	// name no heartbeat the receiver sent lately in its current run,
	// and it is not from the partner boot that has proved itself in
	// that run: a recording made before the receiver (re)started, or
	// a partner that has not heard the receiver yet. It is answered
	// (echoed), so that a live partner can prove itself, and never
	// acted on.
	Unproven
)

// DropReasons lists every reason a datagram is dropped, for metrics.
var DropReasons = []Drop{Malformed, BadMAC, BadVersion, WrongNode, Replay, Unproven}

var dropNames = [...]string{"accepted", "malformed", "bad_mac", "bad_version", "wrong_node", "replay", "unproven"}

func (d Drop) String() string {
	if int(d) < len(dropNames) {
		return dropNames[d]
	}
	return fmt.Sprintf("drop(%d)", uint8(d))
}

// maxBoots bounds the boot ids a Guard remembers. A partner restarts
// rarely; eight boots of history is plenty to refuse replays of recent
// ones while keeping memory fixed against a flood of forged boot ids
// (which would need the key anyway).
const maxBoots = 8

// Guard accepts heartbeats from one partner: right key, known version,
// the partner's node name, and a sequence number newer than any seen
// before for the same boot id. A Guard lives as long as its daemon, so
// a daemon that has just started accepts recordings of boots it has
// not seen: whether a heartbeat is live is the state machine's
// question (heartbeat.Unproven). It is not safe for concurrent use.
type Guard struct {
	key     []byte
	self    string
	partner string // empty: any node but self
	last    map[uint64]uint64
	order   []uint64 // boot ids, oldest first
}

// NewGuard returns a Guard for a daemon called self whose partner is
// called partner; an empty partner accepts any name but self.
func NewGuard(key []byte, self, partner string) *Guard {
	return &Guard{key: key, self: self, partner: partner, last: make(map[uint64]uint64)}
}

// Accept decodes b. It returns the heartbeat and Accepted, or nil and
// the reason b was dropped. Only accepted datagrams move the replay
// window.
func (g *Guard) Accept(b []byte) (*Heartbeat, Drop) {
	h, err := Decode(b, g.key)
	switch {
	case errors.Is(err, ErrBadMAC):
		return nil, BadMAC
	case errors.Is(err, ErrVersion):
		return nil, BadVersion
	case err != nil:
		return nil, Malformed
	}
	if h.Node == g.self || (g.partner != "" && h.Node != g.partner) {
		return nil, WrongNode
	}
	if last, ok := g.last[h.BootID]; ok && h.Seq <= last {
		return nil, Replay
	}
	if _, ok := g.last[h.BootID]; !ok {
		g.order = append(g.order, h.BootID)
		if len(g.order) > maxBoots {
			delete(g.last, g.order[0])
			g.order = g.order[1:]
		}
	}
	g.last[h.BootID] = h.Seq
	return h, Accepted
}

// SetKey replaces the key, as on a reload that rotates the secret.
func (g *Guard) SetKey(key []byte) { g.key = key }
