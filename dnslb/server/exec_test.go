package server

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/ringfront/ringfront/internal/daemon"
)

// An exec check decides a target's health by its exit status, through
// the same rise and fall as the other checks, and status shows the first
// line of its output.
func TestServeExecCheck(t *testing.T) {
	dir := t.TempDir()
	script := fmt.Sprintf(`if [ -e %s/down-$0 ]; then echo "maintenance on $0"; exit 1; fi; echo fine`, dir)
	cfg := fmt.Sprintf(`
listen: ["127.0.0.1:0"]
admin: {listen: "127.0.0.1:0"}
zones:
  - origin: example.org.
    soa: {mname: ns1.example.org., rname: hostmaster.example.org.}
    ns: [{name: ns1, addresses: ["198.51.100.2"]}]
    services:
      - name: www
        targets: ["127.0.0.21", "127.0.0.22"]
        check: {type: exec, command: ["/bin/sh", "-c", %q], interval: 500ms, timeout: 450ms, rise: 2, fall: 2}
`, script)
	path := filepath.Join(dir, "dnslb.yaml")
	os.WriteFile(path, []byte(cfg), 0o600)
	s, stop, err := startOnce(t, path)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if got := answered(ask(t, "udp", s.udp, "www.example.org.", dns.TypeA)); len(got) != 2 {
		t.Fatalf("answer with both healthy = %v", got)
	}
	os.WriteFile(filepath.Join(dir, "down-127.0.0.21"), nil, 0o600)
	waitFor(t, "the failing target leaves the answers", 10*time.Second, func() bool {
		return slices.Equal([]string{"127.0.0.22"}, answered(ask(t, "udp", s.udp, "www.example.org.", dns.TypeA)))
	})
	var list []TargetStatus
	if err := daemon.AdminRequest(t.Context(), "GET", s.admin, nil, "/v1/targets", &list); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(list, func(t TargetStatus) bool { return t.Address == "127.0.0.21" })
	if i < 0 || list[i].State != "down" || list[i].LastResult != "fail: exit status 1: maintenance on 127.0.0.21" {
		t.Errorf("status = %+v", list)
	}
	os.Remove(filepath.Join(dir, "down-127.0.0.21"))
	waitFor(t, "the target comes back after rise successes", 10*time.Second, func() bool {
		return len(answered(ask(t, "udp", s.udp, "www.example.org.", dns.TypeA))) == 2
	})
}
