package cluster

import (
	"net/netip"
	"testing"
)

func TestNFTScripts(t *testing.T) {
	if got, want := nftCut(nil), "flush set inet rfchaos cut\n"; got != want {
		t.Errorf("heal script %q, want %q", got, want)
	}
	got := nftCut([]netip.Addr{memberAddr(0), clientAddr})
	want := "flush set inet rfchaos cut\nadd element inet rfchaos cut { 198.51.100.11, 198.51.100.100 }\n"
	if got != want {
		t.Errorf("cut script %q, want %q", got, want)
	}
	want = "add table inet rfchaos\n" +
		"add set inet rfchaos cut { type ipv4_addr; }\n" +
		"add chain inet rfchaos in { type filter hook input priority 0; policy accept; }\n" +
		"add chain inet rfchaos out { type filter hook output priority 0; policy accept; }\n" +
		"add rule inet rfchaos in ip saddr @cut drop\n" +
		"add rule inet rfchaos out ip daddr @cut drop\n"
	if got := nftSetup(); got != want {
		t.Errorf("setup script:\n%s\nwant:\n%s", got, want)
	}
}

func TestNamespacePID(t *testing.T) {
	for _, tc := range []struct {
		ns   string
		pid  int
		ours bool
	}{
		{"rfc1234a-m1", 1234, true},
		{"rfc77b-br", 77, true},
		{"rfc1234a", 0, false}, // no host part
		{"rfca-m1", 0, false},  // no pid
		{"rf-client", 0, false},
		{"rfvw12a-fe1", 0, false},
	} {
		pid, ours := namespacePID(tc.ns)
		if pid != tc.pid || ours != tc.ours {
			t.Errorf("namespacePID(%q) = %d, %v; want %d, %v", tc.ns, pid, ours, tc.pid, tc.ours)
		}
	}
}
