// Package client is appnode's Go "smart client". It fetches the ring
// from any member once, computes each user's owner itself with
// appnode/ring, and sends every request straight to the owner, so no
// request pays for a forward. When a member answers with another ring
// version the client refetches the ring before its next request; when
// the owner does not answer it tries the rest of the user's preference
// list (whose members forward or, once replication lands, answer).
//
// A Client is safe for concurrent use.
package client
