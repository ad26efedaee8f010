// Package server runs dnslb (Open, then Run): the health monitor, the
// UDP and TCP listeners, the admin API, reloads and graceful shutdown;
// FormatStatus is `dnslb status`'s table.
//
// UDP is served by one goroutine per SO_REUSEPORT socket, answering from
// the current [authority.Snapshot]'s precomputed wire answers and falling
// back to the full answer builder; TCP is served by github.com/miekg/dns
// with bounded connections and idle timeouts (RFC 7766).
package server
