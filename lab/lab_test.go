package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestLab brings the whole lab up under its own namespace prefix, runs
// every drill once (the drill command fails if any check fails: a VIP
// not home, DNS answering a dead VIP, an acknowledged write lost), brings
// it down and checks that nothing is left behind.
func TestLab(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the lab needs root (network namespaces); CI runs as root")
	}
	if testing.Short() {
		t.Skip("the lab takes a few minutes; not in -short")
	}
	for _, tool := range []string{"ip", "dig", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing (.ci/deps installs it): %v", tool, err)
		}
	}
	bin := t.TempDir()
	for _, cmd := range []string{"dnslb", "vipwatch", "appnode", "lab"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(bin, cmd), "../"+cmd).CombinedOutput()
		if err != nil {
			t.Fatalf("building %s: %v\n%s", cmd, err, out)
		}
	}
	pfx := fmt.Sprintf("rft%d-", os.Getpid()%100000)
	run := t.TempDir()
	lab := func(args ...string) (string, error) {
		full := append([]string{"-prefix", pfx, "-bin", bin, "-configs", "../configs", "-run", run}, args...)
		out, err := exec.Command(filepath.Join(bin, "lab"), full...).CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		if out, err := lab("down"); err != nil {
			t.Errorf("lab down: %v\n%s", err, out)
		}
	})
	out, err := lab("up")
	t.Logf("lab up:\n%s", out)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	// Running it twice is fine.
	if out, err := lab("up"); err != nil || !strings.Contains(out, "already up") {
		t.Errorf("second lab up: %v\n%s", err, out)
	}
	out, err = lab("drill")
	t.Logf("lab drill:\n%s", out)
	if err != nil {
		t.Errorf("drills: %v", err)
	}
	checkReports(t, run, out)
	ps, _ := loadProcs(run)
	out, err = lab("down")
	if err != nil {
		t.Fatalf("lab down: %v\n%s", err, out)
	}
	// Nothing left: no namespace, no process, no resolver file.
	list, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(list), pfx) {
		t.Errorf("namespaces left behind:\n%s", list)
	}
	for _, p := range ps {
		if p.alive() {
			t.Errorf("%s on %s (pid %d) still running", p.Name, p.Host, p.PID)
		}
	}
	if _, err := os.Stat("/etc/netns/" + pfx + "client"); err == nil {
		t.Errorf("/etc/netns/%sclient left behind", pfx)
	}
}

// checkReports: every drill left an HTML report whose numbers are the
// ones it printed, and the run left a summary page with each drill.
func checkReports(t *testing.T, run, out string) {
	t.Helper()
	starts := regexp.MustCompile(`(?m)^drill ([a-z-]+): `).FindAllStringSubmatchIndex(out, -1)
	if len(starts) != len(drills) {
		t.Errorf("%d drills in the output, want %d", len(starts), len(drills))
	}
	summary, err := os.ReadFile(filepath.Join(run, "drills.html"))
	if err != nil {
		t.Errorf("no summary page: %v", err)
	}
	for i, m := range starts {
		name := out[m[2]:m[3]]
		end := len(out)
		if i+1 < len(starts) {
			end = starts[i+1][0]
		}
		b, err := os.ReadFile(filepath.Join(run, "drill-"+name+".html"))
		if err != nil {
			t.Errorf("drill %s: no report: %v", name, err)
			continue
		}
		got := figuresOf(t, string(b))
		for k, v := range tableFigures(t, out[m[0]:end]) {
			if got[k] != v {
				t.Errorf("drill %s: the report's %s is %q, the table's %q", name, k, got[k], v)
			}
		}
		if !strings.Contains(string(b), `class="fault"`) || !strings.Contains(string(b), `class="req `) {
			t.Errorf("drill %s: the report's timeline has no fault or no requests", name)
		}
		if !strings.Contains(string(summary), `id="figures-`+name+`"`) {
			t.Errorf("drill %s is not on the summary page", name)
		}
	}
}
