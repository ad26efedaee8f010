// Package queue delivers a member's durable per-member queues
// (store.Queue): hints for replicas that were down, and the fan-out
// outbox. Both are the same thing — records kept on disk for another
// member until it has them — so one Deliverer does it for both:
// batches of entries per call, a bounded number of batches per member
// and round (a long backlog does not starve the others), several
// members at once, backoff per member after a failure, and entries for
// a member that has left the ring handed to the members that hold their
// records now. What an entry holds and how it is sent is the queue
// owner's (Config.Send); the Deliverer only decides when and what.
//
// Edge notes (store/edgenotes.go) and fan-out copies
// (store/fanoutcopies.go) are not queues of this kind: an edge note is
// due at a time and goes to whichever member answers for a user's
// other side, and a copy is not delivered at all unless its coordinator
// is lost. They keep their own loops (packages replica and fanout).
package queue
