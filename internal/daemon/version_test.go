package daemon

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
)

func testRoot() *cobra.Command {
	root := &cobra.Command{Use: "thing", Short: "A test daemon"}
	root.AddCommand(&cobra.Command{Use: "serve", Short: "Serve", Run: func(*cobra.Command, []string) {}})
	AddVersion(root)
	AddManPages(root)
	return root
}

func TestVersionFlagAndCommand(t *testing.T) {
	want := VersionLine("thing") + "\n"
	if !strings.HasPrefix(want, "thing "+Version()+" (revision ") {
		t.Fatalf("VersionLine = %q", want)
	}
	for _, args := range [][]string{{"--version"}, {"version"}} {
		root := testRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs(args)
		if err := root.Execute(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if got := out.String(); got != want {
			t.Errorf("%v printed %q, want %q", args, got, want)
		}
	}
}

func TestBuildInfo(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(BuildInfo("thing"))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 1 || mfs[0].GetName() != "thing_build_info" {
		t.Fatalf("gathered %v, want thing_build_info", mfs)
	}
	m := mfs[0].GetMetric()[0]
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if m.GetGauge().GetValue() != 1 || labels["version"] != Version() || labels["goversion"] == "" {
		t.Errorf("thing_build_info = %v %v, want 1 with version %q", m.GetGauge().GetValue(), labels, Version())
	}
}

func TestManPages(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SOURCE_DATE_EPOCH", "1767225600") // 2026-01-01
	root := testRoot()
	root.SetArgs([]string{"man", dir})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"thing.8", "thing-serve.8", "thing-version.8"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(`"Jan 2026"`)) {
			t.Errorf("%s is not dated from SOURCE_DATE_EPOCH:\n%s", name, b)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "thing-man.8")); err == nil {
		t.Error("the hidden man command has a man page")
	}
	b, _ := os.ReadFile(filepath.Join(dir, "thing.8"))
	if !bytes.Contains(b, []byte("/etc/ringfront/thing.yaml")) {
		t.Errorf("thing.8 does not name the config file:\n%s", b)
	}
}
