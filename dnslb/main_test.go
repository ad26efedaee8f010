package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ringfront/ringfront/dnslb/config"
	"github.com/ringfront/ringfront/dnslb/server"
	iconfig "github.com/ringfront/ringfront/internal/config"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := rootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

const testConfig = `listen: ["127.0.0.1:0"]
admin: {listen: "127.0.0.1:0", token_file: %q}
zones:
  - origin: example.org.
    soa: {mname: ns1.example.org., rname: hostmaster.example.org.}
    ns: [{name: ns1, addresses: ["198.51.100.2"]}]
    services:
      - name: www
        targets: ["127.0.0.1"]
        check: {type: http, port: %d, path: /healthz, interval: 100ms, timeout: 80ms}
`

// TestAdminCommands runs dnslb on loopback and drives it with status
// (table and --json), reload and drain, as an operator would.
func TestAdminCommands(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer backend.Close()
	_, port, _ := net.SplitHostPort(backend.Listener.Addr().String())
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "dnslb.yaml")
	write := func(extra string) {
		var p int
		fmt.Sscan(port, &p)
		if err := os.WriteFile(file, []byte(fmt.Sprintf(testConfig, token, p)+extra), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("")
	load := func() (*config.Config, error) { return config.Load(iconfig.Options{File: file, Environ: []string{}}) }
	cfg, err := load()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.Open(cfg, server.Options{Load: load, AdminToken: cfg.Admin.Token})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	defer func() { cancel(); srv.Wait() }()
	admin := "--admin=" + srv.AdminAddr()

	out, err := run(t, "status", admin, "--token-file", token, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var st map[string][]map[string]any
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, out)
	}
	if len(st["zones"]) != 1 || st["zones"][0]["origin"] != "example.org." || len(st["targets"]) != 1 ||
		st["targets"][0]["service"] != "www.example.org." || st["targets"][0]["address"] != "127.0.0.1" || st["targets"][0]["state"] != "up" {
		t.Errorf("status --json = %s", out)
	}
	steps := []struct {
		args []string
		want string // in the output, or in the error
		fail bool
	}{
		{args: []string{"status", "-c", file, admin}, want: "www.example.org.  127.0.0.1  up"},
		{args: []string{"status", "-c", file, "--admin-listen", srv.AdminAddr()}, want: "127.0.0.1  up"},
		{args: []string{"drain", "www.example.org", "127.0.0.1", "-c", file, admin, "--by", "ops", "--reason", "disk"}, want: "www.example.org. 127.0.0.1: up, drained=true, answered=false"},
		{args: []string{"undrain", "www.example.org", "127.0.0.1", "-c", file, admin}, want: "drained=false"},
		{args: []string{"reload", "-c", file, admin}, want: "reloaded"},
		{args: []string{"reload", "-c", file, admin, "--json"}, want: `"result": "reloaded"`},
		{args: []string{"status", admin}, want: "missing or wrong admin token", fail: true},
		{args: []string{"status", "-c", file, "--admin", "127.0.0.1"}, want: `--admin: "127.0.0.1" is not host:port`, fail: true},
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
	// The admin address and token come from the config; a refused
	// reload says why.
	write("bogus: 1\n")
	if _, err := run(t, "reload", "-c", file, admin); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("reload of a broken config = %v, want the key named", err)
	}
}
