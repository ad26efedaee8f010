package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRoot()
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err = root.Execute()
	return out.String(), errOut.String(), err
}

// TestExampleConfigs checks that the shipped example configs load, and
// that check-config prints them with the key path masked, and refuses
// them (exit status 1) when the secret file is missing, as run would.
func TestExampleConfigs(t *testing.T) {
	key := filepath.Join(t.TempDir(), "vipwatch.key")
	if err := os.WriteFile(key, []byte("pair key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, node := range []string{"fe1", "fe2"} {
		cfg := filepath.Join("..", "configs", "vipwatch-"+node+".yaml")
		t.Setenv("VIPWATCH_SECRET_FILE", key)
		out, _, err := runCLI(t, "check-config", "--config", cfg)
		if err != nil {
			t.Fatalf("check-config %s: %v", node, err)
		}
		for _, want := range []string{"node: " + node, "interval: 100ms", "dead_after: 300ms", "secret_file: " + key} {
			if !strings.Contains(out, want) {
				t.Errorf("check-config %s output lacks %q:\n%s", node, want, out)
			}
		}
		if strings.Contains(out, "pair key") {
			t.Errorf("check-config %s prints the key:\n%s", node, out)
		}
		t.Setenv("VIPWATCH_SECRET_FILE", filepath.Join(t.TempDir(), "missing.key"))
		if _, _, err := runCLI(t, "check-config", "--config", cfg); err == nil || !strings.Contains(err.Error(), "VIPWATCH_SECRET_FILE (secret_file): ") {
			t.Errorf("check-config %s with a missing secret: %v, want an error naming the variable", node, err)
		}
	}
}

func TestCheckConfigErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct{ name, body, want string }{
		{"unknown key", "node: fe1\nnodes: x\n", "nodes: unknown key"},
		{"bad duration", "node: fe1\ninterval: 5\n", `interval: "5" is not a duration`},
		{"bad vip", "node: fe1\ninterface: eth0\nbind: 198.51.100.11:7201\npeer: 198.51.100.12:7201\nsecret_file: /k\nhome_vips: [198.51.100.300/24]\n", "home_vips"},
		{"missing peer", "node: fe1\ninterface: eth0\nbind: 198.51.100.11:7201\n", "peer: is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".yaml")
			if err := os.WriteFile(p, []byte(tt.body), 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, err := runCLI(t, "check-config", "--config", p)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("check-config error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
