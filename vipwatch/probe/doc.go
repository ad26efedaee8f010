// Package probe asks the LAN whether addresses answer: ARP requests for
// IPv4 addresses, neighbour solicitations for IPv6 addresses, and ICMP
// echo requests. vipwatch uses it for its witnesses (can this machine
// still reach the network?) and, before it claims a silent partner's
// VIP, for the VIP itself (does another machine still hold it?).
//
// Every prober takes a connection in its constructor, so tests drive
// it with a fake one; the Dial functions open the real sockets. A
// prober's Ask is safe for concurrent use: calls take turns on its
// connection.
package probe
