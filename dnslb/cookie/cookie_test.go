package cookie

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

// The reference vector from the SipHash paper (appendix A): key
// 00..0f, message 00..0e.
func TestSipHashVector(t *testing.T) {
	var key [16]byte
	for i := range key {
		key[i] = byte(i)
	}
	msg := make([]byte, 15)
	for i := range msg {
		msg[i] = byte(i)
	}
	got := sipHash24(binary.LittleEndian.Uint64(key[:8]), binary.LittleEndian.Uint64(key[8:]), msg)
	if want := uint64(0xa129ca6149be45e5); got != want {
		t.Errorf("SipHash-2-4 = %#x, want %#x", got, want)
	}
}

func TestIssueAndCheck(t *testing.T) {
	j, _ := New(nil)
	now := time.Unix(1_800_000_000, 0)
	j.now = func() time.Time { return now }
	client := netip.MustParseAddr("198.51.100.7")
	cc := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	data := j.Issue(cc, client)
	if len(data) != 24 || data[8] != 1 {
		t.Fatalf("issued %x", data)
	}
	r, err := j.Check(data, client)
	if err != nil || !r.Valid || !r.Fresh || r.Client != cc {
		t.Errorf("own cookie: %+v %v", r, err)
	}
	// From another address, or altered: not valid.
	if r, _ := j.Check(data, netip.MustParseAddr("198.51.100.8")); r.Valid {
		t.Error("cookie valid from another address")
	}
	bad := append([]byte(nil), data...)
	bad[20] ^= 1
	if r, _ := j.Check(bad, client); r.Valid {
		t.Error("altered cookie valid")
	}
	// Ageing: stale after 30 minutes (re-issue), invalid after an hour.
	now = now.Add(40 * time.Minute)
	if r, _ := j.Check(data, client); !r.Valid || r.Fresh {
		t.Errorf("40 minutes old: %+v", r)
	}
	now = now.Add(30 * time.Minute)
	if r, _ := j.Check(data, client); r.Valid {
		t.Errorf("70 minutes old still valid")
	}
	// Another jar (another secret) does not accept it.
	j2, _ := New(nil)
	if r, _ := j2.Check(data, client); r.Valid {
		t.Error("valid under another secret")
	}
}

func TestCheckLengths(t *testing.T) {
	j, _ := New(nil)
	client := netip.MustParseAddr("2001:db8::1")
	for n := 0; n <= 48; n++ {
		_, err := j.Check(make([]byte, n), client)
		ok := n == 8 || (n >= 16 && n <= 40)
		if ok != (err == nil) {
			t.Errorf("length %d: err %v", n, err)
		}
	}
}
