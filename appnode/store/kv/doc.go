// Package kv is the storage engine under package store: one embedded
// pebble database per node, seen as ordered keys and values. It knows
// nothing of what the keys mean. It holds
//
//   - Open and Close, and the data directory's lock: a database another
//     process has open is refused with a LockedError naming the holder
//     ("another appnode holds this database (pid N)"), lock.go;
//   - the upgrade in place of a database written by pebble v1, the
//     first time Open meets one (legacy.go);
//   - the disk's states: a write is refused before it starts when the
//     disk is full (ErrDiskFull, below Options.MinFree) or read-only
//     (ErrReadOnly), and a write that fails inside pebble (which would
//     exit the process) fails the database (ErrFailed) until a restart;
//   - reads (View, Get), range and prefix iteration (Iter, Count,
//     Names), batches written atomically and synced (Apply) or not
//     (Commit), and the disk space taken (DiskBytes, PrefixBytes);
//   - durable per-member queues (queue.go), the shape of the store's
//     hints and fan-out outbox;
//   - copies of the database's files for backups: a checkpoint of the
//     running database, and the copy of one into a stopped member's
//     data directory (backup.go).
//
// A DB is safe for concurrent use; a Batch and an Iter are not.
package kv
