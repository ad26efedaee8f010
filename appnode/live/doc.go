// Package live serves live timelines: a user's new inbox entries, as
// they arrive through the fan-out hub (package fanout), written to the
// client as server-sent events, with a replay from the inbox for a
// client that resumes (Last-Event-ID) or lags, and the posts of
// not-pushed followees polled for at each heartbeat (stream.go).
//
// The API server (package server) routes the request, checks its
// authorization and counts the streams this member ended.
package live
