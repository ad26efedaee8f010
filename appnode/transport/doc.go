// Package transport carries every request between appnode members:
// client requests forwarded to the member that answers for their user
// (Transport.Forward, every forwarding rule in forward.go) and the
// members' own calls (Transport.Call: replication, hints, fan-out,
// merges, digests), over one kind of connection, the member link
// (package link), with signed HTTP only for live streams, for a member
// that does not offer links and when links are turned off
// (forward_over: http). It also holds what both ends share: how a request is known to
// come from a member (sign.go), and the JSON bodies and error answers
// of member calls (json.go).
//
// The link won against HTTP/2 cleartext from the standard library by
// CPU per forwarded request: a forward over h2c costs 2.6 times one over
// a link (bench/appnode/RESULTS.md).
package transport
