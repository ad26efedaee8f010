// Package member is one vipwatch daemon of a pair: it wires the state
// machine (vipwatch/fsm) to the heartbeat socket, the interface's
// addresses, gratuitous ARP and the link watch, and serves its status
// and metrics on the admin listener. Daemon is vipwatch as systemd runs
// it (OpenDaemon, then Run): the member with its admin API, reloads and
// systemd notifications; ReleaseAll and Move are the release-all,
// handover and takeback commands' work.
//
// The OS sits behind small interfaces — an address table, an announcer
// (gratuitous ARP, neighbour advertisements) and the askers behind the
// witness rounds and VIP probes — so the daemon loop is tested with
// fakes that record their effects as text; the real ones
// (vipwatch/iface, vipwatch/announce, vipwatch/probe) are tested in
// network namespaces.
package member
