package node

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

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
	// VNodes is the number of ring positions per member (default 128).
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
	// MinFreeMB is the free disk space below which writes are refused
	// with 507 (default 64).
	MinFreeMB uint64 `mapstructure:"min_free_mb"`

	// WriteAcks is how many durable copies (the coordinator's included)
	// a write needs before it is acknowledged; 0 means every replica the
	// failure detector sees alive (at least 1).
	WriteAcks int `mapstructure:"write_acks"`
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
	// host with port + DefaultGossipOffset. Every member's gossip port is
	// its member port plus the same offset (advertise's gossip port minus
	// its member port).
	Advertise string `mapstructure:"advertise"`
	// ProbeInterval is memberlist's probe interval (default 1s): a dead
	// member is noticed within a few of them.
	ProbeInterval time.Duration `mapstructure:"probe_interval"`
	// RejoinInterval is how often configured members not seen alive are
	// contacted again (default 2s).
	RejoinInterval time.Duration `mapstructure:"rejoin_interval"`
}

// DefaultGossipOffset is the gossip port's distance from the member
// port when gossip is not configured. Not 1000: member 8081 would then
// gossip on 9081, the admin listener's default. 100 keeps clear of it
// for any member port from 8081 to 8980, and puts the lab's port-80
// members on 180 (the lab relies on this default).
const DefaultGossipOffset = 100

// Peers maps every member to its gossip address: the member's host with
// its port moved by this member's own gossip offset.
func (c *Config) Peers() map[string]string {
	_, ap, _ := net.SplitHostPort(c.Advertise)
	_, gp, _ := net.SplitHostPort(c.Gossip.Advertise)
	a, _ := strconv.Atoi(ap)
	g, _ := strconv.Atoi(gp)
	out := map[string]string{}
	for _, m := range c.Members {
		host, port, _ := net.SplitHostPort(m)
		p, _ := strconv.Atoi(port)
		out[m] = net.JoinHostPort(host, strconv.Itoa(p+g-a))
	}
	return out
}

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
	DefaultVNodes = 128 // enough positions that 20 members stay within 1.3× of even
	DefaultAdmin  = "127.0.0.1:9081"
)

// Validate fills defaults and reports the first bad value by its key.
func (c *Config) Validate() error {
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
		if _, err := hostPort(m, 1); err != nil {
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
	if c.ClusterSecretFile == "" {
		return config.Missing("cluster_secret_file")
	}
	if c.MinFreeMB == 0 {
		c.MinFreeMB = 64
	}
	if c.WriteAcks < 0 || c.WriteAcks > c.Replicas {
		return config.Errorf("write_acks", c.WriteAcks, "is not from 0 (every live replica) to replicas (%d)", c.Replicas)
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
	if c.Gossip.Bind == "" {
		if c.Gossip.Bind, err = shiftPort(c.Listen, DefaultGossipOffset); err != nil {
			return config.Errorf("gossip.bind", "", "cannot default from listen: %v", err)
		}
	}
	if _, err := hostPort(c.Gossip.Bind, 0); err != nil {
		return config.Errorf("gossip.bind", c.Gossip.Bind, "%v", err)
	}
	if c.Gossip.Advertise == "" {
		if c.Gossip.Advertise, err = shiftPort(c.Advertise, DefaultGossipOffset); err != nil {
			return config.Errorf("gossip.advertise", "", "cannot default from advertise: %v", err)
		}
	}
	if _, err := hostPort(c.Gossip.Advertise, 1); err != nil {
		return config.Errorf("gossip.advertise", c.Gossip.Advertise, "%v", err)
	}
	for i, p := range c.Members {
		if g := c.Peers()[p]; g == "" || strings.HasSuffix(g, ":0") || !validPort(g) {
			return config.Errorf("members["+strconv.Itoa(i)+"]", p, "has no valid gossip port (%s) with gossip.advertise %s", g, c.Gossip.Advertise)
		}
	}
	if c.Gossip.ProbeInterval == 0 {
		c.Gossip.ProbeInterval = time.Second
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
	if c.Admin.Listen == "" {
		c.Admin.Listen = DefaultAdmin
	}
	if _, err := hostPort(c.Admin.Listen, 0); err != nil {
		return config.Errorf("admin.listen", c.Admin.Listen, "%v", err)
	}
	if err := c.Log.Validate(); err != nil {
		return fmt.Errorf("log.%w", err)
	}
	return nil
}

// Ring builds the ring the config describes.
func (c *Config) Ring() (*ring.Ring, error) {
	return ring.New(ring.Config{Members: c.Members, VNodes: c.VNodes, Replicas: c.Replicas, Placement: ring.Placement(c.Placement)})
}

func validPort(addr string) bool {
	_, err := hostPort(addr, 1)
	return err == nil
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
