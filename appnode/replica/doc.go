// Package replica keeps each user's records on the members of the
// user's preference list: the write quorum (replicate.go), hinted
// copies for a replica that is down and their delivery through a
// queue.Deliverer (handoff.go, re-addressed when a member leaves the
// ring), the follow edge's two sides kept in step by edge notes
// (edges.go), and reconciliation of one user's records with another
// replica by union, which read repair, anti-entropy, rebalancing and
// catching up all use (repair.go).
package replica
