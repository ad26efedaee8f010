// Package rrl is response rate limiting per client prefix, the defence
// NSD, Knot and BIND use against reflection attacks: a spoofed flood
// "from" a victim's network gets at most a trickle of answers, and every
// slip-th limited answer is sent truncated so a real client behind that
// prefix retries over TCP, which cannot be spoofed.
package rrl

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"time"

	"github.com/ringfront/ringfront/internal/config"
)

// Verdict is what to do with one response.
type Verdict uint8

// Verdicts.
const (
	Send     Verdict = iota // within the rate
	Drop                    // over the rate: send nothing
	Truncate                // over the rate: send an empty TC=1 answer
)

// Config sets the limits. ResponsesPerSecond 0 turns limiting off.
type Config struct {
	ResponsesPerSecond int `mapstructure:"responses_per_second"`
	// Slip: every Slip-th limited response is truncated instead of
	// dropped; 0 drops all, 1 truncates all. Unset means 2, as in NSD
	// and BIND.
	Slip *int `mapstructure:"slip"`
	// IPv4PrefixLength and IPv6PrefixLength group clients: /24 and /56
	// as in NSD and BIND.
	IPv4PrefixLength int `mapstructure:"ipv4_prefix_length"`
	IPv6PrefixLength int `mapstructure:"ipv6_prefix_length"`
}

// Validate fills defaults and checks the values; errors name the key
// relative to the section.
func (c *Config) Validate() error {
	if c.ResponsesPerSecond < 0 {
		return config.Errorf("responses_per_second", c.ResponsesPerSecond, "must not be negative")
	}
	if c.Slip == nil {
		two := 2
		c.Slip = &two
	}
	if *c.Slip < 0 || *c.Slip > 10 {
		return config.Errorf("slip", *c.Slip, "must be between 0 and 10")
	}
	if c.IPv4PrefixLength == 0 {
		c.IPv4PrefixLength = 24
	}
	if c.IPv6PrefixLength == 0 {
		c.IPv6PrefixLength = 56
	}
	if c.IPv4PrefixLength < 1 || c.IPv4PrefixLength > 32 {
		return config.Errorf("ipv4_prefix_length", c.IPv4PrefixLength, "must be between 1 and 32")
	}
	if c.IPv6PrefixLength < 1 || c.IPv6PrefixLength > 128 {
		return config.Errorf("ipv6_prefix_length", c.IPv6PrefixLength, "must be between 1 and 128")
	}
	return nil
}

// tableSize is the number of buckets: a fixed table keeps memory bounded
// however many prefixes a flood uses; colliding prefixes evict each other.
const tableSize = 1 << 16

// stripes spread the lock over the table.
const stripes = 64

type bucket struct {
	key     [17]byte // family byte + masked address
	tokens  float64
	last    int64 // unix nanoseconds of the last refill
	limited uint32
}

// Limiter is safe for concurrent use.
type Limiter struct {
	cfg   Config
	seed  maphash.Seed
	locks [stripes]sync.Mutex
	table []bucket
	now   func() time.Time
}

// New returns a limiter, or nil when cfg turns limiting off; a nil
// Limiter sends everything. cfg must have been validated.
func New(cfg Config) *Limiter {
	if cfg.ResponsesPerSecond == 0 {
		return nil
	}
	return &Limiter{cfg: cfg, seed: maphash.MakeSeed(), table: make([]bucket, tableSize), now: time.Now}
}

// Check accounts one response to client and says what to do with it.
func (l *Limiter) Check(client netip.Addr) Verdict {
	if l == nil {
		return Send
	}
	var key [17]byte
	if client.Is4() || client.Is4In6() {
		p, _ := client.Unmap().Prefix(l.cfg.IPv4PrefixLength)
		a := p.Addr().As4()
		key[0] = 4
		copy(key[1:], a[:])
	} else {
		p, _ := client.Prefix(l.cfg.IPv6PrefixLength)
		a := p.Addr().As16()
		key[0] = 6
		copy(key[1:], a[:])
	}
	h := maphash.Bytes(l.seed, key[:])
	i := h % tableSize
	mu := &l.locks[i%stripes]
	now := l.now().UnixNano()
	rate := float64(l.cfg.ResponsesPerSecond)

	mu.Lock()
	defer mu.Unlock()
	b := &l.table[i]
	if b.key != key {
		*b = bucket{key: key, tokens: rate, last: now}
	}
	// Refill at the rate, up to one second's worth of burst.
	b.tokens = min(rate, b.tokens+float64(now-b.last)/1e9*rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return Send
	}
	b.limited++
	if slip := *l.cfg.Slip; slip > 0 && b.limited%uint32(slip) == 0 {
		return Truncate
	}
	return Drop
}
