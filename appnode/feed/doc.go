// Package feed holds appnode's data model: users, posts, follow edges,
// post ids and the hybrid logical clock that orders them. Every record
// is immutable (users, posts) or a mergeable per-edge register (follow
// edges), so two copies of a user's data merge by union: this is what
// replication and anti-entropy build on.
//
// The types are shared by the server, the store and the Go client.
package feed
