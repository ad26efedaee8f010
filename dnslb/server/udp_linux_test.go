package server

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// exchanger asks one question after another over one UDP socket, so
// every query reaches the same server socket (SO_REUSEPORT hashes the
// client's address and port).
type exchanger struct {
	t   *testing.T
	c   *net.UDPConn
	buf []byte
	id  uint16
}

func newExchanger(t *testing.T, server string) *exchanger {
	t.Helper()
	ra, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", nil, ra)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &exchanger{t: t, c: c, buf: make([]byte, 2048)}
}

// ask sends one query for mail.example.org/A and reports whether its
// answer, with the right ID and the one address, came within a second.
func (e *exchanger) ask() bool {
	e.id++
	m := new(dns.Msg)
	m.SetQuestion("mail.example.org.", dns.TypeA)
	m.Id = e.id
	b, _ := m.Pack()
	if _, err := e.c.Write(b); err != nil {
		e.t.Fatal(err)
	}
	e.c.SetReadDeadline(time.Now().Add(time.Second))
	for {
		n, err := e.c.Read(e.buf)
		if err != nil {
			return false
		}
		r := new(dns.Msg)
		if r.Unpack(e.buf[:n]) == nil && r.Id == e.id {
			return len(r.Answer) == 1
		}
	}
}

// askFor asks back to back for d (at most max queries) and returns how
// many were asked and how many were answered.
func (e *exchanger) askFor(d time.Duration, max int) (asked, ok int) {
	for end := time.Now().Add(d); asked < max && time.Now().Before(end); asked++ {
		if e.ask() {
			ok++
		}
	}
	return asked, ok
}

// askQuietly asks 10 questions 20 ms apart, 50 a second, below
// pollBelow, and fails the test if one is not answered.
func (e *exchanger) askQuietly(what string) {
	e.t.Helper()
	for i := range 10 {
		if !e.ask() {
			e.t.Fatalf("%s: query %d unanswered", what, i)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUDPReaderMovesBetweenWaits drives one socket's reader from quiet
// (the netpoller) to busy (blocking in recvmmsg) and back, and checks
// that every query is answered on the way and that the moves show in
// dnslb_udp_wait_switches_total.
func TestUDPReaderMovesBetweenWaits(t *testing.T) {
	ts := startTargets(t, 1)
	s := startServer(t, ts, "")
	e := newExchanger(t, s.udp)
	switches := func() float64 { return metricValue(scrape(t, s.admin), "dnslb_udp_wait_switches_total") }

	// Quiet: a query every 20 ms is 50 a second, below pollBelow.
	e.askQuietly("quiet")
	if n := switches(); n != 0 {
		t.Fatalf("switches after quiet queries = %v, want 0 (the reader starts in the netpoller)", n)
	}

	// Busy: back to back on loopback is thousands a second, far above
	// blockAbove; a few windows' worth moves the reader to recvmmsg.
	asked, ok := e.askFor(5*udpWindow, 50000)
	if ok != asked {
		t.Fatalf("busy: %d of %d queries answered", ok, asked)
	}
	if rate := float64(asked) / (5 * udpWindow).Seconds(); rate < 2*blockAbove {
		t.Fatalf("only %.0f queries a second back to back on loopback; the test needs %d", rate, 2*blockAbove)
	}
	if n := switches(); n != 1 {
		t.Fatalf("switches after the busy stretch = %v, want 1 (to blocking)", n)
	}

	// Idle for longer than a blocking read's timeout: back to the
	// netpoller without a query to notice it by.
	waitFor(t, "the reader's return to the netpoller", 2*time.Second, func() bool { return switches() == 2 })
	e.askQuietly("after the move back")
	if n := switches(); n != 2 {
		t.Fatalf("switches after quiet queries again = %v, want 2", n)
	}
}

// TestUDPStopWhileBlocking stops the server while a busy reader blocks
// in recvmmsg: the stop must wake it and release the socket.
func TestUDPStopWhileBlocking(t *testing.T) {
	ts := startTargets(t, 1)
	path := filepath.Join(t.TempDir(), "dnslb.yaml")
	writeConfig(t, path, ts, "")
	s, stop, err := startOnce(t, path)
	if err != nil {
		t.Fatal(err)
	}
	e := newExchanger(t, s.udp)
	if asked, ok := e.askFor(3*udpWindow, 50000); ok != asked {
		t.Fatalf("%d of %d queries answered", ok, asked)
	}
	if n := metricValue(scrape(t, s.admin), "dnslb_udp_wait_switches_total"); n != 1 {
		t.Fatalf("switches after the busy stretch = %v, want 1 (to blocking)", n)
	}
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not stop within 5s with a reader blocked in recvmmsg")
	}
	c, err := net.ListenPacket("udp", s.udp)
	if err != nil {
		t.Fatalf("port still held after stop: %v", err)
	}
	c.Close()
}
