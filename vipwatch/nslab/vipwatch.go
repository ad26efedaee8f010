package nslab

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// VIPWatch says how to configure the lab's vipwatch pair.
type VIPWatch struct {
	Binary       string // path to the vipwatch binary
	Interval     time.Duration
	DeadAfter    time.Duration
	GARPCount    int
	GARPInterval time.Duration
	// Extra is YAML appended to both nodes' configs (track:, notify:).
	Extra string
	// AdminTokenFile, if set, protects the admin API (admin.token_file).
	AdminTokenFile string
	// IPv6 adds an IPv6 home VIP to each node (VIP6a, VIP6b).
	IPv6 bool
}

// RuntimeDir is node's vipwatch runtime directory in the lab: each
// node has its own, as each machine would.
func (l *Lab) RuntimeDir(node string) string { return filepath.Join(l.Dir, "run-"+node) }

// Config writes the config of node (fe1 or fe2) with the given preempt
// setting, plus the shared key, and returns the config's path.
func (l *Lab) Config(v VIPWatch, node string, preempt bool) (string, error) {
	key := filepath.Join(l.Dir, "vipwatch.key")
	if _, err := os.Stat(key); err != nil {
		if err := os.WriteFile(key, []byte("lab pair key "+l.Tag+"\n"), 0o600); err != nil {
			return "", err
		}
	}
	self, other, home, away := FE1IP, FE2IP, VIP1, VIP2
	home6, away6 := VIP6a, VIP6b
	partner := "fe2"
	if node == "fe2" {
		self, other, home, away = FE2IP, FE1IP, VIP2, VIP1
		home6, away6 = VIP6b, VIP6a
		partner = "fe1"
	}
	homes, aways := fmt.Sprintf("%q", home.String()), fmt.Sprintf("%q", away.String())
	if v.IPv6 {
		homes += fmt.Sprintf(", %q", home6.String())
		aways += fmt.Sprintf(", %q", away6.String())
	}
	body := fmt.Sprintf(`node: %s
partner_node: %s
interface: %s
bind: "%s:%d"
peer: "%s:%d"
secret_file: %s
runtime_dir: %s
home_vips: [%s]
partner_vips: [%s]
interval: %v
dead_after: %v
preempt: %v
garp: {count: %d, interval: %v, refresh: 30s}
admin: {listen: "127.0.0.1:8054", token_file: "%s"}
log: {level: debug}
%s`, node, partner, Dev, self.Addr(), HeartbeatPort, other.Addr(), HeartbeatPort, key, l.RuntimeDir(node), homes, aways, v.Interval, v.DeadAfter, preempt, v.GARPCount, v.GARPInterval, v.AdminTokenFile, v.Extra)
	path := filepath.Join(l.Dir, fmt.Sprintf("vipwatch-%s-preempt-%v.yaml", node, preempt))
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		return "", err
	}
	return path, nil
}

// NS is the namespace of node fe1 or fe2.
func (l *Lab) NS(node string) string {
	if node == "fe2" {
		return l.FE2
	}
	return l.FE1
}

// StartVIPWatch runs vipwatch for node in its namespace.
func (l *Lab) StartVIPWatch(v VIPWatch, node string, preempt bool) (*Proc, error) {
	cfg, err := l.Config(v, node, preempt)
	if err != nil {
		return nil, err
	}
	return l.Start(l.NS(node), "vipwatch-"+node, v.Binary, "run", "--config", cfg)
}
