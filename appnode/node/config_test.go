package node

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringfront/ringfront/internal/config"
	"github.com/ringfront/ringfront/internal/daemon"
)

const base = `
listen: "127.0.0.1:8081"
members: ["127.0.0.1:8081", "127.0.0.1:8082", "127.0.0.1:8083"]
data_dir: /tmp/x
cluster_secret_file: /tmp/key
`

// load loads body, with /tmp/key (base's cluster_secret_file) made a
// real key file: validation reads the secret as serve does.
func load(t *testing.T, body string) (Config, error) {
	t.Helper()
	dir := t.TempDir()
	key := filepath.Join(dir, "cluster.key")
	if err := os.WriteFile(key, []byte("cluster secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	body = strings.ReplaceAll(body, "/tmp/key", key)
	p := filepath.Join(dir, "appnode.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	var cfg Config
	err := config.Load(config.Options{File: p, EnvPrefix: "APPNODE", Environ: []string{}}, &cfg)
	return cfg, err
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"minimal", base, ""},
		{"no listen", strings.Replace(base, `listen: "127.0.0.1:8081"`, "", 1), "listen: is required"},
		{"bad listen", base + "advertise: 127.0.0.1:8081\n" + `listen: "nowhere"` + "\n", ""}, // overridden below
		{"wildcard listen needs advertise", strings.Replace(base, `listen: "127.0.0.1:8081"`, `listen: "0.0.0.0:8081"`, 1), "advertise: \"\" is required"},
		{"advertise not a member", base + "advertise: 127.0.0.1:9999\n", `advertise: "127.0.0.1:9999" is not one of members`},
		{"bad member", strings.Replace(base, `"127.0.0.1:8083"`, `"127.0.0.1"`, 1), `members[2]: "127.0.0.1" is not host:port`},
		{"bad port", strings.Replace(base, `"127.0.0.1:8083"`, `"127.0.0.1:0"`, 1), `members[2]: "127.0.0.1:0" has no valid port`},
		{"duplicate member", strings.Replace(base, `"127.0.0.1:8083"`, `"127.0.0.1:8082"`, 1), `members[2]: "127.0.0.1:8082" is listed twice`},
		{"no members", strings.Replace(base, `members: ["127.0.0.1:8081", "127.0.0.1:8082", "127.0.0.1:8083"]`, "", 1), "members: is required"},
		{"vnodes", base + "vnodes: 5000\n", `vnodes: "5000" is not from 1 to 4096`},
		{"vnodes not a number", base + "vnodes: many\n", `vnodes: "many" is not a valid integer`},
		{"replicas", base + "replicas: 4\n", `replicas: "4" is not from 1`},
		{"placement", base + "placement: random\n", `placement: "random" is not successor or opposite`},
		{"routing", base + "routing: proxy\n", `routing: "proxy" is not forward or redirect`},
		{"no data_dir", strings.Replace(base, "data_dir: /tmp/x", "", 1), "data_dir: is required"},
		{"no secret", strings.Replace(base, "cluster_secret_file: /tmp/key", "", 1), "cluster_secret_file: is required"},
		{"unknown key", base + "replica: 2\n", "replica: unknown key"},
		{"admin listen", base + "admin: {listen: nowhere}\n", `admin.listen: "nowhere" is not host:port`},
		{"log level", base + "log: {level: loud}\n", `log.level: "loud" is not a log level`},
		{"write_acks", base + "write_acks: 3\n", `write_acks: "3" is not from 1 to replicas (2)`},
		{"write_acks negative", base + "write_acks: -1\n", `write_acks: "-1" is not from 1`},
		{"write_acks 1", base + "write_acks: 1\n", ""},
		{"member_timeout", base + "member_timeout: 1ms\n", `member_timeout: "1ms" is not from 10ms to 1m`},
		{"member typo'd address", strings.Replace(base, `"127.0.0.1:8083"`, `"127.0.0.300:8083"`, 1), `members[2]: "127.0.0.300:8083" has a host that is neither an IP address nor a DNS name`},
		{"member wildcard", strings.Replace(base, `"127.0.0.1:8083"`, `"0.0.0.0:8083"`, 1), `members[2]: "0.0.0.0:8083" has a wildcard host`},
		{"member host name", strings.Replace(base, `"127.0.0.1:8083"`, `"app3.example.org:8083"`, 1), ""},
		{"gossip on the API port", base + "gossip: {bind: \"127.0.0.1:8081\"}\n", `gossip.bind: "127.0.0.1:8081" is also listen (127.0.0.1:8081): give gossip a port of its own`},
		{"gossip on a wildcard API port", strings.Replace(base, `listen: "127.0.0.1:8081"`, "listen: \"0.0.0.0:8081\"\nadvertise: \"127.0.0.1:8081\"", 1) + "gossip: {bind: \"127.0.0.1:8081\"}\n", `gossip.bind: "127.0.0.1:8081" is also listen`},
		{"gossip on the admin port", base + "gossip: {bind: \"127.0.0.1:9081\"}\n", `gossip.bind: "127.0.0.1:9081" is also admin.listen`},
		{"gossip advertise wildcard", base + "gossip: {bind: \"0.0.0.0:7946\", advertise: \"0.0.0.0:7946\"}\n", `gossip.advertise: "0.0.0.0:7946" has a wildcard host`},
		{"gossip ports of its own choosing", base + "gossip: {bind: \"127.0.0.1:30001\", advertise: \"127.0.0.1:30001\"}\n", ""},
		{"admin on the API port", base + "admin: {listen: \"127.0.0.1:8081\"}\n", `admin.listen: "127.0.0.1:8081" is also listen's address`},
		{"anti_entropy_interval", base + "anti_entropy_interval: 10ms\n", `anti_entropy_interval: "10ms" is shorter than 1s`},
		{"anti_entropy_rate", base + "anti_entropy_rate: -5\n", `anti_entropy_rate: "-5" is not from 1 to 1000000`},
		{"gossip bind", base + "gossip: {bind: nowhere}\n", `gossip.bind: "nowhere" is not host:port`},
		{"gossip default beyond 65535", strings.ReplaceAll(base, "808", "6553"), `gossip.bind: "" cannot default from listen: port 65531 + 100 is beyond 65535`},
		{"gossip probe interval", base + "gossip: {probe_interval: 1ms}\n", `gossip.probe_interval: "1ms" is shorter than 10ms`},
		{"gossip probe interval not a duration", base + "gossip: {probe_interval: soon}\n", `gossip.probe_interval`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "bad listen" {
				tt.body = strings.Replace(base, `listen: "127.0.0.1:8081"`, `listen: "nowhere"`, 1)
				tt.want = `listen: "nowhere" is not host:port`
			}
			_, err := load(t, tt.body)
			if tt.want == "" {
				if err != nil {
					t.Errorf("got %v, want no error", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	cfg, err := load(t, base)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Advertise != "127.0.0.1:8081" || cfg.Node != cfg.Advertise || cfg.VNodes != DefaultVNodes || cfg.Replicas != 2 ||
		cfg.Placement != "successor" || cfg.Routing != "forward" || cfg.Admin.Listen != DefaultAdmin || cfg.MinFreeMB != 64 {
		t.Errorf("defaults not filled: %+v", cfg)
	}
	if cfg.Gossip.Bind != "127.0.0.1:8181" || cfg.Gossip.Advertise != "127.0.0.1:8181" || cfg.Gossip.ProbeInterval != 200*time.Millisecond ||
		cfg.Gossip.RejoinInterval != 2*time.Second || cfg.WriteAcks != 2 || cfg.MemberTimeout != DefaultMemberTimeout || cfg.AntiEntropyInterval != time.Minute {
		t.Errorf("gossip and replication defaults not filled: %+v, write_acks %d, member_timeout %v", cfg.Gossip, cfg.WriteAcks, cfg.MemberTimeout)
	}
	// The gossip address others reach defaults to the advertised host
	// and the bound port.
	cfg, err = load(t, strings.Replace(base, `listen: "127.0.0.1:8081"`, "listen: \"0.0.0.0:8081\"\nadvertise: \"127.0.0.1:8081\"", 1)+"gossip: {bind: \"0.0.0.0:7946\"}\n")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Gossip.Advertise != "127.0.0.1:7946" {
		t.Errorf("gossip.advertise defaulted to %q, want 127.0.0.1:7946", cfg.Gossip.Advertise)
	}
	// One replica: one copy is all there is.
	cfg, err = load(t, base+"replicas: 1\n")
	if err != nil || cfg.WriteAcks != 1 {
		t.Errorf("replicas 1: write_acks %d, %v; want 1", cfg.WriteAcks, err)
	}
}

// TestExampleConfig: configs/appnode.yaml loads as it is.
func TestExampleConfig(t *testing.T) {
	b, err := os.ReadFile("../../configs/appnode.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The example's secret lives on a real member; here, a test key.
	cfg, err := load(t, strings.ReplaceAll(string(b), "/etc/ringfront/appnode/cluster.key", "/tmp/key"))
	if err != nil {
		t.Fatalf("configs/appnode.yaml: %v", err)
	}
	if _, err := cfg.Ring(); err != nil {
		t.Fatal(err)
	}
	if !cfg.ReadRepair || cfg.WriteAcks != 2 || cfg.Gossip.Bind != "127.0.0.1:8181" || cfg.Gossip.ProbeInterval != 200*time.Millisecond {
		t.Errorf("example's replication and gossip settings = read_repair %v, write_acks %d, gossip %+v", cfg.ReadRepair, cfg.WriteAcks, cfg.Gossip)
	}
}

// TestNodeRunAndReload runs a one-member node from a config file and
// reloads it: a good change applies, a bad one leaves the old config.
func TestNodeRunAndReload(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	os.WriteFile(key, []byte("secret\n"), 0o600)
	file := filepath.Join(dir, "appnode.yaml")
	write := func(routing, listen string) {
		body := "listen: " + listen + "\nadvertise: 127.0.0.1:18181\nmembers: [127.0.0.1:18181]\nreplicas: 1\n" +
			"data_dir: " + filepath.Join(dir, "data") + "\ncluster_secret_file: " + key +
			"\nrouting: " + routing + "\nadmin: {listen: \"127.0.0.1:0\"}\n"
		if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	loader := func() (Config, error) {
		var cfg Config
		err := config.Load(config.Options{File: file, Environ: []string{}}, &cfg)
		return cfg, err
	}
	// The API listens on port 0 through the listen key, advertised as
	// 18181: the ring only needs the advertised name.
	write("forward", "127.0.0.1:0")
	cfg, err := loader()
	if err != nil {
		t.Fatal(err)
	}
	n, err := Open(cfg, loader, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	admin := n.Admin().Addr().String()
	waitReady(t, admin)

	write("redirect", "127.0.0.1:0")
	var ans struct{ Result string }
	if err := daemon.AdminRequest(ctx, "POST", admin, nil, "/v1/reload", &ans); err != nil || ans.Result != "reloaded" {
		t.Errorf("reload to redirect = %+v, %v", ans, err)
	}
	var st Status
	if err := daemon.AdminRequest(ctx, "GET", admin, nil, "/v1/status", &st); err != nil || st.Routing != "redirect" {
		t.Errorf("status after the reload to redirect = %+v, %v", st.Routing, err)
	}
	write("sideways", "127.0.0.1:0")
	if err := daemon.AdminRequest(ctx, "POST", admin, nil, "/v1/reload", nil); err == nil || !strings.Contains(err.Error(), "sideways") {
		t.Errorf("reload with a bad routing = %v", err)
	}
	write("forward", "127.0.0.1:1")
	if err := n.Reload(ctx); err == nil || !strings.Contains(err.Error(), "cannot change on reload") {
		t.Errorf("reload with a new listen = %v", err)
	}
	var ns Status
	if err := daemon.AdminRequest(ctx, "GET", admin, nil, "/v1/status", &ns); err != nil || ns.Routing != "redirect" || ns.Node != "127.0.0.1:18181" {
		t.Errorf("status after refused reloads = %+v, %v; want routing still redirect", ns, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func waitReady(t *testing.T, admin string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("node never became ready")
}

// TestNodeIsolated: a member whose peers never answer (here: the other
// member's port has nothing behind it) says so once gossip.isolated_after
// has passed: /readyz answers 503 with why, status and /metrics show it.
func TestNodeIsolated(t *testing.T) {
	n := startNode(t, "listen: 127.0.0.1:0\nadvertise: 127.0.0.1:18191\nmembers: [127.0.0.1:18191, 127.0.0.1:1]\n"+
		"gossip: {probe_interval: 50ms, rejoin_interval: 100ms, isolated_after: 300ms}\n")
	ctx := context.Background()
	admin := n.Admin().Addr().String()
	var why string
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(b), "hears") {
				why = string(b)
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(why, "hears from none of its 1 peers") || !strings.Contains(why, "127.0.0.1:1: could not learn its gossip address") {
		t.Fatalf("/readyz = %q, want 503 saying the member hears from nobody and why", why)
	}
	var st Status
	if err := daemon.AdminRequest(ctx, "GET", admin, nil, "/v1/status", &st); err != nil {
		t.Fatal(err)
	}
	if st.MembersAlive != 1 || st.Members != 2 || !strings.Contains(st.Isolated, "hears from none") {
		t.Errorf("status: %d of %d alive, isolated %q", st.MembersAlive, st.Members, st.Isolated)
	}
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"appnode_isolated 1", "appnode_members_alive 1", "appnode_members 2"} {
		if !strings.Contains(string(b), "\n"+want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// startNode runs a node from a config of body plus a data_dir, a
// cluster secret and an admin listener on a free port, until the test
// ends.
func startNode(t *testing.T, body string) *Node {
	t.Helper()
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	os.WriteFile(key, []byte("secret\n"), 0o600)
	file := filepath.Join(dir, "appnode.yaml")
	body += "data_dir: " + filepath.Join(dir, "data") + "\ncluster_secret_file: " + key + "\nadmin: {listen: \"127.0.0.1:0\"}\n"
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	loader := func() (Config, error) {
		var cfg Config
		err := config.Load(config.Options{File: file, Environ: []string{}}, &cfg)
		return cfg, err
	}
	cfg, err := loader()
	if err != nil {
		t.Fatal(err)
	}
	n, err := Open(cfg, loader, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
	return n
}
