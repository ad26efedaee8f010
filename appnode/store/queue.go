package store

import "github.com/ringfront/ringfront/appnode/store/kv"

// The store's two durable per-member queues (kv.Queue), with one key
// layout:
//
//	h/<member>\x00<8-byte seq>  hints: writes kept for a replica that
//	                            did not take them (it was dead, or the
//	                            call failed)
//	o/<member>\x00<8-byte seq>  the fan-out outbox: inbox deliveries
//	                            still to make to member
const (
	hintPrefix   = "h/"
	outboxPrefix = "o/"
)

func init() { kinds["outbox"] = outboxPrefix }

// Queue is one durable per-member queue of the store.
type Queue = kv.Queue

// QueueEntry is one entry of a queue.
type QueueEntry = kv.QueueEntry

// Hints is the queue of hints. Their deletions are synced.
func (s *Store) Hints() *Queue { return s.db.Queue(hintPrefix, "hints", true) }

// Outbox is the fan-out outbox. Its deletions are not synced: an entry
// that comes back after a crash is only delivered again, and every post
// would pay a second sync.
func (s *Store) Outbox() *Queue { return s.db.Queue(outboxPrefix, "outbox entries", false) }
