package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
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
	out, err := run(t, "check-config", "-c", "../configs/appnode.yaml")
	if err != nil {
		t.Fatalf("check-config on the example: %v", err)
	}
	for _, want := range []string{"node: app1", "routing: forward", "# ring ", "3 members × 128 vnodes"} {
		if !strings.Contains(out, want) {
			t.Errorf("check-config output lacks %q:\n%s", want, out)
		}
	}
	_, err = run(t, "check-config", "-c", "../configs/appnode.yaml", "--routing", "sideways")
	if err == nil || !strings.Contains(err.Error(), `routing: "sideways"`) {
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
