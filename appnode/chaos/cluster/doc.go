// Package cluster is the chaos test's lab: network namespaces on a
// bridge with veth cables, the nftables set each member's namespace
// drops traffic with (topology.go, firewall.go), and the appnode
// processes in them with their configs, data and clocks (members.go),
// built by BuildAppnode (build.go).
//
// It needs root, ip(8) and nft(8) (RequireTools); CleanStale removes
// what an interrupted run left behind.
package cluster
