// Package history is the record of a chaos run and the checks over it.
//
//   - history.go: operations (Op), their outcomes, and the History the
//     clients append to;
//   - fault.go: the faults of a schedule and the outages they caused;
//   - checker.go: the members' read-back state (Snapshot) and the
//     safety checks (Check, Agreement);
//   - availability.go: fault windows and the per-window availability
//     figures against the targets (MinShare, MaxP99);
//   - clock.go: whether a clock fault moved its member's clock.
//
// Everything here is a pure function of a history, its windows and
// snapshots: no processes, no network.
package history
