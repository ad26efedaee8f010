package server

import (
	"context"
	"net"
	"testing"

	"github.com/miekg/dns"
)

// TestServeUDPStopReleasesSockets checks that stopping the server wakes
// every UDP reader and closes every socket, so the port can be bound
// again by a socket without SO_REUSEPORT.
func TestServeUDPStopReleasesSockets(t *testing.T) {
	ts := startTargets(t, 1)
	path := t.TempDir() + "/dnslb.yaml"
	writeConfig(t, path, ts, "")
	cfg, err := loadFile(path)()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Sockets = 3
	srv := mustOpen(t, cfg, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	addr := srv.UDPAddrs()[0]
	// Every socket answers (the kernel spreads clients over them).
	for i := range 12 {
		c, err := net.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		m := new(dns.Msg)
		m.SetQuestion("mail.example.org.", dns.TypeA)
		co := &dns.Conn{Conn: c}
		if err := co.WriteMsg(m); err != nil {
			t.Fatal(err)
		}
		r, err := co.ReadMsg()
		c.Close()
		if err != nil || len(r.Answer) != 1 {
			t.Fatalf("query %d: %v %v", i, r, err)
		}
	}
	cancel()
	if err := srv.Wait(); err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("port still held after stop: %v", err)
	}
	c.Close()
}
