// Package digest keeps the store's digests: for each user, the XOR of
// a hash of each of the user's records, stored beside them and written
// in the same batch, and in memory the XOR of the user digests of each
// of NumLeaves leaves (users by the leading bits of md5(name)).
// Anti-entropy compares two replicas by their leaves, and only for the
// leaves that differ by their users' digests, never reading the records
// (digest.go says how).
//
// It knows which keys hold digests, not which records are whose: the
// store says (Put, and the scan Load backfills an old database with).
//
// A Table is safe for concurrent use; the writes of one user are
// serialised by the store.
package digest
