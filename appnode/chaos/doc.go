// Package chaos is appnode's Jepsen-style test: a cluster of real
// appnode members (built with -tags chaos) in network namespaces it
// creates, concurrent clients that record every operation with its
// outcome, a nemesis that injects a seeded schedule of faults
// (partitions, an isolated member, pauses, kill -9, a wiped disk, a
// clock offset), and a checker that reads everything back through every
// member after healing.
//
// This package is the runner; two packages below it hold the rest:
//   - cluster: the namespaces, bridge, veth cables and nftables cuts,
//     and the appnode processes with their configs, data and clocks;
//   - history: what a run records (operations and their outcomes, the
//     faults, outages and windows) and the checks over it (safety,
//     per-window availability, the clock fault's confirmation), pure
//     functions of a history and the members' snapshots.
//
// Here:
//   - nemesis.go: the fault schedule (a pure function of the seed) and
//     how each fault is applied and healed;
//   - workload.go: the plain and smart clients that make operations;
//   - snapshot.go: reading the cluster's state through every member;
//   - run.go, report.go: one run of a profile and its printed report.
//
// Run needs root, ip(8) and nft(8). `make chaos` runs the full schedule
// of both profiles; `go test ./appnode/chaos` a bounded one.
package chaos
