// Package server is appnode's HTTP API: the public /v1/ routes
// (handlers.go registers them; the handlers are the domain packages':
// account for users and tokens, posts for posts and home timelines,
// follow for the follow graph), the live timelines' route (stream.go;
// the events themselves are package live's), the ring and health routes,
// the member's /internal/v1/ routes (registered by the subsystems,
// behind the cluster's authentication), and the routing that sends
// every request for a user to the member that answers for it: served
// here, forwarded through transport.Transport.Forward, or answered with
// 307 and that member's URL (server.go). A client's request is charged
// to its network's rate limit (limits.Gate) where it enters the cluster.
//
// Any member accepts any request. A forwarded request carries a hop
// count, so members with different rings cannot bounce a request
// between them for ever.
//
// A Server wires one member's subsystems together: the cluster view
// (package peer), replication (replica), anti-entropy (antientropy),
// fan-out (fanout), timelines (timeline), rate limits (limits) and the
// transport; every member also serves the web page (package web) at /.
package server
