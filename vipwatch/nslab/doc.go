// Package nslab builds a small LAN out of network namespaces for
// vipwatch's integration tests and failover benchmark: a bridge
// namespace as the switch, two frontend namespaces (fe1, fe2) and a
// client namespace, all on 198.51.100.0/24. It needs root. Every
// namespace and link it makes is named with the prefix "rfvw" and a
// per-lab tag, nothing is added to the caller's own namespace, and
// Close removes it all.
//
// The package also holds the responder, a tiny service that answers on
// the frontends (HTTP on port 80, UDP echo on port 7000) with its node
// name, so a client can tell which machine answered a request to a VIP.
package nslab
