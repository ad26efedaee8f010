package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
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
	for _, tool := range []string{"ip", "dig", "curl", "tcpdump"} {
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
	checkNoCleartext(t, pfx, run)
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

// checkNoCleartext captures the lab bridge with tcpdump while a client
// makes a user, posts through every VIP (forwards, replication and
// fan-out between members follow) and reads the posts back, and checks
// that no token, post text or HTTP request crossed it in the clear.
// The DNS lookups do cross in the clear: they prove the capture saw the
// client's traffic.
func checkNoCleartext(t *testing.T, pfx, run string) {
	t.Helper()
	pcap := filepath.Join(run, "bridge.pcap")
	// -Z root: tcpdump would drop to its own user, who cannot write
	// into the test's directory.
	dump := exec.Command("ip", "netns", "exec", pfx+"lan", "tcpdump", "-i", "br0", "-U", "-s", "0", "-Z", "root", "-w", pcap)
	stderr, err := dump.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := dump.Start(); err != nil {
		t.Fatalf("starting tcpdump: %v", err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			dump.Process.Signal(syscall.SIGTERM)
			dump.Wait()
		}
	}
	defer stop()
	listening := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				listening <- nil
				io.Copy(io.Discard, stderr)
				return
			}
		}
		listening <- fmt.Errorf("tcpdump ended before it listened")
	}()
	select {
	case err := <-listening:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tcpdump did not start listening within 10s")
	}

	curl := func(out any, args ...string) {
		t.Helper()
		full := append([]string{"netns", "exec", pfx + "client", "curl", "-sS", "--max-time", "3", "-f",
			"--cacert", filepath.Join(run, "tls", "ca.crt"), "-H", "Content-Type: application/json"}, args...)
		b, err := exec.Command("ip", full...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, b)
		}
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				t.Fatalf("curl %v: %v: %s", args, err, b)
			}
		}
	}
	name := fmt.Sprintf("tap%d", time.Now().UnixNano()%1_000_000)
	canary := fmt.Sprintf("canary%d", time.Now().UnixNano())
	var user struct{ Token string }
	curl(&user, "-X", "POST", "-d", `{"name":"`+name+`"}`, "https://www.example.org/v1/users")
	for i, vip := range vips() {
		curl(nil, "-X", "POST", "-H", "Authorization: Bearer "+user.Token, "-d", fmt.Sprintf(`{"text":"%s %d"}`, canary, i),
			"https://"+vip+"/v1/users/"+name+"/posts")
	}
	for _, vip := range vips() {
		var page struct{ Posts []struct{ Text string } }
		curl(&page, "https://"+vip+"/v1/users/"+name+"/posts")
		if len(page.Posts) != len(vips()) {
			t.Errorf("read %d posts back through %s, want %d", len(page.Posts), vip, len(vips()))
		}
		curl(nil, "-H", "Authorization: Bearer "+user.Token, "https://"+vip+"/v1/users/"+name+"/timeline")
	}
	time.Sleep(time.Second) // replication and fan-out behind the answers
	stop()
	b, err := os.ReadFile(pcap)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("\x03www\x07example\x03org")) {
		t.Fatalf("the capture (%d bytes) holds no DNS lookup of www.example.org: it did not see the client", len(b))
	}
	for what, s := range map[string]string{"the bearer token": user.Token, "the post text": canary, "a bearer header": "Bearer ",
		"an HTTP request": "/v1/users/", "the user name": name} {
		if bytes.Contains(b, []byte(s)) {
			t.Errorf("%s (%q) crossed the lab bridge in cleartext (capture: %s)", what, s, pcap)
		}
	}
	t.Logf("captured %d bytes on the lab bridge: no token, post or request in the clear", len(b))
}
