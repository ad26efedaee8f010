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

// Version is the wire format version this package writes and accepts.
const Version = 1

// magic starts every datagram so that stray traffic on the port is
// recognised as malformed before any work is spent on it.
var magic = [4]byte{'R', 'F', 'V', 'W'}

const (
	tagLen = sha256.Size
	// fixedLen is magic, version, state, flags, reserved, boot, seq,
	// sent, ack boot, ack seq, node length, VIP count.
	fixedLen = 4 + 4 + 8 + 8 + 8 + 8 + 8 + 1 + 1
	// MaxNodeLen bounds node names; they are host-like names.
	MaxNodeLen = 64
	// MaxVIPs bounds the VIPs one heartbeat can list, which keeps a
	// datagram well under a 1280-byte IPv6 minimum MTU.
	MaxVIPs = 32
	// MaxLen is the largest datagram Encode produces.
	MaxLen = fixedLen + MaxNodeLen + MaxVIPs*18 + tagLen
)

// State is what the sender is doing, as it reports it.
type State uint8

// The states a daemon reports. They mirror the state machine's states.
const (
	StateStarting State = iota + 1 // cleaning up and waiting to hear from the partner
	StateRunning                   // serving: holding what it should
	StateFault                     // its own link is down; holds nothing
	StateStopping                  // shutting down; has released everything
)

var stateNames = [...]string{StateStarting: "starting", StateRunning: "running", StateFault: "fault", StateStopping: "stopping"}

func (s State) String() string {
	if int(s) < len(stateNames) && stateNames[s] != "" {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Flags are single-bit requests carried in a heartbeat.
type Flags uint8

// FlagReclaim says the sender wants its home VIPs back (preempt): a
// partner holding them should release them.
const FlagReclaim Flags = 1 << 0

// Heartbeat is one datagram's content.
type Heartbeat struct {
	Version uint8
	State   State
	Flags   Flags
	Node    string // sender's node name
	BootID  uint64 // random per daemon start
	Seq     uint64 // increases by one per heartbeat within a boot
	Sent    time.Time
	// AckBoot and AckSeq name the last heartbeat the sender heard from
	// its partner (zero when it has heard none).
	AckBoot uint64
	AckSeq  uint64
	// Holds lists the VIPs the sender has on its interface.
	Holds []netip.Prefix
}

// Encode appends the datagram for h, signed with key, to dst.
func Encode(dst []byte, h *Heartbeat, key []byte) ([]byte, error) {
	if len(h.Node) == 0 || len(h.Node) > MaxNodeLen {
		return nil, fmt.Errorf("encoding heartbeat: node name %q must have 1 to %d bytes", h.Node, MaxNodeLen)
	}
	if len(h.Holds) > MaxVIPs {
		return nil, fmt.Errorf("encoding heartbeat: %d VIPs is more than %d", len(h.Holds), MaxVIPs)
	}
	start := len(dst)
	dst = append(dst, magic[:]...)
	v := h.Version
	if v == 0 {
		v = Version
	}
	dst = append(dst, v, byte(h.State), byte(h.Flags), 0)
	dst = binary.BigEndian.AppendUint64(dst, h.BootID)
	dst = binary.BigEndian.AppendUint64(dst, h.Seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.Sent.UnixNano()))
	dst = binary.BigEndian.AppendUint64(dst, h.AckBoot)
	dst = binary.BigEndian.AppendUint64(dst, h.AckSeq)
	dst = append(dst, byte(len(h.Node)))
	dst = append(dst, byte(len(h.Holds)))
	dst = append(dst, h.Node...)
	for _, p := range h.Holds {
		a := p.Addr()
		if !p.IsValid() || a.Is4In6() {
			return nil, fmt.Errorf("encoding heartbeat: invalid VIP %v", p)
		}
		dst = append(dst, byte(a.BitLen()/8), byte(p.Bits()))
		dst = append(dst, a.AsSlice()...)
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
	if len(b) < fixedLen+tagLen || [4]byte(b[:4]) != magic {
		return nil, ErrMalformed
	}
	body, tag := b[:len(b)-tagLen], b[len(b)-tagLen:]
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), tag) {
		return nil, ErrBadMAC
	}
	if body[4] != Version {
		return nil, fmt.Errorf("%w %d", ErrVersion, body[4])
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
	if body[7] != 0 {
		return nil, fmt.Errorf("%w: reserved byte set", ErrMalformed)
	}
	if h.State < StateStarting || h.State > StateStopping {
		return nil, fmt.Errorf("%w: state %d", ErrMalformed, body[5])
	}
	nodeLen, nVIPs := int(body[48]), int(body[49])
	rest := body[fixedLen:]
	if nodeLen == 0 || nodeLen > MaxNodeLen || nVIPs > MaxVIPs || len(rest) < nodeLen {
		return nil, ErrMalformed
	}
	h.Node = string(rest[:nodeLen])
	rest = rest[nodeLen:]
	for range nVIPs {
		if len(rest) < 2 {
			return nil, ErrMalformed
		}
		alen, bits := int(rest[0]), int(rest[1])
		if (alen != 4 && alen != 16) || bits > alen*8 || len(rest) < 2+alen {
			return nil, ErrMalformed
		}
		a, _ := netip.AddrFromSlice(rest[2 : 2+alen])
		if a.Is4In6() {
			return nil, ErrMalformed // IPv4 travels as 4 bytes, one form per address
		}
		h.Holds = append(h.Holds, netip.PrefixFrom(a, bits))
		rest = rest[2+alen:]
	}
	if len(rest) != 0 {
		return nil, ErrMalformed
	}
	return h, nil
}
