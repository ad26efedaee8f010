// Package member is one vipwatch daemon of a pair: it wires the state
// machine (vipwatch/fsm) to the heartbeat socket, the interface's
// addresses, gratuitous ARP and the link watch, and serves its status
// and metrics on the admin listener.
//
// The OS sits behind two small interfaces, an address table and an
// announcer, so the daemon loop is tested with fakes that record their
// effects as text; the real ones (vipwatch/iface, vipwatch/announce)
// are tested in network namespaces.
package member
