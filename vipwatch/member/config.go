package member

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/ringfront/ringfront/internal/config"
	"github.com/ringfront/ringfront/internal/daemon"
	"github.com/ringfront/ringfront/internal/health"
	"github.com/ringfront/ringfront/vipwatch/heartbeat"
)

// Config is vipwatch's configuration file.
type Config struct {
	// Node is this daemon's name, sent in its heartbeats.
	Node string `mapstructure:"node"`
	// PartnerNode is the partner's name; heartbeats from any other name
	// are dropped. Empty accepts any name but Node.
	PartnerNode string `mapstructure:"partner_node"`
	// Interface carries the VIPs.
	Interface string `mapstructure:"interface"`
	// Bind is the UDP address heartbeats are received on.
	Bind netip.AddrPort `mapstructure:"bind"`
	// Peer is the partner's heartbeat address.
	Peer netip.AddrPort `mapstructure:"peer"`
	// SecretFile holds the pair's shared HMAC key.
	SecretFile string `mapstructure:"secret_file"`
	// Secret is the key, read from SecretFile by Validate.
	Secret []byte `mapstructure:"-" secret:"true"`
	// HomeVIPs live on this machine while it is up.
	HomeVIPs []netip.Prefix `mapstructure:"home_vips"`
	// PartnerVIPs are the partner's home VIPs, held while it is down.
	PartnerVIPs []netip.Prefix `mapstructure:"partner_vips"`
	// Interval is the heartbeat period.
	Interval time.Duration `mapstructure:"interval"`
	// DeadAfter is how long the partner may be silent before it counts
	// as dead.
	DeadAfter time.Duration `mapstructure:"dead_after"`
	// Preempt takes the home VIPs back when this node returns (default
	// true); PreemptDelay waits this long after the return first.
	Preempt      *bool         `mapstructure:"preempt"`
	PreemptDelay time.Duration `mapstructure:"preempt_delay"`
	// GARP says how VIPs are announced.
	GARP GARPConfig `mapstructure:"garp"`
	// Track, if set, checks the local service (on 127.0.0.1, with the
	// same checks as dnslb): while it is down this node gives its home
	// VIPs to the partner, and it takes them back once the check rises
	// again if preempt is on.
	Track *health.Check `mapstructure:"track"`
	// Notify runs a command on every state change.
	Notify NotifyConfig `mapstructure:"notify"`
	// Witness, if set, guards against split brain: the daemon claims
	// a silent partner's VIP only while a witness answers and no other
	// machine answers for the VIP, and reaching no witness puts it in
	// fault.
	Witness *WitnessConfig `mapstructure:"witness"`
	// FaultReleaseAfter is how long a daemon that reaches no witness
	// (and does not hear its partner) keeps what it holds before it
	// releases it. Needs witness.
	FaultReleaseAfter time.Duration `mapstructure:"fault_release_after"`
	// RuntimeDir holds vipwatch's record of the IPv6 addresses it added
	// (systemd's RuntimeDirectory); release-all reads it.
	RuntimeDir string `mapstructure:"runtime_dir"`
	// Admin is the admin HTTP listener (status, metrics).
	Admin daemon.AdminConfig `mapstructure:"admin"`
	// Log is the log format and level.
	Log daemon.LogConfig `mapstructure:"log"`
}

// GARPConfig is the `garp:` section.
type GARPConfig struct {
	// Count announcements right after a claim, Interval apart.
	Count    int           `mapstructure:"count"`
	Interval time.Duration `mapstructure:"interval"`
	// Refresh is the period of announcements while a VIP is held, so
	// that switches' forwarding tables do not age the VIP out.
	Refresh time.Duration `mapstructure:"refresh"`
}

// NotifyConfig is the `notify:` section.
type NotifyConfig struct {
	// Command is run (no shell) with the new state, the VIP and the
	// reason appended as arguments, and in the environment as
	// VIPWATCH_STATE, VIPWATCH_VIP, VIPWATCH_REASON (and VIPWATCH_NODE).
	// Empty: no hook.
	Command []string `mapstructure:"command"`
	// Timeout kills a hook that runs longer.
	Timeout time.Duration `mapstructure:"timeout"`
}

// WitnessConfig is the `witness:` section.
type WitnessConfig struct {
	// Targets are addresses on the VIPs' segment; one answering is
	// enough. IPv6 targets (link-local ones too, such as a router's
	// fe80::1) need method arp. Empty: the interface's IPv4 default
	// gateways, looked up when the daemon starts.
	Targets []netip.Addr `mapstructure:"targets"`
	// Method is arp (neighbour resolution on the interface: an ARP
	// request for an IPv4 target, an NDP neighbour solicitation for an
	// IPv6 one; the target must be on the segment) or icmp (an IPv4
	// echo request on a socket bound to the interface).
	Method string `mapstructure:"method"`
	// Interval between witness rounds; Timeout is how long a round
	// waits for answers, and bounds the VIP probes too (with half of
	// dead_after).
	Interval time.Duration `mapstructure:"interval"`
	Timeout  time.Duration `mapstructure:"timeout"`
	// Fall is how many rounds in a row must go unanswered before the
	// witness counts as lost: one lost packet is not a cut cable.
	Fall int `mapstructure:"fall"`
}

// Witness methods.
const (
	WitnessARP  = "arp"
	WitnessICMP = "icmp"
)

// Defaults.
const (
	// DefaultWitnessInterval and DefaultWitnessTimeout: a round a
	// second costs the gateway one ARP request per second per daemon;
	// an answer on a LAN takes well under a millisecond, so 200ms only
	// absorbs a busy gateway.
	DefaultWitnessInterval = time.Second
	DefaultWitnessTimeout  = 200 * time.Millisecond
	DefaultWitnessFall     = 2
	// DefaultFaultReleaseAfter: a daemon cut off from the network
	// keeps its VIPs this long (a short blip costs nothing), then lets
	// the side that reaches the network serve them alone.
	DefaultFaultReleaseAfter = 2 * time.Second
	// DefaultNotifyTimeout bounds a notify hook: long enough for a
	// script that calls a chat webhook, short enough that hung hooks do
	// not pile up.
	DefaultNotifyTimeout = 10 * time.Second
	// TrackAddress is where a track check probes: the local service.
	TrackAddress        = "127.0.0.1"
	DefaultInterval     = 100 * time.Millisecond
	DefaultDeadFactor   = 3 // dead_after defaults to three missed heartbeats
	DefaultGARPCount    = 3
	DefaultGARPInterval = 100 * time.Millisecond
	// DefaultGARPRefresh re-announces well inside the common switch FDB
	// ageing time (300 s) and the Linux neighbour reachable time (30 s
	// base), so that neither forgets the holder.
	DefaultGARPRefresh = 30 * time.Second
	DefaultAdminListen = "127.0.0.1:8054"
)

// PreemptEnabled reports the effective preempt setting.
func (c *Config) PreemptEnabled() bool { return c.Preempt == nil || *c.Preempt }

// Validate fills defaults and checks every value.
func (c *Config) Validate() error {
	if c.Node == "" {
		return config.Missing("node")
	}
	if len(c.Node) > heartbeat.MaxNodeLen {
		return config.Errorf("node", c.Node, "is longer than %d bytes", heartbeat.MaxNodeLen)
	}
	if c.PartnerNode == c.Node {
		return config.Errorf("partner_node", c.PartnerNode, "is this node's own name")
	}
	if c.Interface == "" {
		return config.Missing("interface")
	}
	if len(c.Interface) > 12 {
		// The address label is the interface name plus ":vw", 15 bytes at most.
		return config.Errorf("interface", c.Interface, "is too long (vipwatch labels its addresses %s:vw, which allows 12 bytes)", c.Interface)
	}
	if !c.Bind.IsValid() {
		return config.Missing("bind")
	}
	if a := c.Bind.Addr(); a.IsMulticast() || a.Zone() != "" {
		return config.Errorf("bind", c.Bind, "is not an address of this machine to receive heartbeats on (like 198.51.100.11:7201)")
	}
	if !c.Peer.IsValid() {
		return config.Missing("peer")
	}
	if a := c.Peer.Addr(); a.IsUnspecified() || a.IsMulticast() || a.Zone() != "" || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return config.Errorf("peer", c.Peer, "is not the partner's unicast address and heartbeat port (like 198.51.100.12:7201)")
	}
	if c.Peer.Port() == 0 {
		return config.Errorf("peer", c.Peer, "needs a port (like 198.51.100.12:7201)")
	}
	if c.Peer == c.Bind {
		return config.Errorf("peer", c.Peer, "is bind, this node's own address: peer is the partner's")
	}
	if c.SecretFile == "" {
		return config.Missing("secret_file")
	}
	key, err := config.Secret("secret_file", c.SecretFile)
	if err != nil {
		return err
	}
	c.Secret = key
	if len(c.HomeVIPs) == 0 {
		return config.Missing("home_vips")
	}
	if len(c.PartnerVIPs) == 0 {
		return config.Missing("partner_vips")
	}
	seen := map[netip.Addr]string{}
	for _, l := range []struct {
		key  string
		vips []netip.Prefix
	}{{"home_vips", c.HomeVIPs}, {"partner_vips", c.PartnerVIPs}} {
		for i, p := range l.vips {
			key := fmt.Sprintf("%s[%d]", l.key, i)
			if !p.IsValid() || p.Addr().Zone() != "" || p.Addr().Is4In6() {
				return config.Errorf(key, p, "is not an IPv4 or IPv6 prefix like 198.51.100.10/24 or 2001:db8::10/64")
			}
			if a := p.Addr(); a.IsMulticast() || a.IsUnspecified() || a.IsLoopback() || a.IsLinkLocalUnicast() {
				return config.Errorf(key, p, "is not a unicast address a VIP can be (multicast, unspecified, loopback and link-local are not)")
			}
			if other, dup := seen[p.Addr()]; dup {
				return config.Errorf(key, p, "is also %s", other)
			}
			seen[p.Addr()] = key
		}
	}
	if len(c.HomeVIPs)+len(c.PartnerVIPs) > heartbeat.MaxVIPs {
		return config.Errorf("home_vips", len(c.HomeVIPs), "and partner_vips together exceed %d VIPs", heartbeat.MaxVIPs)
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Interval < time.Millisecond {
		return config.Errorf("interval", c.Interval, "is shorter than 1ms")
	}
	if c.DeadAfter == 0 {
		c.DeadAfter = DefaultDeadFactor * c.Interval
	}
	if c.DeadAfter < 2*c.Interval {
		return config.Errorf("dead_after", c.DeadAfter, "must be at least twice interval (%v), or one late heartbeat fails the partner over", c.Interval)
	}
	if c.Preempt == nil {
		t := true
		c.Preempt = &t
	}
	if c.PreemptDelay < 0 {
		return config.Errorf("preempt_delay", c.PreemptDelay, "is negative")
	}
	if err := c.GARP.validate(); err != nil {
		return config.Join("garp", err)
	}
	if c.Track != nil {
		if err := c.Track.Validate(); err != nil {
			return config.Join("track", err)
		}
	}
	if len(c.Notify.Command) > 0 {
		if c.Notify.Command[0] == "" {
			return config.Errorf("notify.command[0]", "", "is empty")
		}
		if c.Notify.Timeout == 0 {
			c.Notify.Timeout = DefaultNotifyTimeout
		}
		if c.Notify.Timeout < 0 {
			return config.Errorf("notify.timeout", c.Notify.Timeout, "is negative")
		}
	} else if c.Notify.Timeout != 0 {
		return config.Errorf("notify.timeout", c.Notify.Timeout, "is set but notify.command is empty")
	}
	if c.Witness != nil {
		if err := c.Witness.validate(seen); err != nil {
			return config.Join("witness", err)
		}
		if c.FaultReleaseAfter == 0 {
			c.FaultReleaseAfter = DefaultFaultReleaseAfter
		}
		if c.FaultReleaseAfter < 0 {
			return config.Errorf("fault_release_after", c.FaultReleaseAfter, "is negative")
		}
	} else if c.FaultReleaseAfter != 0 {
		return config.Errorf("fault_release_after", c.FaultReleaseAfter, "is set but witness is not: only a daemon that reaches no witness releases on this timer")
	}
	if c.RuntimeDir == "" {
		c.RuntimeDir = DefaultRuntimeDir
	}
	if err := c.Admin.Validate(DefaultAdminListen); err != nil {
		return config.Join("admin", err)
	}
	if err := c.Log.Validate(); err != nil {
		return config.Join("log", err)
	}
	return nil
}

// OtherEnv lists the variables with vipwatch's prefix that are not
// config keys: the ones a notify hook gets (a hook may well run
// vipwatch status).
func (c *Config) OtherEnv() []string {
	return []string{"VIPWATCH_STATE", "VIPWATCH_VIP", "VIPWATCH_REASON"}
}

// DefaultRuntimeDir is where vipwatch records the IPv6 addresses it
// adds (systemd: RuntimeDirectory=vipwatch).
const DefaultRuntimeDir = "/run/vipwatch"

func (w *WitnessConfig) validate(vips map[netip.Addr]string) error {
	switch w.Method {
	case "":
		w.Method = WitnessARP
	case WitnessARP, WitnessICMP:
	default:
		return config.Errorf("method", w.Method, "must be %q or %q", WitnessARP, WitnessICMP)
	}
	for i, t := range w.Targets {
		key := fmt.Sprintf("targets[%d]", i)
		switch {
		case t.Zone() != "" || t.Is4In6():
			return config.Errorf(key, t, "is not a plain IPv4 or IPv6 address (no zone, no IPv4-mapped form)")
		case t.Is6() && w.Method == WitnessICMP:
			return config.Errorf(key, t, "is IPv6, and ICMP witnesses are pinged over IPv4; use method arp, which asks IPv6 targets with NDP")
		case t.IsUnspecified() || t.IsMulticast() || t.IsLoopback() || t == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
			return config.Errorf(key, t, "is not a unicast address of another machine")
		}
		if other, ok := vips[t]; ok {
			return config.Errorf(key, t, "is a VIP (%s): a witness must be another machine", other)
		}
	}
	if w.Interval == 0 {
		w.Interval = DefaultWitnessInterval
	}
	if w.Interval < 10*time.Millisecond {
		return config.Errorf("interval", w.Interval, "is shorter than 10ms")
	}
	if w.Timeout == 0 {
		w.Timeout = min(DefaultWitnessTimeout, w.Interval)
	}
	if w.Timeout < time.Millisecond || w.Timeout > w.Interval {
		return config.Errorf("timeout", w.Timeout, "must be between 1ms and witness.interval (%v)", w.Interval)
	}
	if w.Fall == 0 {
		w.Fall = DefaultWitnessFall
	}
	if w.Fall < 1 || w.Fall > 100 {
		return config.Errorf("fall", w.Fall, "must be between 1 and 100")
	}
	return nil
}

func (g *GARPConfig) validate() error {
	if g.Count == 0 {
		g.Count = DefaultGARPCount
	}
	if g.Count < 1 || g.Count > 100 {
		return config.Errorf("count", g.Count, "must be between 1 and 100")
	}
	if g.Interval == 0 {
		g.Interval = DefaultGARPInterval
	}
	if g.Interval < time.Millisecond {
		return config.Errorf("interval", g.Interval, "is shorter than 1ms")
	}
	if g.Refresh == 0 {
		g.Refresh = DefaultGARPRefresh
	}
	if g.Refresh < g.Interval {
		return config.Errorf("refresh", g.Refresh, "is shorter than garp.interval")
	}
	return nil
}
