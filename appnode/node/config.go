package node

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ringfront/ringfront/appnode/gossip"
	"github.com/ringfront/ringfront/appnode/ring"
	"github.com/ringfront/ringfront/appnode/server"
	"github.com/ringfront/ringfront/internal/config"
	"github.com/ringfront/ringfront/internal/daemon"
)

// Config is appnode's configuration (configs/appnode.yaml documents
// every key).
type Config struct {
	// Node names this member in logs; default: the advertised address.
	Node string `mapstructure:"node"`
	// Listen is the API address.
	Listen string `mapstructure:"listen"`
	// Advertise is this member's address as the ring names it; default:
	// Listen, when that is not a wildcard address.
	Advertise string `mapstructure:"advertise"`
	// Members are every member's advertised address, this one included.
	Members []string `mapstructure:"members"`
	// VNodes is the number of ring positions per member (default
	// DefaultVNodes).
	VNodes int `mapstructure:"vnodes"`
	// Replicas is the preference list length (default 2).
	Replicas int `mapstructure:"replicas"`
	// Placement is successor (default) or opposite.
	Placement string `mapstructure:"placement"`
	// Routing is forward (default) or redirect.
	Routing string `mapstructure:"routing"`
	// ForwardOver is how forwarded requests travel between members: link
	// (default: a few long-lived connections per member carrying many
	// requests at once) or http (one HTTP exchange per request).
	ForwardOver string `mapstructure:"forward_over"`
	// DataDir holds the pebble database.
	DataDir string `mapstructure:"data_dir"`
	// ClusterSecretFile holds the secret that authenticates node-to-node
	// requests; the same on every member.
	ClusterSecretFile string `mapstructure:"cluster_secret_file"`
	// ClusterSecret is read from ClusterSecretFile by Validate.
	ClusterSecret []byte `mapstructure:"-" secret:"true"`
	// MinFreeMB is the free disk space below which writes are refused
	// with 507 (default 64).
	MinFreeMB uint64 `mapstructure:"min_free_mb"`

	// WriteAcks is how many durable copies on distinct members (the
	// coordinator's included) a write needs before it is acknowledged
	// (default 2, or 1 with replicas 1). A replica that is down is
	// replaced by a hinted copy on the next live member.
	WriteAcks int `mapstructure:"write_acks"`
	// MemberTimeout is how long a member waits for another to answer a
	// forwarded request or a replica call before it goes on to the next
	// member (default 150ms; at least 10 probe round trips).
	MemberTimeout time.Duration `mapstructure:"member_timeout"`
	// ReadRepair makes the member that answers a read compare the user's
	// records with the other live replicas in the background and repair
	// differences by union.
	ReadRepair bool `mapstructure:"read_repair"`
	// AntiEntropyInterval is how often each pair of members compares the
	// users they share and repairs differences (default 1m).
	AntiEntropyInterval time.Duration `mapstructure:"anti_entropy_interval"`
	// AntiEntropyRate is how many records per second anti-entropy
	// compares and copies while it repairs (default 2000).
	AntiEntropyRate int `mapstructure:"anti_entropy_rate"`
	// RebalanceRate is how many users per second this member streams to
	// new replicas after a ring change (default 200).
	RebalanceRate int `mapstructure:"rebalance_rate"`
	// Gossip is the failure detector's listener.
	Gossip GossipConfig `mapstructure:"gossip"`

	// FanoutLimit: a post of an author with more followers than this is
	// not pushed into their inboxes but merged when they read (default
	// 10000; -1: nobody is pushed, every timeline read merges).
	FanoutLimit int `mapstructure:"fanout_limit"`
	// InboxMax is about how many entries a home-timeline inbox keeps
	// (default 800); older pages are merged at read time.
	InboxMax int `mapstructure:"inbox_max"`
	// StreamHeartbeat is how often a live timeline stream sends a
	// heartbeat comment (default 15s).
	StreamHeartbeat time.Duration `mapstructure:"stream_heartbeat"`

	// TLS serves the API over HTTPS (tls.go). Member traffic is TLS
	// whatever this says, with certificates derived from the cluster
	// secret (appnode/transport).
	TLS TLSConfig `mapstructure:"tls"`
	// Limits are the rate limits per client network and per user.
	Limits LimitsConfig `mapstructure:"limits"`
	// HTTP bounds one client's requests on the API listener.
	HTTP HTTPConfig `mapstructure:"http"`

	Admin daemon.AdminConfig `mapstructure:"admin"`
	Log   daemon.LogConfig   `mapstructure:"log"`
}

// GossipConfig is the failure detector's (memberlist's) address and
// timing.
type GossipConfig struct {
	// Bind is the gossip address (UDP and TCP); default: listen's host
	// with port + DefaultGossipOffset.
	Bind string `mapstructure:"bind"`
	// Advertise is the gossip address others reach; default: advertise's
	// host with bind's port. The other members learn it from this member
	// (it answers it on its member port), so members need not agree on
	// any port convention.
	Advertise string `mapstructure:"advertise"`
	// ProbeInterval is memberlist's probe interval (default 200ms): a
	// dead member is declared dead about five of them after it stops
	// answering.
	ProbeInterval time.Duration `mapstructure:"probe_interval"`
	// RejoinInterval is how often configured members not seen alive are
	// contacted again (default 2s).
	RejoinInterval time.Duration `mapstructure:"rejoin_interval"`
	// IsolatedAfter is how long this member may hear from none of its
	// peers before it says so (default 10s): an error in the log every
	// rejoin interval, /readyz 503, status and appnode_isolated.
	IsolatedAfter time.Duration `mapstructure:"isolated_after"`
}

// DefaultGossipOffset is the gossip port's distance from this member's
// API port when gossip.bind is not configured. It is only this
// member's default: the others learn its gossip address from it. Not
// 1000: member 8081 would then gossip on 9081, the admin listener's
// default.
const DefaultGossipOffset = 100

// DefaultMemberTimeout is member_timeout's default (see
// server.DefaultMemberTimeout).
const DefaultMemberTimeout = server.DefaultMemberTimeout

// shiftPort returns addr with its port moved by off (a port 0 stays 0:
// any free port).
func shiftPort(addr string, off int) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	p, _ := strconv.Atoi(port)
	if p == 0 {
		return addr, nil
	}
	if p+off > 65535 {
		return "", fmt.Errorf("port %d + %d is beyond 65535", p, off)
	}
	return net.JoinHostPort(host, strconv.Itoa(p+off)), nil
}

// Defaults.
const (
	// DefaultVNodes keeps the most loaded of 20 members within 1.25×
	// of an even share of users whatever their addresses, and of 200
	// within about 1.3× (make bench-scale: exact shares over 500 random
	// member sets; median 1.12 and 1.18, worst 1.24 and 1.30). 128, the
	// old default, gave a median of 1.17 and 1.25 and a worst of 1.34
	// and 1.45 (TestDefaultVNodesBalance). More positions cost
	// anti-entropy: a ring position inside one of its 65,536 leaves
	// makes a round read that leaf's users one by one (256 × 20 members
	// cut 7.5% of the leaves, 128 3.8%; 256 × 200 54%).
	DefaultVNodes = 256
	DefaultAdmin  = "127.0.0.1:9081"
)

// Validate fills defaults and reports the first bad value by its key.
func (c *Config) Validate() error {
	if err := c.Admin.Validate(DefaultAdmin); err != nil {
		return config.Join("admin", err)
	}
	if c.Listen == "" {
		return config.Missing("listen")
	}
	lhost, err := hostPort(c.Listen, 0)
	if err != nil {
		return config.Errorf("listen", c.Listen, "%v", err)
	}
	if c.Advertise == "" {
		if ip := net.ParseIP(lhost); lhost == "" || ip != nil && ip.IsUnspecified() {
			return config.Errorf("advertise", c.Advertise, "is required when listen (%s) is a wildcard address", c.Listen)
		}
		c.Advertise = c.Listen
	}
	if _, err := hostPort(c.Advertise, 1); err != nil {
		return config.Errorf("advertise", c.Advertise, "%v", err)
	}
	if c.Node == "" {
		c.Node = c.Advertise
	}
	if len(c.Members) == 0 {
		return config.Missing("members")
	}
	self := false
	seen := map[string]bool{}
	for i, m := range c.Members {
		key := "members[" + strconv.Itoa(i) + "]"
		if err := dialable(m); err != nil {
			return config.Errorf(key, m, "%v", err)
		}
		if seen[m] {
			return config.Errorf(key, m, "is listed twice")
		}
		seen[m] = true
		self = self || m == c.Advertise
	}
	if !self {
		return config.Errorf("advertise", c.Advertise, "is not one of members")
	}
	if c.VNodes == 0 {
		c.VNodes = DefaultVNodes
	}
	if c.VNodes < 1 || c.VNodes > ring.MaxVNodes {
		return config.Errorf("vnodes", c.VNodes, "is not from 1 to %d", ring.MaxVNodes)
	}
	if c.Replicas == 0 {
		c.Replicas = 2
	}
	if c.Replicas < 1 || c.Replicas > len(c.Members) {
		return config.Errorf("replicas", c.Replicas, "is not from 1 to the number of members (%d)", len(c.Members))
	}
	switch ring.Placement(c.Placement) {
	case "":
		c.Placement = string(ring.Successor)
	case ring.Successor, ring.Opposite:
	default:
		return config.Errorf("placement", c.Placement, "is not successor or opposite")
	}
	switch server.Routing(c.Routing) {
	case "":
		c.Routing = string(server.Forward)
	case server.Forward, server.Redirect:
	default:
		return config.Errorf("routing", c.Routing, "is not forward or redirect")
	}
	switch c.ForwardOver {
	case "":
		c.ForwardOver = "link"
	case "link", "http":
	default:
		return config.Errorf("forward_over", c.ForwardOver, "is not link or http")
	}
	if c.DataDir == "" {
		return config.Missing("data_dir")
	}
	if fi, err := os.Stat(c.DataDir); err == nil && !fi.IsDir() {
		return config.Errorf("data_dir", c.DataDir, "is a file, not a directory")
	}
	if c.ClusterSecretFile == "" {
		return config.Missing("cluster_secret_file")
	}
	if c.ClusterSecret, err = config.Secret("cluster_secret_file", c.ClusterSecretFile); err != nil {
		return err
	}
	if c.MinFreeMB == 0 {
		c.MinFreeMB = 64
	}
	if c.WriteAcks == 0 {
		c.WriteAcks = min(2, c.Replicas)
	}
	if c.WriteAcks < 1 || c.WriteAcks > c.Replicas {
		return config.Errorf("write_acks", c.WriteAcks, "is not from 1 to replicas (%d)", c.Replicas)
	}
	if c.MemberTimeout == 0 {
		c.MemberTimeout = DefaultMemberTimeout
	}
	if c.MemberTimeout < 10*time.Millisecond || c.MemberTimeout > time.Minute {
		return config.Errorf("member_timeout", c.MemberTimeout, "is not from 10ms to 1m")
	}
	if c.AntiEntropyInterval == 0 {
		c.AntiEntropyInterval = server.DefaultAntiEntropyInterval
	}
	if c.AntiEntropyInterval < time.Second {
		return config.Errorf("anti_entropy_interval", c.AntiEntropyInterval, "is shorter than 1s")
	}
	if c.AntiEntropyRate == 0 {
		c.AntiEntropyRate = server.DefaultAntiEntropyRate
	}
	if c.AntiEntropyRate < 1 || c.AntiEntropyRate > 1_000_000 {
		return config.Errorf("anti_entropy_rate", c.AntiEntropyRate, "is not from 1 to 1000000 records per second")
	}
	if c.RebalanceRate == 0 {
		c.RebalanceRate = server.DefaultRebalanceRate
	}
	if c.RebalanceRate < 1 || c.RebalanceRate > 100_000 {
		return config.Errorf("rebalance_rate", c.RebalanceRate, "is not from 1 to 100000 users per second")
	}
	if err := c.validateFanout(); err != nil {
		return err
	}
	if err := c.Limits.validate(); err != nil {
		return err
	}
	if err := c.HTTP.validate(); err != nil {
		return err
	}
	if c.Gossip.Bind == "" {
		if c.Gossip.Bind, err = shiftPort(c.Listen, DefaultGossipOffset); err != nil {
			return config.Errorf("gossip.bind", "", "cannot default from listen: %v", err)
		}
	}
	if _, err := hostPort(c.Gossip.Bind, 0); err != nil {
		return config.Errorf("gossip.bind", c.Gossip.Bind, "%v", err)
	}
	if c.Gossip.Advertise == "" {
		// The advertised host with the port this member binds.
		_, bport, _ := net.SplitHostPort(c.Gossip.Bind)
		ahost, _, _ := net.SplitHostPort(c.Advertise)
		c.Gossip.Advertise = net.JoinHostPort(ahost, bport)
	}
	if _, err := hostPort(c.Gossip.Advertise, 0); err != nil {
		return config.Errorf("gossip.advertise", c.Gossip.Advertise, "%v", err)
	}
	if ghost, gport, _ := net.SplitHostPort(c.Gossip.Advertise); gport != "0" {
		if err := dialable(c.Gossip.Advertise); err != nil {
			return config.Errorf("gossip.advertise", c.Gossip.Advertise, "%v", err)
		}
	} else if ip := net.ParseIP(ghost); ip != nil && ip.IsUnspecified() {
		return config.Errorf("gossip.advertise", c.Gossip.Advertise, "is a wildcard address: set gossip.advertise to an address the other members can reach")
	}
	for _, l := range []struct{ key, addr string }{{"listen", c.Listen}, {"admin.listen", c.Admin.Listen}} {
		if l.addr != "" && sameSocket(c.Gossip.Bind, l.addr) {
			return config.Errorf("gossip.bind", c.Gossip.Bind, "is also %s (%s): give gossip a port of its own", l.key, l.addr)
		}
	}
	if c.Gossip.ProbeInterval == 0 {
		c.Gossip.ProbeInterval = gossip.DefaultProbeInterval
	}
	if c.Gossip.ProbeInterval < 10*time.Millisecond {
		return config.Errorf("gossip.probe_interval", c.Gossip.ProbeInterval, "is shorter than 10ms")
	}
	if c.Gossip.RejoinInterval == 0 {
		c.Gossip.RejoinInterval = 2 * time.Second
	}
	if c.Gossip.RejoinInterval < 10*time.Millisecond {
		return config.Errorf("gossip.rejoin_interval", c.Gossip.RejoinInterval, "is shorter than 10ms")
	}
	if c.Gossip.IsolatedAfter == 0 {
		c.Gossip.IsolatedAfter = gossip.DefaultIsolatedAfter
	}
	if c.Gossip.IsolatedAfter < c.Gossip.ProbeInterval {
		return config.Errorf("gossip.isolated_after", c.Gossip.IsolatedAfter, "is shorter than gossip.probe_interval (%v)", c.Gossip.ProbeInterval)
	}
	if sameSocket(c.Admin.Listen, c.Listen) {
		return config.Errorf("admin.listen", c.Admin.Listen, "is also listen's address")
	}
	if err := c.validateTLS(); err != nil {
		return err
	}
	if err := c.Log.Validate(); err != nil {
		return config.Join("log", err)
	}
	return nil
}

// OtherEnv lists the variables with appnode's prefix that are not
// config keys: the command-line client's.
func (c *Config) OtherEnv() []string {
	return []string{"APPNODE_SERVER", "APPNODE_TOKEN", "APPNODE_CA_FILE"}
}

// Ring builds the ring the config describes.
func (c *Config) Ring() (*ring.Ring, error) {
	return ring.New(ring.Config{Members: c.Members, VNodes: c.VNodes, Replicas: c.Replicas, Placement: ring.Placement(c.Placement)})
}

// dialable checks an address others dial: host:port with a port from 1
// to 65535 and a host that is an IP address or a DNS name (not a
// wildcard: nobody can dial 0.0.0.0).
func dialable(s string) error {
	host, err := hostPort(s, 1)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(strings.Trim(host, "[]")); ip != nil {
		if ip.IsUnspecified() {
			return fmt.Errorf("has a wildcard host, which nobody can dial")
		}
		return nil
	}
	if !validHostname(host) {
		return fmt.Errorf("has a host that is neither an IP address nor a DNS name")
	}
	return nil
}

// validHostname checks a DNS name (RFC 1123): labels of letters, digits
// and hyphens, not all-numeric at the end (127.0.0.300 is a mistyped
// address, not a name).
func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	last := labels[len(labels)-1]
	return strings.Trim(last, "0123456789") != ""
}

// sameSocket reports whether two listen addresses would collide: the
// same port on the same host, or on a wildcard host and any other.
func sameSocket(a, b string) bool {
	ah, ap, err1 := net.SplitHostPort(a)
	bh, bp, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || ap != bp || ap == "0" {
		return false
	}
	wild := func(h string) bool { ip := net.ParseIP(h); return h == "" || ip != nil && ip.IsUnspecified() }
	return ah == bh || wild(ah) || wild(bh)
}

// hostPort checks host:port; port 0 (any free port) is allowed only for
// addresses this member binds, never for ones others dial.
func hostPort(s string, minPort int) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("is not host:port")
	}
	if p, err := strconv.Atoi(port); err != nil || p < minPort || p > 65535 {
		return "", fmt.Errorf("has no valid port")
	}
	return host, nil
}
