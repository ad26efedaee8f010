package server

import (
	"context"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/ringfront/ringfront/dnslb/config"
	"github.com/ringfront/ringfront/internal/daemon"
	"github.com/ringfront/ringfront/internal/health"
)

// startTuned starts a server on the test config after tune has changed it.
func startTuned(t *testing.T, tune func(*config.Config)) *Server {
	t.Helper()
	ts := startTargets(t, 1)
	path := filepath.Join(t.TempDir(), "dnslb.yaml")
	writeConfig(t, path, ts, "")
	cfg, err := loadFile(path)()
	if err != nil {
		t.Fatal(err)
	}
	tune(cfg)
	srv := mustOpen(t, cfg, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); srv.Wait() })
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return srv
}

func TestServeTCPLimits(t *testing.T) {
	srv := startTuned(t, func(cfg *config.Config) {
		cfg.TCP.MaxConnections = 2
		cfg.TCP.IdleTimeout = 300 * time.Millisecond
	})
	addr := srv.TCPAddrs()[0]
	query := func(c *dns.Conn, timeout time.Duration) error {
		m := new(dns.Msg)
		m.SetQuestion("mail.example.org.", dns.TypeA)
		c.SetDeadline(time.Now().Add(timeout))
		if err := c.WriteMsg(m); err != nil {
			return err
		}
		_, err := c.ReadMsg()
		return err
	}
	var conns []*dns.Conn
	for range 3 {
		c, err := dns.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	for i := range 2 {
		if err := query(conns[i], time.Second); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	// The third waits while two are open...
	if err := query(conns[2], 150*time.Millisecond); err == nil {
		t.Error("a third connection was served with max_connections 2")
	}
	// ...and idle connections are closed after idle_timeout, which
	// makes room for it.
	conns[0].SetReadDeadline(time.Now().Add(2 * time.Second))
	start := time.Now()
	if _, err := conns[0].ReadMsg(); err == nil {
		t.Error("idle connection got a message instead of being closed")
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("idle connection closed after %v, want about 300ms", took)
	}
	conns[2].SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := conns[2].ReadMsg(); err != nil {
		t.Errorf("third connection not answered once others closed: %v", err)
	}
}

func TestReadyOnlyAfterFirstHealthRound(t *testing.T) {
	// A target whose first probe takes a while: READY=1 must wait for it,
	// and nothing may be listening before.
	path := filepath.Join(t.TempDir(), "notify.sock")
	nc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	t.Setenv("NOTIFY_SOCKET", path)

	ts := startTargets(t, 1)
	cfgPath := filepath.Join(t.TempDir(), "dnslb.yaml")
	writeConfig(t, cfgPath, ts, "")
	cfg, err := loadFile(cfgPath)()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Zones[0].Services[0].Check.Interval = 10 * time.Second
	cfg.Zones[0].Services[0].Check.Timeout = 5 * time.Second
	release := make(chan struct{})
	slow := proberFunc(func(ctx context.Context, tg health.Target) health.Result {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return health.Result{OK: true, At: time.Now()}
	})
	srv := mustOpen(t, cfg, Options{Prober: slow})
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan error, 1)
	go func() { started <- srv.Start(ctx) }()
	defer func() { cancel(); srv.Wait() }()

	nc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	buf := make([]byte, 4096)
	if n, err := nc.Read(buf); err == nil {
		t.Fatalf("notified %q before the first health round", buf[:n])
	}
	close(release)
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := nc.Read(buf)
	if err != nil || !strings.Contains(string(buf[:n]), "READY=1") {
		t.Fatalf("READY=1 not sent after the first round: %q %v", buf[:n], err)
	}
	r := ask(t, "udp", srv.UDPAddrs()[0], "www.example.org.", dns.TypeA)
	if len(r.Answer) != 1 {
		t.Errorf("first answer = %v", r.Answer)
	}
	var st []TargetStatus
	daemon.AdminRequest(t.Context(), "GET", srv.AdminAddr(), nil, "/v1/targets", &st)
	if len(st) != 1 || st[0].State != "up" {
		t.Errorf("targets = %+v", st)
	}
}

type proberFunc func(context.Context, health.Target) health.Result

func (f proberFunc) Probe(ctx context.Context, t health.Target) health.Result { return f(ctx, t) }

// FuzzAnswerUDP feeds arbitrary datagrams to the UDP handler: it must
// never panic, and whatever it sends must be a well-formed DNS response
// to a query, never a reply to a response.
func FuzzAnswerUDP(f *testing.F) {
	for _, q := range []struct {
		name string
		t    uint16
	}{{"www.example.org.", dns.TypeA}, {"nope.example.org.", dns.TypeAAAA}, {"example.org.", dns.TypeSOA}, {"x.", dns.TypeA}} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.t)
		m.SetEdns0(1232, true)
		w, _ := m.Pack()
		f.Add(w)
	}
	f.Add([]byte{0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	dir := f.TempDir()
	path := filepath.Join(dir, "dnslb.yaml")
	writeFuzzConfig(f, path)
	cfg, err := loadFile(path)()
	if err != nil {
		f.Fatal(err)
	}
	srv := mustOpen(f, cfg, Options{})
	srv.rebuild()
	st := srv.metrics.newStats()
	out := make([]byte, 0, 1232)
	f.Fuzz(func(t *testing.T, q []byte) {
		resp := srv.answerUDP(q, out, netip.MustParseAddr("198.51.100.9"), st)
		if resp == nil {
			return
		}
		if len(q) >= 3 && q[2]&0x80 != 0 {
			t.Fatalf("answered a response")
		}
		m := new(dns.Msg)
		if err := m.Unpack(resp); err != nil {
			t.Fatalf("sent a malformed answer: %v", err)
		}
		if !m.Response || len(resp) > 1232 {
			t.Fatalf("bad answer: response=%v len=%d", m.Response, len(resp))
		}
	})
}

func TestServeTCPPerClientAndLifetime(t *testing.T) {
	srv := startTuned(t, func(cfg *config.Config) {
		cfg.TCP.MaxConnections = 10
		cfg.TCP.MaxConnectionsPerClient = 2
		cfg.TCP.MaxLifetime = 600 * time.Millisecond
		cfg.TCP.IdleTimeout = 5 * time.Second
	})
	addr := srv.TCPAddrs()[0]
	dial := func(src string) *dns.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return &dns.Conn{Conn: c}
	}
	query := func(c *dns.Conn) error {
		m := new(dns.Msg)
		m.SetQuestion("mail.example.org.", dns.TypeA)
		c.SetDeadline(time.Now().Add(time.Second))
		if err := c.WriteMsg(m); err != nil {
			return err
		}
		_, err := c.ReadMsg()
		return err
	}
	a1, a2, a3 := dial("127.0.0.61"), dial("127.0.0.61"), dial("127.0.0.61")
	b1 := dial("127.0.0.62")
	if err := query(a1); err != nil {
		t.Fatal(err)
	}
	if err := query(a2); err != nil {
		t.Fatal(err)
	}
	if err := query(a3); err == nil {
		t.Error("a third connection from one client was served with max_connections_per_client 2")
	}
	if err := query(b1); err != nil {
		t.Errorf("another client was refused: %v", err)
	}
	// A busy connection still ends at max_lifetime.
	start := time.Now()
	for time.Since(start) < 3*time.Second {
		if err := query(a1); err != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Errorf("busy connection lived %v past the test start, want about 600ms", took)
	}
	// Its slot is free again.
	if err := query(dial("127.0.0.61")); err != nil {
		t.Errorf("slot not released after the connection closed: %v", err)
	}
}
