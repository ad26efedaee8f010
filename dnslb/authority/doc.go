// Package authority builds dnslb's answers.
//
// A [Snapshot] is an immutable picture of every zone under one health
// view: static records, name servers with glue, and for each service the
// addresses that are answered right now (healthy and not drained, or all
// of them when every one is down and the service fails open). A new
// Snapshot is built on every health change, drain and reload, and
// swapped in atomically.
//
// [Snapshot.Respond] is the reference answer builder, written on
// github.com/miekg/dns messages and following RFC 1034, 1035, 2308,
// 6891, 7766, 8482 and 8906. [Snapshot.Fast] answers the common queries
// straight from wire bytes precomputed by Respond, patching only the
// query ID, the RD and CD flags, the case of the question and the DO
// bit; anything it does not recognise falls back to Respond.
package authority
