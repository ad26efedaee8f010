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
// that check-config prints them with the key path masked and says when
// the secret file is not usable on this machine.
func TestExampleConfigs(t *testing.T) {
	// The files' own values count, not an override from the environment.
	t.Setenv("VIPWATCH_SECRET_FILE", "")
	os.Unsetenv("VIPWATCH_SECRET_FILE")
	for _, node := range []string{"fe1", "fe2"} {
		out, errOut, err := runCLI(t, "check-config", "--config", filepath.Join("..", "configs", "vipwatch-"+node+".yaml"))
		if err != nil {
			t.Fatalf("check-config %s: %v", node, err)
		}
		for _, want := range []string{"node: " + node, "interval: 100ms", "dead_after: 300ms", "secret_file: /etc/ringfront/vipwatch/vipwatch.key"} {
			if !strings.Contains(out, want) {
				t.Errorf("check-config %s output lacks %q:\n%s", node, want, out)
			}
		}
		if _, statErr := os.Stat("/etc/ringfront/vipwatch/vipwatch.key"); statErr != nil && !strings.Contains(errOut, "warning: secret_file") {
			t.Errorf("check-config %s did not warn about the missing secret file; stderr %q", node, errOut)
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
