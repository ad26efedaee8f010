// Package fsm is vipwatch's decision logic: a pure, deterministic state
// machine with no I/O. Time enters only as ticks, heartbeats and link
// changes enter as method calls, and every effect leaves as an [Action]
// (claim, release, announce, send) for the caller to carry out.
//
// # Protocol
//
// Each daemon of a pair has home VIPs and holds its partner's VIPs while
// the partner is gone. The rules that keep a VIP on one machine at a
// time while heartbeats flow:
//
//   - A daemon claims a home VIP while its partner is up only after a
//     heartbeat from the partner that (a) acknowledges a heartbeat this
//     daemon sent in its current run and (b) does not list the VIP. The
//     acknowledgement proves the partner's silence timer was reset, so
//     the partner will not claim the VIP before it misses this daemon
//     for a whole dead interval.
//   - A daemon claims its partner's VIPs only when the partner is gone:
//     silent for the dead interval, or reporting that it is stopping or
//     that its link is down, or — faster — silent for an interval and a
//     half after its machine refused a heartbeat (ICMP port unreachable:
//     the machine is up but no daemon listens).
//   - Hand-back: a returning home daemon with preempt sets the reclaim
//     flag in its heartbeats; the holder releases first and says so in
//     its next heartbeat, and only then does the home daemon claim.
//   - After a partition heals, a VIP that both hold stays with its home
//     daemon, which re-announces it; the other releases it.
//
// A Machine is not safe for concurrent use.
package fsm
