package member

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ringfront/ringfront/internal/health"
	"github.com/ringfront/ringfront/vipwatch/heartbeat"
)

var (
	testKey = []byte("pair secret for tests")
	vip1    = netip.MustParsePrefix("198.51.100.10/24")
	vip2    = netip.MustParsePrefix("198.51.100.20/24")
	hb1     = netip.MustParseAddrPort("198.51.100.11:7201")
	hb2     = netip.MustParseAddrPort("198.51.100.12:7201")
	gw      = netip.MustParseAddr("198.51.100.1")
)

func testConfig(node string) Config {
	c := Config{Node: node, Interface: "eth0", SecretFile: testSecretFile, GARP: GARPConfig{Count: 2, Refresh: 10 * time.Second}}
	if node == "fe1" {
		c.PartnerNode, c.Bind, c.Peer, c.HomeVIPs, c.PartnerVIPs = "fe2", hb1, hb2, []netip.Prefix{vip1}, []netip.Prefix{vip2}
	} else {
		c.PartnerNode, c.Bind, c.Peer, c.HomeVIPs, c.PartnerVIPs = "fe1", hb2, hb1, []netip.Prefix{vip2}, []netip.Prefix{vip1}
	}
	if err := c.Validate(); err != nil {
		panic(err)
	}
	return c
}

type testNode struct {
	m      *Member
	addrs  *fakeAddrs
	links  chan bool
	cancel context.CancelFunc
	done   chan error
}

func startNode(t *testing.T, n *memNet, fx *effects, cfg Config, stale ...netip.Prefix) *testNode {
	t.Helper()
	return startNodeWith(t, n, fx, cfg, nil, stale...)
}

// startNodeWith starts a node after setup (if not nil) has set the
// Member's test hooks (track prober, notify hook).
func startNodeWith(t *testing.T, n *memNet, fx *effects, cfg Config, setup func(*Member), stale ...netip.Prefix) *testNode {
	t.Helper()
	tn := &testNode{
		addrs: &fakeAddrs{node: cfg.Node, dev: cfg.Interface, fx: fx, set: map[netip.Prefix]bool{}},
		links: make(chan bool, 4),
		done:  make(chan error, 1),
	}
	for _, p := range stale {
		tn.addrs.set[p] = true
	}
	tn.links <- true
	watch := func(ctx context.Context) (<-chan bool, error) { return tn.links, nil }
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tn.m = newMember(cfg, testKey, log, tn.addrs, &fakeAnnouncer{node: cfg.Node, fx: fx}, watch)
	tn.m.conn = n.listen(cfg.Bind)
	if setup != nil {
		setup(tn.m)
	}
	ctx, cancel := context.WithCancel(t.Context())
	tn.cancel = cancel
	go func() { tn.done <- tn.m.Run(ctx) }()
	return tn
}

// startPair starts fe1 and fe2, lets them settle for a second (each
// holds its home VIP) and forgets the effects so far.
func startPair(t *testing.T) (*effects, *memNet, *testNode, *testNode) {
	t.Helper()
	fx, n := newEffects(), newMemNet()
	a := startNode(t, n, fx, testConfig("fe1"))
	b := startNode(t, n, fx, testConfig("fe2"))
	time.Sleep(time.Second)
	fx.take("")
	return fx, n, a, b
}

// stop is SIGTERM: Run releases, tells the partner, and returns.
func (tn *testNode) stop(t *testing.T) {
	t.Helper()
	tn.cancel()
	if err := <-tn.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// check compares the effects since the last check with want. Effects
// of the two daemons at the same instant come in either order, so both
// lists are compared sorted (by time, then node).
func check(t *testing.T, fx *effects, skip string, want ...string) {
	t.Helper()
	synctest.Wait()
	got := fx.take(skip)
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("effects (-want +got):\n%s", diff)
	}
}

// TestPair runs two daemons against each other on an in-memory network
// with fake address tables and announcers, in synctest's fake time, so
// the timings below are exact: 100ms heartbeats, 300ms dead interval,
// 10ms ticks.
func TestPair(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx, n := newEffects(), newMemNet()
		a := startNode(t, n, fx, testConfig("fe1"), vip2) // fe1 has a stale VIP from a crashed run
		b := startNode(t, n, fx, testConfig("fe2"))

		time.Sleep(time.Second)
		// Clean-up comes before anything else. Each claims its home VIP
		// once the other has acknowledged it (answered at once), and
		// announces it twice (garp.count) 100ms apart.
		check(t, fx, "",
			"0.000s fe1: ip addr del 198.51.100.20/24 dev eth0",
			"0.000s fe1: ip addr replace 198.51.100.10/24 dev eth0 label eth0:vw",
			"0.000s fe1: garp 198.51.100.10",
			"0.000s fe2: ip addr replace 198.51.100.20/24 dev eth0 label eth0:vw",
			"0.000s fe2: garp 198.51.100.20",
			"0.100s fe1: garp 198.51.100.10",
			"0.100s fe2: garp 198.51.100.20",
		)
		if s := a.m.Status(); s.State != "running" || !s.Partner.Up || s.VIPs[0].Holder != "fe1" || s.VIPs[1].Holder != "fe2" {
			t.Errorf("fe1 status = %+v", s)
		}

		// fe1's heartbeats are lost from 1.000s (a crash, as fe2 sees it):
		// fe2 claims fe1's VIP 300ms (dead_after) after the last one it
		// got. fe1, still alive and hearing fe2, keeps its VIP and
		// announces it once more (it is home).
		n.setMute(hb1, true)
		time.Sleep(time.Second)
		check(t, fx, "",
			"1.300s fe2: ip addr replace 198.51.100.10/24 dev eth0 label eth0:vw",
			"1.300s fe2: garp 198.51.100.10",
			"1.300s fe1: garp 198.51.100.10",
			"1.400s fe1: garp 198.51.100.10",
			"1.400s fe2: garp 198.51.100.10",
		)
		// When fe1's heartbeats arrive again, fe2 sees fe1 holding its
		// home VIP and releases it.
		n.setMute(hb1, false)
		time.Sleep(time.Second)
		check(t, fx, "",
			"2.100s fe2: ip addr del 198.51.100.10/24 dev eth0",
		)

		// SIGTERM on fe1 at 3.000s: it releases at once and says so; fe2
		// claims in the same instant rather than after the dead interval.
		a.stop(t)
		time.Sleep(500 * time.Millisecond)
		check(t, fx, "garp",
			"3.000s fe1: ip addr del 198.51.100.10/24 dev eth0",
			"3.000s fe2: ip addr replace 198.51.100.10/24 dev eth0 label eth0:vw",
		)

		// fe1 returns at 3.500s and preempts: fe2 releases first, then
		// fe1 claims.
		a = startNode(t, n, fx, testConfig("fe1"))
		time.Sleep(time.Second)
		check(t, fx, "garp",
			"3.500s fe2: ip addr del 198.51.100.10/24 dev eth0",
			"3.500s fe1: ip addr replace 198.51.100.10/24 dev eth0 label eth0:vw",
		)

		// fe1's link goes down at 4.500s: it releases everything (fault)
		// and its fault heartbeat (this fake network still carries it)
		// makes fe2 take over at once. Link up: hand-back.
		a.links <- false
		time.Sleep(time.Second)
		check(t, fx, "garp",
			"4.500s fe1: ip addr del 198.51.100.10/24 dev eth0",
			"4.500s fe2: ip addr replace 198.51.100.10/24 dev eth0 label eth0:vw",
		)
		if got := a.m.Status().State; got != "fault" {
			t.Errorf("fe1 state with link down = %s, want fault", got)
		}
		a.links <- true
		time.Sleep(time.Second)
		check(t, fx, "garp",
			"5.500s fe2: ip addr del 198.51.100.10/24 dev eth0",
			"5.500s fe1: ip addr replace 198.51.100.10/24 dev eth0 label eth0:vw",
		)

		a.stop(t)
		check(t, fx, "garp",
			"6.500s fe1: ip addr del 198.51.100.10/24 dev eth0",
			"6.500s fe2: ip addr replace 198.51.100.10/24 dev eth0 label eth0:vw",
		)
		b.stop(t)
		check(t, fx, "garp",
			"6.500s fe2: ip addr del 198.51.100.10/24 dev eth0",
			"6.500s fe2: ip addr del 198.51.100.20/24 dev eth0",
		)
	})
}

// TestDrops sends the daemon datagrams it must refuse and checks that
// each is counted under its reason and changes nothing. The good one,
// a signed "stopping" from the partner's node of a boot that echoes
// nothing of this run (a recording, as far as the daemon can tell),
// is unproven: before issue 20 it made the daemon take the partner's
// VIP at once.
func TestDrops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx, n := newEffects(), newMemNet()
		a := startNode(t, n, fx, testConfig("fe1"))
		evil := n.listen(netip.MustParseAddrPort("198.51.100.66:7201"))
		send := func(b []byte) { evil.WriteTo(b, a.m.conn.LocalAddr()) }
		beat := func(node string, key []byte, seq uint64) []byte {
			b, err := heartbeat.Encode(nil, &heartbeat.Heartbeat{State: heartbeat.StateStopping, Node: node, BootID: 9, Seq: seq}, key)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		send([]byte("hello"))
		send(beat("fe2", []byte("wrong key"), 1))
		send(beat("fe3", testKey, 1))
		good := beat("fe2", testKey, 5)
		send(good)
		send(good)
		send(beat("fe2", testKey, 4))
		time.Sleep(50 * time.Millisecond)
		synctest.Wait()
		check(t, fx, "")
		st := a.m.Status()
		c := st.Counters
		want := map[string]uint64{"malformed": 1, "bad_mac": 1, "bad_version": 0, "wrong_node": 1, "replay": 2, "unproven": 1, "backlog": 0}
		if diff := cmp.Diff(want, c.HeartbeatsDropped); diff != "" {
			t.Errorf("dropped (-want +got):\n%s", diff)
		}
		if c.HeartbeatsReceived != 0 || st.State != "starting" || st.Partner.Up || st.Partner.LastHeardSeconds != -1 {
			t.Errorf("after the drops: received %d, state %s, partner up %v, last heard %v; want 0, starting, down, never",
				c.HeartbeatsReceived, st.State, st.Partner.Up, st.Partner.LastHeardSeconds)
		}
		if st.Partner.UnprovenBoot != "0000000000000009" || st.Partner.LastUnprovenSeconds < 0 {
			t.Errorf("status: unproven boot %q, %vs ago; want boot 9", st.Partner.UnprovenBoot, st.Partner.LastUnprovenSeconds)
		}

		reg := prometheus.NewPedanticRegistry()
		if err := a.m.Register(reg); err != nil {
			t.Fatal(err)
		}
		err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP vipwatch_heartbeats_dropped_total Datagrams dropped, by reason.
# TYPE vipwatch_heartbeats_dropped_total counter
vipwatch_heartbeats_dropped_total{reason="backlog"} 0
vipwatch_heartbeats_dropped_total{reason="bad_mac"} 1
vipwatch_heartbeats_dropped_total{reason="bad_version"} 0
vipwatch_heartbeats_dropped_total{reason="malformed"} 1
vipwatch_heartbeats_dropped_total{reason="replay"} 2
vipwatch_heartbeats_dropped_total{reason="unproven"} 1
vipwatch_heartbeats_dropped_total{reason="wrong_node"} 1
`), "vipwatch_heartbeats_dropped_total")
		if err != nil {
			t.Error(err)
		}
		for _, name := range []string{"vipwatch_state", "vipwatch_vips_held", "vipwatch_claims_total", "vipwatch_garps_sent_total", "vipwatch_partner_last_heartbeat_timestamp_seconds", "vipwatch_heartbeats_sent_total"} {
			if n, err := testutil.GatherAndCount(reg, name); err != nil || n == 0 {
				t.Errorf("metric %s: %d series, %v", name, n, err)
			}
		}
		out := FormatStatus(a.m.Status())
		for _, s := range []string{"node fe1", "198.51.100.10/24", "replay 2", "unproven 1", "unproven heartbeats from fe2: 1, last 0.050s ago (boot 0000000000000009)"} {
			if !strings.Contains(out, s) {
				t.Errorf("status table lacks %q:\n%s", s, out)
			}
		}
		a.stop(t)
	})
}

func TestConfigValidate(t *testing.T) {
	base := func() Config { return testConfig("fe1") }
	tests := []struct {
		name string
		edit func(*Config)
		want string // error substring; empty means valid
	}{
		{"ok", func(c *Config) {}, ""},
		{"no node", func(c *Config) { c.Node = "" }, "node: is required"},
		{"partner is self", func(c *Config) { c.PartnerNode = "fe1" }, "partner_node"},
		{"long interface", func(c *Config) { c.Interface = "averylongname0" }, "interface"},
		{"no peer", func(c *Config) { c.Peer = netip.AddrPort{} }, "peer: is required"},
		{"no secret", func(c *Config) { c.SecretFile = "" }, "secret_file: is required"},
		{"secret missing", func(c *Config) { c.SecretFile = "/nonexistent/vipwatch.key" }, `secret_file: "/nonexistent/vipwatch.key" does not exist`},
		{"secret open to others", func(c *Config) { c.SecretFile = openSecret(t) }, `is open to other users (mode 0644): chmod 600 or 640 it`},
		{"admin token missing", func(c *Config) { c.Admin.TokenFile = "/nonexistent/admin.token" }, `admin.token_file: "/nonexistent/admin.token" does not exist`},
		{"peer unspecified", func(c *Config) { c.Peer = netip.MustParseAddrPort("0.0.0.0:7201") }, `peer: "0.0.0.0:7201" is not the partner's unicast address and heartbeat port (like 198.51.100.12:7201)`},
		{"peer multicast", func(c *Config) { c.Peer = netip.MustParseAddrPort("[ff02::1]:7201") }, `peer: "[ff02::1]:7201" is not the partner's unicast address`},
		{"peer without port", func(c *Config) { c.Peer = netip.MustParseAddrPort("198.51.100.12:0") }, `peer: "198.51.100.12:0" needs a port (like 198.51.100.12:7201)`},
		{"peer is bind", func(c *Config) { c.Peer = c.Bind }, `peer: "198.51.100.11:7201" is bind, this node's own address: peer is the partner's`},
		{"bind multicast", func(c *Config) { c.Bind = netip.MustParseAddrPort("224.0.0.18:7201") }, `bind: "224.0.0.18:7201" is not an address of this machine`},
		{"no home", func(c *Config) { c.HomeVIPs = nil }, "home_vips: is required"},
		{"ipv6 vip", func(c *Config) { c.PartnerVIPs = append(c.PartnerVIPs, netip.MustParsePrefix("2001:db8::20/64")) }, ""},
		{"link-local vip", func(c *Config) { c.PartnerVIPs = []netip.Prefix{netip.MustParsePrefix("fe80::20/64")} }, `partner_vips[0]: "fe80::20/64" is not a unicast address a VIP can be`},
		{"mapped vip", func(c *Config) { c.HomeVIPs = []netip.Prefix{netip.MustParsePrefix("::ffff:198.51.100.10/120")} }, `home_vips[0]: "::ffff:198.51.100.10/120" is not an IPv4 or IPv6 prefix`},
		{"witness ok", func(c *Config) { c.Witness = &WitnessConfig{Targets: []netip.Addr{gw}} }, ""},
		{"witness default gateway", func(c *Config) { c.Witness = &WitnessConfig{Method: "arp"} }, ""},
		{"witness ipv6 target", func(c *Config) {
			c.Witness = &WitnessConfig{Targets: []netip.Addr{netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("fe80::1"), gw}}
		}, ""},
		{"witness ipv6 target pinged", func(c *Config) {
			c.Witness = &WitnessConfig{Targets: []netip.Addr{netip.MustParseAddr("2001:db8::1")}, Method: "icmp"}
		}, `witness.targets[0]: "2001:db8::1" is IPv6, and ICMP witnesses are pinged over IPv4; use method arp`},
		{"witness ipv6 multicast", func(c *Config) { c.Witness = &WitnessConfig{Targets: []netip.Addr{netip.MustParseAddr("ff02::1")}} }, `"ff02::1" is not a unicast address`},
		{"witness mapped", func(c *Config) {
			c.Witness = &WitnessConfig{Targets: []netip.Addr{netip.MustParseAddr("::ffff:198.51.100.1")}}
		}, `is not a plain IPv4 or IPv6 address`},
		{"witness target is a vip", func(c *Config) { c.Witness = &WitnessConfig{Targets: []netip.Addr{gw, vip2.Addr()}} }, `witness.targets[1]: "198.51.100.20" is a VIP (partner_vips[0])`},
		{"witness method", func(c *Config) { c.Witness = &WitnessConfig{Targets: []netip.Addr{gw}, Method: "tcp"} }, `witness.method: "tcp" must be "arp" or "icmp"`},
		{"witness timeout", func(c *Config) {
			c.Witness = &WitnessConfig{Targets: []netip.Addr{gw}, Interval: 100 * time.Millisecond, Timeout: time.Second}
		}, `witness.timeout: "1s" must be between 1ms and witness.interval (100ms)`},
		{"witness interval", func(c *Config) { c.Witness = &WitnessConfig{Targets: []netip.Addr{gw}, Interval: time.Millisecond} }, "witness.interval"},
		{"witness fall", func(c *Config) { c.Witness = &WitnessConfig{Targets: []netip.Addr{gw}, Fall: -1} }, "witness.fall"},
		{"fault release without witness", func(c *Config) { c.FaultReleaseAfter = time.Second }, "fault_release_after: \"1s\" is set but witness is not"},
		{"fault release negative", func(c *Config) {
			c.Witness, c.FaultReleaseAfter = &WitnessConfig{Targets: []netip.Addr{gw}}, -time.Second
		}, "fault_release_after"},
		{"duplicate vip", func(c *Config) { c.PartnerVIPs = c.HomeVIPs }, "is also home_vips[0]"},
		{"dead too short", func(c *Config) { c.DeadAfter = 150 * time.Millisecond }, "dead_after"},
		{"garp refresh", func(c *Config) { c.GARP.Refresh = time.Millisecond }, "garp.refresh"},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, "log.format"},
		{"track ok", func(c *Config) { c.Track = &health.Check{Type: "http", Port: 8081, Path: "/healthz"} }, ""},
		{"track type", func(c *Config) { c.Track = &health.Check{Type: "icmp"} }, "track.type"},
		{"track port", func(c *Config) { c.Track = &health.Check{Type: "tcp"} }, "track.port: is required"},
		{"notify ok", func(c *Config) { c.Notify.Command = []string{"/usr/local/bin/vip-notify", "--quiet"} }, ""},
		{"notify empty command", func(c *Config) { c.Notify.Command = []string{""} }, "notify.command[0]"},
		{"notify timeout alone", func(c *Config) { c.Notify.Timeout = time.Second }, "notify.timeout"},
		{"notify negative timeout", func(c *Config) { c.Notify.Command, c.Notify.Timeout = []string{"/bin/true"}, -time.Second }, "notify.timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.edit(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	c := base()
	if c.DeadAfter != 300*time.Millisecond || !c.PreemptEnabled() || c.GARP.Interval != 100*time.Millisecond || c.Admin.Listen != DefaultAdminListen ||
		c.RuntimeDir != DefaultRuntimeDir {
		t.Errorf("defaults not filled: %+v", c)
	}
	c = base()
	c.Witness = &WitnessConfig{Targets: []netip.Addr{gw}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := WitnessConfig{Targets: []netip.Addr{gw}, Method: WitnessARP, Interval: DefaultWitnessInterval, Timeout: DefaultWitnessTimeout, Fall: DefaultWitnessFall}
	if diff := cmp.Diff(want, *c.Witness, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" || c.FaultReleaseAfter != DefaultFaultReleaseAfter {
		t.Errorf("witness defaults (-want +got):\n%s\nfault_release_after %v", diff, c.FaultReleaseAfter)
	}
}

func TestReload(t *testing.T) {
	m := newMember(testConfig("fe1"), testKey, slog.New(slog.DiscardHandler), nil, nil, nil)
	next := testConfig("fe1")
	next.SecretFile = "/etc/other.key"
	if err := m.Reload(next, []byte("new key")); err != nil {
		t.Fatalf("Reload with a new key: %v", err)
	}
	if got := string(*m.key.Load()); got != "new key" {
		t.Errorf("key after reload = %q", got)
	}
	next.Interval = time.Second
	if err := m.Reload(next, []byte("k")); err == nil {
		t.Error("Reload changing interval succeeded; it needs a restart")
	}
}
