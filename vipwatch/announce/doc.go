// Package announce sends gratuitous ARP for a VIP, so that hosts and
// switches on the segment learn which machine now holds it.
//
// Each announcement is two Ethernet-broadcast frames, because hosts
// differ in which one they act on: an ARP request and an ARP reply,
// both with sender IP = target IP = the VIP and sender MAC = the
// interface's MAC; the reply's target MAC is the interface's MAC too,
// the request's is zero (RFC 5227's announcement form).
package announce
