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
//   - A heartbeat counts — it shows the partner is up, and its state,
//     the VIPs it holds, gives or wants back are acted on — only if it
//     is from the partner boot that has proved itself in this daemon's
//     current run: by a heartbeat whose ack or echo names one this
//     daemon sent in the run, within the last two dead intervals. The
//     boot id is random at each start and a run's sequence numbers are
//     new, so no recording made before the run can pass (issue 20);
//     later heartbeats of the proved boot pass on the Guard's sequence
//     numbers. Any other heartbeat (a partner that has just started, a
//     recording played on the LAN) is echoed at once, so that a live
//     partner proves itself within a round trip, and otherwise ignored:
//     a partner that never proves itself is silent. The round trip must
//     fit in the dead interval with room to spare (on one L2 segment it
//     takes well under a millisecond).
//   - A daemon claims a home VIP while its partner is up only after a
//     heartbeat from the partner that (a) acknowledges a heartbeat this
//     daemon sent in its current run and (b) does not list the VIP. The
//     acknowledgement (not the echo: a partner acknowledges only a boot
//     that has proved itself to it) proves the partner's silence timer
//     was reset, so the partner will not claim the VIP before it misses
//     this daemon for a whole dead interval.
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
//   - Planned moves are make before break. A daemon that gives a home
//     VIP away (Handover, or a failing tracked service: Track) lists it
//     in its heartbeats' Gives; the partner claims and announces it
//     while the giver still holds it, and the giver releases it once
//     the partner's heartbeat lists it. Takeback (and a recovered
//     service, with preempt) claims first; the partner releases on the
//     next heartbeat. So a planned move holds the VIP on both machines
//     for one heartbeat exchange and never on neither. A daemon whose
//     service fails (FlagTrackDown) takes nothing given to it, and its
//     partner then keeps what it gives.
//   - A held VIP that disappears from the interface (Removed) is put
//     back and announced again.
//
// # Split brain
//
// With a witness (Config.Witness) a partner that is only silent may
// be cut off on the heartbeat path alone, still holding its VIPs. So a
// VIP is taken from a silent partner only after a Probe, asked in the
// silence, found it free: no machine answered for it (ARP, NDP) while a
// witness answered (which shows the silence is the LAN's, not this
// machine's own cut cable). A partner that said it stops or is in
// fault, or whose machine refused a heartbeat, is taken over without a
// probe. A daemon that reaches no witness (Witness(false)) is in fault:
// it claims nothing; it releases a VIP as soon as its running partner
// holds it too, or everything after the fault release time if it does
// not hear the partner; with the partner heard and in fault as well,
// both keep what they hold. Leaving the fault starts a new run, and
// what it still holds is announced again at once.
//
// # Heartbeat versions
//
// Version 1 heartbeats (daemons from before the echo) have no echo, and
// their ack names the last heartbeat the sender heard, whatever it
// proved; such an ack of this run proves the sender just as well. A
// daemon writes version 1 to a partner whose heartbeats are version 1,
// acknowledging as version 1 does, so a pair can be upgraded one
// machine at a time; the version 1 side stays open to replays after
// its own restart until it is upgraded.
//
// A Machine is not safe for concurrent use.
package fsm
