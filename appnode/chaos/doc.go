// Package chaos is appnode's Jepsen-style test: a cluster of real
// appnode members (built with -tags chaos) in network namespaces it
// creates, concurrent clients that record every operation with its
// outcome, a nemesis that injects a seeded schedule of faults
// (partitions, an isolated member, pauses, kill -9, a wiped disk, a
// clock offset), and a checker that reads everything back through every
// member after healing.
//
// The parts:
//   - topology.go, firewall.go: namespaces, a bridge, veth cables, and
//     the nftables set each member's namespace drops traffic with;
//   - members.go: the appnode processes, their configs, data and clocks;
//   - nemesis.go: the fault schedule (a pure function of the seed) and
//     how each fault is applied and healed;
//   - history.go, workload.go: operations, their outcomes, and the
//     plain and smart clients that make them;
//   - snapshot.go: reading the cluster's state through every member;
//   - checker.go, availability.go: safety checks and per-window
//     availability figures, pure functions of a history and snapshots;
//   - run.go, report.go: one run of a profile and its printed report.
//
// Run needs root, ip(8) and nft(8). `make chaos` runs the full schedule
// of both profiles; `go test ./appnode/chaos` a bounded one.
package chaos
