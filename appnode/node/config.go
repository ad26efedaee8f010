package node

import (
	"fmt"
	"net"
	"strconv"

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
	// DataDir holds the pebble database.
	DataDir string `mapstructure:"data_dir"`
	// ClusterSecretFile holds the secret that authenticates node-to-node
	// requests; the same on every member.
	ClusterSecretFile string `mapstructure:"cluster_secret_file"`
	// MinFreeMB is the free disk space below which writes are refused
	// with 507 (default 64).
	MinFreeMB uint64 `mapstructure:"min_free_mb"`

	Admin daemon.AdminConfig `mapstructure:"admin"`
	Log   daemon.LogConfig   `mapstructure:"log"`
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
	if c.DataDir == "" {
		return config.Missing("data_dir")
	}
	if c.ClusterSecretFile == "" {
		return config.Missing("cluster_secret_file")
	}
	if c.MinFreeMB == 0 {
		c.MinFreeMB = 64
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
