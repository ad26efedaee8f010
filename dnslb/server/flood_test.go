package server

import (
	"bytes"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// rss is the process's resident set size in bytes.
func rss(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc: ", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// junk makes hostile datagrams: truncated headers and names, label
// lengths past the end, compression pointers (and loops), responses,
// oversized packets, counts that lie, and random bytes.
func junk(r *rand.Rand, valid []byte) []byte {
	switch r.IntN(9) {
	case 0:
		return valid[:r.IntN(len(valid))] // truncated anywhere
	case 1:
		b := make([]byte, r.IntN(64))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	case 2:
		return bytes.Repeat([]byte{0xff}, 5000+r.IntN(3000)) // oversized
	case 3:
		b := append([]byte(nil), valid...)
		b[2] |= 0x80 // a response
		return b
	case 4:
		b := append([]byte(nil), valid[:12]...)
		return append(b, 0xC0, 12, 0, 1, 0, 1) // pointer to itself
	case 5:
		b := append([]byte(nil), valid...)
		b[12] = 63 // label running past the end
		return b
	case 6:
		b := append([]byte(nil), valid...)
		b[5] = 200 // QDCOUNT lies
		return b
	case 7:
		b := append([]byte(nil), valid...)
		b[11] = 9 // ARCOUNT lies
		return b
	default:
		b := append([]byte(nil), valid...)
		b[r.IntN(len(b))] ^= byte(1 + r.IntN(255)) // one flipped byte
		return b
	}
}

func TestMalformedFlood(t *testing.T) {
	n := 1_000_000
	if testing.Short() {
		n = 50_000
	}
	ts := startTargets(t, 1)
	s := startServer(t, ts, "")
	m := new(dns.Msg)
	m.SetQuestion("www.example.org.", dns.TypeA)
	m.SetEdns0(1232, false)
	valid, _ := m.Pack()

	runtime.GC()
	before := rss(t)
	c, err := net.Dial("udp", s.udp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Answers to the junk that happens to be valid are not read; a
	// reader drains them so the client socket does not fill up.
	go func() {
		buf := make([]byte, 65536)
		for {
			if _, err := c.Read(buf); err != nil && !isTimeout(err) {
				return
			}
		}
	}()
	r := rand.New(rand.NewPCG(7, 11))
	pool := make([][]byte, 4096)
	for i := range pool {
		pool[i] = junk(r, valid)
	}
	deadline := time.Now().Add(90 * time.Second)
	sent := 0
	for ; sent < n && time.Now().Before(deadline); sent++ {
		c.Write(pool[sent%len(pool)])
		if sent%2000 == 1999 {
			time.Sleep(time.Millisecond) // let the server keep up on 2 cores
		}
	}
	time.Sleep(200 * time.Millisecond)
	runtime.GC()
	after := rss(t)
	t.Logf("sent %d hostile datagrams; RSS %d MiB -> %d MiB", sent, before>>20, after>>20)
	if grown := after - before; grown > 48<<20 {
		t.Errorf("RSS grew by %d MiB over the flood", grown>>20)
	}
	// Still answering correctly.
	for _, net := range []string{"udp", "tcp"} {
		resp := ask(t, net, s.udp, "www.example.org.", dns.TypeA)
		if len(resp.Answer) != 1 || !resp.Authoritative {
			t.Errorf("%s answer after the flood: %v", net, resp)
		}
	}
	metrics := scrape(t, s.admin)
	if metricValue(metrics, `dnslb_dropped_total{reason="malformed"}`) < float64(sent)/10 {
		t.Errorf("malformed packets not counted:\n%s", grepLines(metrics, "dnslb_dropped_total"))
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
