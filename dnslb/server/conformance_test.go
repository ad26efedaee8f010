package server

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite golden files in testdata/")

// TestDNSViz runs DNSViz, a protocol checker nobody here wrote, against
// dnslb on loopback and compares its findings (errors and warnings, by
// name, query and code) with testdata/dnsviz.golden — committed empty:
// DNSViz finds nothing to report.
func TestDNSViz(t *testing.T) {
	bin, err := exec.LookPath("dnsviz")
	if err != nil {
		t.Skip("dnsviz is not installed (.ci/deps installs it): ", err)
	}
	if testing.Short() {
		t.Skip("runs DNSViz; not in -short")
	}
	ts := startTargets(t, 2)
	s := startServer(t, ts, `      - "example.org. 300 IN MX 10 mail.example.org."
      - "example.org. 300 IN TXT \"v=spf1 mx -all\""`)
	dir := t.TempDir()
	probe := filepath.Join(dir, "probe.json")
	cmd := exec.Command(bin, "probe", "-A", "-E", "-o", probe,
		"-x", "example.org+:ns1.example.org="+s.udp,
		"example.org", "www.example.org", "mail.example.org")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dnsviz probe: %v\n%s", err, out)
	}
	grok := exec.Command(bin, "grok", "-P", "-r", probe)
	out, err := grok.Output()
	if err != nil {
		t.Fatalf("dnsviz grok: %v", err)
	}
	var report map[string]any
	if err := json.Unmarshal(out, &report); err != nil {
		t.Fatalf("dnsviz grok output: %v\n%s", err, out)
	}
	var findings []string
	collect(report, "", &findings)
	slices.Sort(findings)
	got := "# DNSViz findings (errors and warnings) against dnslb; empty means none.\n" + strings.Join(findings, "\n")
	if len(findings) > 0 {
		got += "\n"
	}
	golden := filepath.Join("testdata", "dnsviz.golden")
	if *updateGolden {
		os.WriteFile(golden, []byte(got), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("DNSViz report differs from %s:\n--- want\n%s\n--- got\n%s", golden, want, got)
	}
	// The probe must have covered the names it was given.
	for _, name := range []string{"example.org.", "www.example.org.", "mail.example.org."} {
		if _, ok := report[name]; !ok {
			t.Errorf("DNSViz report has no analysis of %s", name)
		}
	}
}

// collect walks DNSViz's grok output and lists every error and warning
// as "path code: description".
func collect(v any, path string, out *[]string) {
	switch o := v.(type) {
	case map[string]any:
		for k, sub := range o {
			if k == "errors" || k == "warnings" {
				list, _ := sub.([]any)
				for _, e := range list {
					m, _ := e.(map[string]any)
					*out = append(*out, fmt.Sprintf("%s %s %v: %v", path, k, m["code"], m["description"]))
				}
				continue
			}
			collect(sub, path+"/"+k, out)
		}
	case []any:
		for _, sub := range o {
			collect(sub, path, out)
		}
	}
}
