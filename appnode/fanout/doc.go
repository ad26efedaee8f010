// Package fanout is fan-out on write: a post goes into its followers'
// inboxes through a durable per-member outbox, delivered by a
// queue.Deliverer (fanout.go); the outbox entries' copies on the post's
// other replicas, delivered by them when the coordinator is lost
// (copies.go); the back-fill of a new follow's inbox (late.go); and the
// Hub that hands entries stored here to live streams (hub.go).
package fanout
