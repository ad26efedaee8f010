package rrl

import (
	"net/netip"
	"testing"
	"time"
)

func validated(t *testing.T, c Config) Config {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLimiter(t *testing.T) {
	l := New(validated(t, Config{ResponsesPerSecond: 10}))
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	victim := netip.MustParseAddr("198.51.100.7")
	neighbour := netip.MustParseAddr("198.51.100.200") // same /24
	other := netip.MustParseAddr("203.0.113.9")

	var sent, dropped, truncated int
	for i := range 30 {
		c := victim
		if i%2 == 1 {
			c = neighbour
		}
		switch l.Check(c) {
		case Send:
			sent++
		case Drop:
			dropped++
		case Truncate:
			truncated++
		}
	}
	// A burst of one second's worth, then every other limited answer
	// slips through truncated.
	if sent != 10 || truncated != 10 || dropped != 10 {
		t.Errorf("sent %d, truncated %d, dropped %d; want 10 each", sent, truncated, dropped)
	}
	if got := l.Check(other); got != Send {
		t.Errorf("another prefix was limited: %v", got)
	}
	// Tokens come back with time.
	now = now.Add(500 * time.Millisecond)
	sent = 0
	for range 10 {
		if l.Check(victim) == Send {
			sent++
		}
	}
	if sent != 5 {
		t.Errorf("after 0.5s sent %d, want 5", sent)
	}
}

func TestLimiterIPv6Prefix(t *testing.T) {
	l := New(validated(t, Config{ResponsesPerSecond: 1}))
	l.now = func() time.Time { return time.Unix(1000, 0) }
	a := netip.MustParseAddr("2001:db8:0:1::1")
	b := netip.MustParseAddr("2001:db8:0:2::1")   // same /56
	c := netip.MustParseAddr("2001:db8:0:100::1") // another /56
	if l.Check(a) != Send || l.Check(b) == Send || l.Check(c) != Send {
		t.Error("IPv6 clients not grouped by /56")
	}
}

func TestOff(t *testing.T) {
	var l *Limiter = New(validated(t, Config{}))
	for range 100 {
		if l.Check(netip.MustParseAddr("198.51.100.1")) != Send {
			t.Fatal("limited with responses_per_second 0")
		}
	}
}

func TestSlipZeroDropsAll(t *testing.T) {
	zero := 0
	l := New(validated(t, Config{ResponsesPerSecond: 1, Slip: &zero}))
	l.now = func() time.Time { return time.Unix(1000, 0) }
	a := netip.MustParseAddr("198.51.100.1")
	l.Check(a)
	for range 10 {
		if v := l.Check(a); v != Drop {
			t.Fatalf("slip 0 gave %v", v)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []Config{{ResponsesPerSecond: -1}, {IPv4PrefixLength: 33}, {IPv6PrefixLength: 129}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v validated", c)
		}
	}
}
