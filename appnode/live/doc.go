// Package live serves live timelines: a user's new inbox entries, as
// they arrive through the fan-out hub (package fanout), written to the
// client as server-sent events, with a replay from the inbox for a
// client that resumes (Last-Event-ID) or lags, and the posts of
// not-pushed followees polled for at each heartbeat (stream.go). A
// stream whose token is revoked ends: before events go out it asks
// whether the token is still good, at most once per AuthorizedEvery on
// the member's clock, and at every heartbeat.
//
// The API server (package server) routes the request, checks its
// authorization (package account) and counts the streams this member
// ended.
package live
