package heartbeat

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Version is the wire format version this package writes. Version 2
// adds the echo (EchoBoot, EchoSeq); version 1 heartbeats are still
// read and, for a partner that speaks only version 1, written (see
// Encode), so that a pair can be upgraded one machine at a time.
const Version = 2

// MinVersion is the oldest wire format version this package reads.
const MinVersion = 1

// magic starts every datagram so that stray traffic on the port is
// recognised as malformed before any work is spent on it.
var magic = [4]byte{'R', 'F', 'V', 'W'}

const (
	tagLen = sha256.Size
	// fixedLen1 is version 1's fixed part: magic, version, state,
	// flags, gives count, boot, seq, sent, ack boot, ack seq, node
	// length, VIP count. The gives count was a reserved zero byte
	// before planned handover, so a heartbeat that gives nothing is
	// read by older daemons too.
	fixedLen1 = 4 + 4 + 8 + 8 + 8 + 8 + 8 + 1 + 1
	// fixedLen2 is version 2's: version 1's with echo boot and echo
	// seq after ack seq.
	fixedLen2 = fixedLen1 + 8 + 8
	// MaxNodeLen bounds node names; they are host-like names.
	MaxNodeLen = 64
	// MaxVIPs bounds the VIPs one heartbeat can list in Holds and in
	// Gives, which keeps a datagram of IPv4 VIPs well under a 1280-byte
	// IPv6 minimum MTU.
	MaxVIPs = 32
	// MaxLen is the largest datagram Encode produces.
	MaxLen = fixedLen2 + MaxNodeLen + 2*MaxVIPs*18 + tagLen
)

// State is what the sender is doing, as it reports it.
type State uint8

// The states a daemon reports. They mirror the state machine's states.
const (
	StateStarting State = iota + 1 // cleaning up and waiting to hear from the partner
	StateRunning                   // serving: holding what it should
	StateFault                     // its own link is down (holds nothing) or it reaches no witness (claims nothing)
	StateStopping                  // shutting down; has released everything
)

var stateNames = [...]string{StateStarting: "starting", StateRunning: "running", StateFault: "fault", StateStopping: "stopping"}

func (s State) String() string {
	if int(s) < len(stateNames) && stateNames[s] != "" {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// MarshalText writes the state's name, so that JSON (logs, status)
// says "running", not 2.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Flags are single-bit requests carried in a heartbeat.
type Flags uint8

// The flags.
const (
	// FlagReclaim says the sender wants its home VIPs back (preempt): a
	// partner holding them should release them.
	FlagReclaim Flags = 1 << 0
	// FlagTrackDown says the sender's tracked service is failing: it
	// gives its home VIPs away and takes none its partner gives.
	FlagTrackDown Flags = 1 << 1
)

// Heartbeat is one datagram's content.
type Heartbeat struct {
	Version uint8
	State   State
	Flags   Flags
	Node    string // sender's node name
	BootID  uint64 // random per daemon start
	Seq     uint64 // increases by one per heartbeat within a boot
	Sent    time.Time
	// AckBoot and AckSeq acknowledge a heartbeat of the partner's.
	// In version 2 they name the latest heartbeat of the partner boot
	// the sender has heard prove itself in its current run (zero when
	// none has): the sender then counts the partner's silence from
	// that boot's heartbeats. In version 1 they name the last heartbeat
	// the sender heard, whatever it proved.
	AckBoot uint64
	AckSeq  uint64
	// EchoBoot and EchoSeq (version 2; zero in version 1) answer a
	// heartbeat of the partner's that has proved nothing to the sender
	// yet: a partner that just (re)started, or a recording. A
	// heartbeat whose ack or echo names the receiver's current boot
	// and a sequence number it sent lately proves that its sender
	// heard the receiver's current run: no recording made before can.
	EchoBoot uint64
	EchoSeq  uint64
	// Holds lists the VIPs the sender has on its interface.
	Holds []netip.Prefix
	// Gives lists home VIPs of the sender that it asks its partner to
	// take (a planned handover, or a failing tracked service). The
	// partner claims and announces them while the sender still holds
	// them; the sender releases them once the partner lists them in
	// Holds.
	Gives []netip.Prefix
}

// Encode appends the datagram for h, signed with key, to dst, in
// h.Version's wire format (Version if zero). Version 1 has no echo: a
// version 1 heartbeat with an echo is refused.
func Encode(dst []byte, h *Heartbeat, key []byte) ([]byte, error) {
	v := h.Version
	if v == 0 {
		v = Version
	}
	if v < MinVersion || v > Version {
		return nil, fmt.Errorf("encoding heartbeat: version %d is not between %d and %d", v, MinVersion, Version)
	}
	if v == 1 && (h.EchoBoot != 0 || h.EchoSeq != 0) {
		return nil, fmt.Errorf("encoding heartbeat: version 1 carries no echo (boot %x seq %d)", h.EchoBoot, h.EchoSeq)
	}
	if len(h.Node) == 0 || len(h.Node) > MaxNodeLen {
		return nil, fmt.Errorf("encoding heartbeat: node name %q must have 1 to %d bytes", h.Node, MaxNodeLen)
	}
	if len(h.Holds) > MaxVIPs || len(h.Gives) > MaxVIPs {
		return nil, fmt.Errorf("encoding heartbeat: %d held or %d given VIPs is more than %d", len(h.Holds), len(h.Gives), MaxVIPs)
	}
	start := len(dst)
	dst = append(dst, magic[:]...)
	dst = append(dst, v, byte(h.State), byte(h.Flags), byte(len(h.Gives)))
	dst = binary.BigEndian.AppendUint64(dst, h.BootID)
	dst = binary.BigEndian.AppendUint64(dst, h.Seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.Sent.UnixNano()))
	dst = binary.BigEndian.AppendUint64(dst, h.AckBoot)
	dst = binary.BigEndian.AppendUint64(dst, h.AckSeq)
	if v >= 2 {
		dst = binary.BigEndian.AppendUint64(dst, h.EchoBoot)
		dst = binary.BigEndian.AppendUint64(dst, h.EchoSeq)
	}
	dst = append(dst, byte(len(h.Node)))
	dst = append(dst, byte(len(h.Holds)))
	dst = append(dst, h.Node...)
	for _, list := range [][]netip.Prefix{h.Holds, h.Gives} {
		for _, p := range list {
			a := p.Addr()
			if !p.IsValid() || a.Is4In6() {
				return nil, fmt.Errorf("encoding heartbeat: invalid VIP %v", p)
			}
			dst = append(dst, byte(a.BitLen()/8), byte(p.Bits()))
			dst = append(dst, a.AsSlice()...)
		}
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(dst[start:])
	return mac.Sum(dst), nil
}

// Errors from Decode; a Guard maps them to Drop reasons.
var (
	ErrMalformed = errors.New("malformed heartbeat")
	ErrBadMAC    = errors.New("heartbeat MAC does not match")
	ErrVersion   = errors.New("unknown heartbeat version")
)

// Decode checks the tag of b with key and parses it. It never keeps a
// reference to b.
func Decode(b []byte, key []byte) (*Heartbeat, error) {
	if len(b) < fixedLen1+tagLen || [4]byte(b[:4]) != magic {
		return nil, ErrMalformed
	}
	body, tag := b[:len(b)-tagLen], b[len(b)-tagLen:]
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), tag) {
		return nil, ErrBadMAC
	}
	if body[4] < MinVersion || body[4] > Version {
		return nil, fmt.Errorf("%w %d", ErrVersion, body[4])
	}
	fixedLen := fixedLen1
	if body[4] >= 2 {
		fixedLen = fixedLen2
	}
	if len(body) < fixedLen {
		return nil, ErrMalformed
	}
	h := &Heartbeat{
		Version: body[4],
		State:   State(body[5]),
		Flags:   Flags(body[6]),
		BootID:  binary.BigEndian.Uint64(body[8:]),
		Seq:     binary.BigEndian.Uint64(body[16:]),
		Sent:    time.Unix(0, int64(binary.BigEndian.Uint64(body[24:]))),
		AckBoot: binary.BigEndian.Uint64(body[32:]),
		AckSeq:  binary.BigEndian.Uint64(body[40:]),
	}
	if h.State < StateStarting || h.State > StateStopping {
		return nil, fmt.Errorf("%w: state %d", ErrMalformed, body[5])
	}
	if fixedLen == fixedLen2 {
		h.EchoBoot = binary.BigEndian.Uint64(body[48:])
		h.EchoSeq = binary.BigEndian.Uint64(body[56:])
	}
	nodeLen, nVIPs, nGives := int(body[fixedLen-2]), int(body[fixedLen-1]), int(body[7])
	rest := body[fixedLen:]
	if nodeLen == 0 || nodeLen > MaxNodeLen || nVIPs > MaxVIPs || nGives > MaxVIPs || len(rest) < nodeLen {
		return nil, ErrMalformed
	}
	h.Node = string(rest[:nodeLen])
	rest = rest[nodeLen:]
	var err error
	if h.Holds, rest, err = decodeVIPs(rest, nVIPs); err != nil {
		return nil, err
	}
	if h.Gives, rest, err = decodeVIPs(rest, nGives); err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, ErrMalformed
	}
	return h, nil
}

// decodeVIPs reads n VIPs from the front of b and returns the rest.
func decodeVIPs(b []byte, n int) ([]netip.Prefix, []byte, error) {
	var out []netip.Prefix
	for range n {
		if len(b) < 2 {
			return nil, nil, ErrMalformed
		}
		alen, bits := int(b[0]), int(b[1])
		if (alen != 4 && alen != 16) || bits > alen*8 || len(b) < 2+alen {
			return nil, nil, ErrMalformed
		}
		a, _ := netip.AddrFromSlice(b[2 : 2+alen])
		if a.Is4In6() {
			return nil, nil, ErrMalformed // IPv4 travels as 4 bytes, one form per address
		}
		out = append(out, netip.PrefixFrom(a, bits))
		b = b[2+alen:]
	}
	return out, b, nil
}
