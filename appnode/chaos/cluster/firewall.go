package cluster

import (
	"net/netip"
	"strings"
)

// nftTable is the nftables table each member's namespace gets: a set
// of addresses whose packets it drops both ways. Faults change only the
// set, so a cut and a heal are each one atomic nft transaction.
const nftTable = "rfchaos"

// nftSetup creates the table: silent drops (no ICMP, no reset), so a
// cut member looks like a partition, not like a closed port.
func nftSetup() string {
	return "add table inet " + nftTable + "\n" +
		"add set inet " + nftTable + " cut { type ipv4_addr; }\n" +
		"add chain inet " + nftTable + " in { type filter hook input priority 0; policy accept; }\n" +
		"add chain inet " + nftTable + " out { type filter hook output priority 0; policy accept; }\n" +
		"add rule inet " + nftTable + " in ip saddr @cut drop\n" +
		"add rule inet " + nftTable + " out ip daddr @cut drop\n"
}

// nftCut replaces the set with addrs (none: a heal).
func nftCut(addrs []netip.Addr) string {
	s := "flush set inet " + nftTable + " cut\n"
	if len(addrs) == 0 {
		return s
	}
	parts := make([]string, len(addrs))
	for i, a := range addrs {
		parts[i] = a.String()
	}
	return s + "add element inet " + nftTable + " cut { " + strings.Join(parts, ", ") + " }\n"
}
