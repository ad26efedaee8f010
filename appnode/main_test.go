package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ringfront/ringfront/appnode/node"
	"github.com/ringfront/ringfront/internal/config"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestCheckConfig(t *testing.T) {
	// The example's secret lives on a real member: without it
	// check-config fails as serve would, naming the key.
	if _, err := os.Stat("/etc/ringfront/appnode/cluster.key"); err != nil {
		_, err := run(t, "check-config", "-c", "../configs/appnode.yaml")
		if err == nil || !strings.Contains(err.Error(), `cluster_secret_file: "/etc/ringfront/appnode/cluster.key" does not exist`) {
			t.Errorf("check-config without the secret = %v", err)
		}
	}
	key := filepath.Join(t.TempDir(), "cluster.key")
	if err := os.WriteFile(key, []byte("cluster secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("APPNODE_CLUSTER_SECRET_FILE", key)
	out, err := run(t, "check-config", "-c", "../configs/appnode.yaml")
	if err != nil {
		t.Fatalf("check-config on the example: %v", err)
	}
	for _, want := range []string{"node: app1", "routing: forward", "# ring ", "3 members × 256 vnodes"} {
		if !strings.Contains(out, want) {
			t.Errorf("check-config output lacks %q:\n%s", want, out)
		}
	}
	_, err = run(t, "check-config", "-c", "../configs/appnode.yaml", "--routing", "sideways")
	if err == nil || !strings.Contains(err.Error(), `--routing (routing): "sideways"`) {
		t.Errorf("check-config with a bad flag = %v", err)
	}
}

func TestMain(m *testing.M) {
	if serveChild() {
		return
	}
	os.Unsetenv("APPNODE_SERVER")
	os.Exit(m.Run())
}

// TestAdminCommands runs a member on loopback and drives it with
// status (table and --json) and reload, as an operator would.
func TestAdminCommands(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	token := filepath.Join(dir, "token")
	for _, f := range []string{key, token} {
		if err := os.WriteFile(f, []byte("secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "appnode.yaml")
	write := func(routing string) {
		body := "listen: 127.0.0.1:0\nadvertise: 127.0.0.1:18191\nmembers: [127.0.0.1:18191]\nreplicas: 1\n" +
			"data_dir: " + filepath.Join(dir, "data") + "\ncluster_secret_file: " + key +
			"\nrouting: " + routing + "\nadmin: {listen: \"127.0.0.1:0\", token_file: " + token + "}\n"
		if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("forward")
	loader := func() (node.Config, error) {
		var cfg node.Config
		err := config.Load(config.Options{File: file, Environ: []string{}}, &cfg)
		return cfg, err
	}
	cfg, err := loader()
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(cfg, loader, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() { cancel(); <-done }()
	admin := "--admin=" + n.Admin().Addr().String()

	out, err := run(t, "status", "-c", file, admin, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Node    string `json:"node"`
		Routing string `json:"routing"`
		Ring    struct {
			Members []string `json:"members"`
		} `json:"ring"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, out)
	}
	if st.Node != "127.0.0.1:18191" || st.Routing != "forward" || len(st.Ring.Members) != 1 {
		t.Errorf("status --json = %s", out)
	}
	write("redirect")
	steps := []struct {
		args []string
		want string // in the output, or in the error
		fail bool
	}{
		{args: []string{"reload", "-c", file, admin}, want: "reloaded"},
		{args: []string{"status", "-c", file, admin}, want: "routing        redirect"},
		{args: []string{"status", "-c", file, "--admin-listen", n.Admin().Addr().String()}, want: "advertise      127.0.0.1:18191"},
		{args: []string{"status", admin}, want: "missing or wrong admin token", fail: true},
		{args: []string{"reload", admin, "--token-file", filepath.Join(dir, "nope")}, want: `--token-file: "` + filepath.Join(dir, "nope") + `" does not exist`, fail: true},
		{args: []string{"status", "-c", file, "--admin", "127.0.0.1:http"}, want: `--admin: "127.0.0.1:http" has no valid port`, fail: true},
	}
	for _, s := range steps {
		t.Run(strings.Join(s.args[:2], " "), func(t *testing.T) {
			out, err := run(t, s.args...)
			if s.fail {
				if err == nil || !strings.Contains(err.Error(), s.want) {
					t.Errorf("%v = %q, %v; want an error with %q", s.args, out, err, s.want)
				}
				return
			}
			if err != nil || !strings.Contains(out, s.want) {
				t.Errorf("%v = %q, %v; want %q", s.args, out, err, s.want)
			}
		})
	}
	write("sideways")
	if _, err := run(t, "reload", "-c", file, admin); err == nil || !strings.Contains(err.Error(), `"sideways"`) {
		t.Errorf("reload of a bad routing = %v, want the value named", err)
	}
}
