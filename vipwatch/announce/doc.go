// Package announce sends gratuitous ARP for a VIP, so that hosts and
// switches on the segment learn which machine now holds it.
//
// Each announcement is two Ethernet-broadcast frames, because hosts
// differ in which one they act on: an ARP request and an ARP reply,
// both with sender IP = target IP = the VIP and sender MAC = the
// interface's MAC; the reply's target MAC is the interface's MAC too,
// the request's is zero (RFC 5227's announcement form).
//
// IPv6 VIPs are announced with one unsolicited neighbour advertisement
// to all nodes (ff02::1) each time, with the override flag set and the
// interface's MAC in the target link-layer address option (RFC 4861,
// section 7.2.6); Mux picks the way by the VIP's family.
package announce
