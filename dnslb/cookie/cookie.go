// Package cookie implements DNS server cookies (RFC 7873) in the
// interoperable form of RFC 9018: version 1, a timestamp, and a
// SipHash-2-4 of the client cookie, the timestamp and the client's
// address under a server secret. A client that returns a valid server
// cookie has proved it receives answers at its address: it is not
// spoofed, so response rate limiting can leave it alone.
package cookie

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"math/bits"
	"net/netip"
	"time"
)

// ErrMalformed is returned for a COOKIE option of an impossible length
// (RFC 7873 5.2.2: the server answers FORMERR).
var ErrMalformed = errors.New("malformed DNS cookie option")

// Lengths (RFC 7873 4): an 8-byte client cookie, optionally followed by
// an 8 to 32 byte server cookie. dnslb's server cookies are 16 bytes.
const (
	ClientLen = 8
	serverLen = 16
)

// Validity windows from RFC 9018 4.3: a cookie is good for an hour, is
// refreshed after half of that, and may be up to 5 minutes in the future
// (clock skew between the servers sharing a secret).
const (
	lifetime = time.Hour
	refresh  = 30 * time.Minute
	skew     = 5 * time.Minute
)

// Jar issues and checks server cookies. It is safe for concurrent use.
type Jar struct {
	k0, k1 uint64
	now    func() time.Time
}

// New returns a jar with the given 16-byte secret, or a random one if
// secret is nil. Servers behind one name should share a secret.
func New(secret []byte) (*Jar, error) {
	var s [16]byte
	if secret == nil {
		if _, err := rand.Read(s[:]); err != nil {
			return nil, err
		}
	} else if len(secret) != 16 {
		return nil, errors.New("cookie secret must be 16 bytes")
	} else {
		copy(s[:], secret)
	}
	return &Jar{k0: binary.LittleEndian.Uint64(s[:8]), k1: binary.LittleEndian.Uint64(s[8:]), now: time.Now}, nil
}

// Result is what Check found in a query's COOKIE option.
type Result struct {
	Client [ClientLen]byte
	// Valid: the server cookie is one this jar issued to this client
	// address, not expired.
	Valid bool
	// Fresh: Valid, and young enough to be echoed rather than replaced.
	Fresh bool
}

// Check parses a COOKIE option's data from a query from client.
func (j *Jar) Check(data []byte, client netip.Addr) (Result, error) {
	var r Result
	n := len(data)
	if n != ClientLen && (n < ClientLen+8 || n > ClientLen+32) {
		return r, ErrMalformed
	}
	copy(r.Client[:], data)
	if n != ClientLen+serverLen || data[8] != 1 {
		return r, nil // no server cookie, or not one of ours
	}
	ts := binary.BigEndian.Uint32(data[12:16])
	want := j.hash(r.Client, data[8:16], client)
	if binary.BigEndian.Uint64(data[16:24]) != want {
		return r, nil
	}
	now := uint32(j.now().Unix())
	age := int32(now - ts) // serial-number arithmetic (RFC 1982)
	r.Valid = age <= int32(lifetime.Seconds()) && age >= -int32(skew.Seconds())
	r.Fresh = r.Valid && age < int32(refresh.Seconds())
	return r, nil
}

// Issue returns the COOKIE option data for an answer: the client cookie
// and a new server cookie for client.
func (j *Jar) Issue(clientCookie [ClientLen]byte, client netip.Addr) []byte {
	out := make([]byte, ClientLen+serverLen)
	copy(out, clientCookie[:])
	out[8] = 1 // version; 3 reserved bytes stay zero
	binary.BigEndian.PutUint32(out[12:16], uint32(j.now().Unix()))
	binary.BigEndian.PutUint64(out[16:24], j.hash(clientCookie, out[8:16], client))
	return out
}

// hash is SipHash-2-4 over client cookie | version | reserved |
// timestamp | client IP (RFC 9018 4.4).
func (j *Jar) hash(clientCookie [ClientLen]byte, verTS []byte, client netip.Addr) uint64 {
	var msg [8 + 8 + 16]byte
	copy(msg[:], clientCookie[:])
	copy(msg[8:], verTS)
	n := 16
	if client.Is4() || client.Is4In6() {
		a := client.Unmap().As4()
		n += copy(msg[16:], a[:])
	} else {
		a := client.As16()
		n += copy(msg[16:], a[:])
	}
	return sipHash24(j.k0, j.k1, msg[:n])
}

// sipHash24 is SipHash-2-4 (Aumasson and Bernstein) with the 128-bit
// key k0|k1 (little-endian halves).
func sipHash24(k0, k1 uint64, m []byte) uint64 {
	v0 := k0 ^ 0x736f6d6570736575
	v1 := k1 ^ 0x646f72616e646f6d
	v2 := k0 ^ 0x6c7967656e657261
	v3 := k1 ^ 0x7465646279746573
	round := func() {
		v0 += v1
		v1 = bits.RotateLeft64(v1, 13)
		v1 ^= v0
		v0 = bits.RotateLeft64(v0, 32)
		v2 += v3
		v3 = bits.RotateLeft64(v3, 16)
		v3 ^= v2
		v0 += v3
		v3 = bits.RotateLeft64(v3, 21)
		v3 ^= v0
		v2 += v1
		v1 = bits.RotateLeft64(v1, 17)
		v1 ^= v2
		v2 = bits.RotateLeft64(v2, 32)
	}
	n := len(m)
	for len(m) >= 8 {
		w := binary.LittleEndian.Uint64(m)
		v3 ^= w
		round()
		round()
		v0 ^= w
		m = m[8:]
	}
	var last [8]byte
	copy(last[:], m)
	last[7] = byte(n)
	w := binary.LittleEndian.Uint64(last[:])
	v3 ^= w
	round()
	round()
	v0 ^= w
	v2 ^= 0xff
	round()
	round()
	round()
	round()
	return v0 ^ v1 ^ v2 ^ v3
}
