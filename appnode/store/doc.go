// Package store is appnode's local storage, its data model: users,
// posts, follow edges, home-timeline inboxes, hints and the fan-out
// outbox, digests, edge notes and fan-out copies, kept in one embedded
// database per node (package kv, which owns pebble, the data
// directory's lock and the disk's states). Every write is synced before
// it returns, so a nil error means the record is durable.
//
// Key layout (names are [a-z0-9_], so "/" never occurs inside one):
//
//	u/<name>                   user record
//	p/<author>/<post id>       post; one author's posts are one range,
//	                           and ids sort by time, so a feed page is
//	                           one reverse range scan
//	f/<follower>/<followee>    follow edge, stored on the follower's side
//	r/<followee>/<follower>    the same edge, stored on the followee's side
//	t/<name>/<post id><author> home-timeline inbox entry (fan-out on
//	                           write; a timeline page is one range scan)
//	i/<name>                   inbox meta: the horizon below which reads
//	                           merge at read time (inbox.go)
//	o/<member>\x00<seq>        outbox: inbox deliveries still to make (queue.go)
//	h/<member>\x00<seq>        hint: a write kept for a replica (queue.go)
//	x/<side>/<follower>/<followee>
//	                           edge note: a change the edge's other side
//	                           may lack (edgenotes.go)
//	c/<coordinator>\x00<post id><member>
//	                           fan-out copy: another member's outbox entry
//	                           (fanoutcopies.go)
//	s/id                       the store's id (fanoutcopies.go)
//	dg/<md5(name)><name>       the user's digest, written in the same
//	                           batch as each of its records (digest.go)
//	meta/digests               set once every record has its digest
//
// Inboxes, inbox meta and the outbox are derived data, outside the u/,
// p/, f/ and r/ records that replication and anti-entropy compare.
//
// Values are JSON. Every record is immutable or a mergeable edge
// register (feed.Merge), so writing a record twice, or writing copies
// from another replica, is safe: this is what replication, hints and
// anti-entropy build on.
//
// The engine is pebble v2, pure Go, behind package kv. A database
// written before the move (pebble v1, format major version 1, which
// pebble v2 does not read) is upgraded in place the first time Open
// meets it (kv's legacy.go), using pebble v1's own format ratchet; Open
// logs "store upgraded from pebble v1".
//
// A Store is safe for concurrent use.
package store
