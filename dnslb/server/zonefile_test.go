package server

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/ringfront/ringfront/internal/daemon"
)

// A zone file is read at start and at every reload; a broken one is
// refused with its file and line, and the zone loaded before keeps
// serving.
func TestServeZoneFileReload(t *testing.T) {
	ts := startTargets(t, 1)
	s := startServer(t, ts, "")
	dir := filepath.Dir(s.cfgPath)
	zone := filepath.Join(dir, "example.org.zone")
	withFile := func() {
		t.Helper()
		b, err := os.ReadFile(s.cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		body := strings.Replace(string(b), "    records:\n", "    zone_file: example.org.zone\n    records:\n", 1)
		if err := os.WriteFile(s.cfgPath, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(zone, []byte("$TTL 300\napi IN A 198.51.100.30\n*.apps IN A 198.51.100.90\nwww IN A 192.0.2.1\n"), 0o600)
	withFile()
	ctx := t.Context()
	if err := daemon.AdminRequest(ctx, "POST", s.admin, nil, "/v1/reload", nil); err != nil {
		t.Fatal(err)
	}
	if got := answered(ask(t, "udp", s.udp, "api.example.org.", dns.TypeA)); !slices.Equal([]string{"198.51.100.30"}, got) {
		t.Errorf("api from the zone file = %v", got)
	}
	if got := answered(ask(t, "udp", s.udp, "x.apps.example.org.", dns.TypeA)); !slices.Equal([]string{"198.51.100.90"}, got) {
		t.Errorf("wildcard from the zone file = %v", got)
	}
	// The service overrides the file's www record.
	if got := answered(ask(t, "udp", s.udp, "www.example.org.", dns.TypeA)); slices.Contains(got, "192.0.2.1") || len(got) != 1 {
		t.Errorf("www = %v, want the service's target only", got)
	}

	os.WriteFile(zone, []byte("$TTL 300\napi IN A 198.51.100.30\nbroken IN A 198.51.100\n"), 0o600)
	err := daemon.AdminRequest(ctx, "POST", s.admin, nil, "/v1/reload", nil)
	if err == nil || !strings.Contains(err.Error(), `zones[0].zone_file: "example.org.zone" is not a valid zone file: example.org.zone: dns: bad A A: "198.51.100" at line: 3`) {
		t.Errorf("reload with a broken zone file = %v, want the file, the line and what is wrong", err)
	}
	if got := answered(ask(t, "udp", s.udp, "x.apps.example.org.", dns.TypeA)); !slices.Equal([]string{"198.51.100.90"}, got) {
		t.Errorf("after a refused reload the old zone answers %v", got)
	}

	os.Remove(zone)
	err = daemon.AdminRequest(ctx, "POST", s.admin, nil, "/v1/reload", nil)
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("reload with the zone file gone = %v", err)
	}
}
