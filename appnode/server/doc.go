// Package server is appnode's HTTP API: the public /v1/ routes, the
// node-to-node /internal/v1/ routes authenticated with the cluster
// secret, and the routing that sends every request for a user to the
// member that owns it.
//
// Any member accepts any request. A request for a user this member does
// not own is forwarded to the owner (httputil.ReverseProxy) or answered
// with 307 and the owner's URL, by this member's ring. A forwarded
// request carries a hop count, so members with different rings cannot
// bounce a request between them forever.
//
// Home timelines are built by fan-out on write (fanout.go): posts are
// pushed into followers' inboxes through a durable outbox, and read back
// with one range scan; live timelines are server-sent event streams of
// new inbox entries (stream.go). Every member also serves the web page
// (package web) at /.
package server
