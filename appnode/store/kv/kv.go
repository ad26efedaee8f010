package kv

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"golang.org/x/sys/unix"
)

// Errors callers branch on. Write errors caused by the disk wrap
// ErrDiskFull or ErrReadOnly; the server maps them to 507 and 503.
var (
	ErrDiskFull = errors.New("disk is full")
	ErrReadOnly = errors.New("disk is read-only")
	// ErrFailed means a write failed inside the storage engine, whose
	// state is then unknown: the database refuses every read and write
	// until the node restarts and pebble recovers from its log.
	ErrFailed = errors.New("store failed after a disk error (restart the node)")
)

// Space is what the database needs to know about its disk.
type Space struct {
	Free     uint64 // bytes available to the daemon
	ReadOnly bool
}

// DefaultMinFree is the free space below which writes are refused with
// ErrDiskFull: room for pebble's WAL, flushes and a compaction or two,
// so the engine never meets ENOSPC halfway through a write.
const DefaultMinFree = 64 << 20

// FS is pebble's file system interface (vfs.FS).
type FS = vfs.FS

// Options configure Open.
type Options struct {
	// MinFree is the free-space floor; 0 means DefaultMinFree.
	MinFree uint64
	// Space reports free space and whether the disk is read-only; nil
	// means statfs(2) on the data directory. Tests pass a fake.
	Space func(dir string) (Space, error)
	// FS is pebble's file system; nil means the real one.
	FS FS
	// Log receives pebble's messages; nil means slog.Default().
	Log *slog.Logger
}

// DB is one node's database. It is safe for concurrent use.
type DB struct {
	db      *pebble.DB
	dir     string
	minFree uint64
	space   func(string) (Space, error)
	failed  atomic.Bool
	seq     atomic.Uint64 // queue entries' sequence (queue.go)
}

// Open opens or creates the database in dir, upgrading a pebble v1
// database first (legacy.go).
func Open(dir string, opts Options) (*DB, error) {
	if opts.MinFree == 0 {
		opts.MinFree = DefaultMinFree
	}
	if opts.Space == nil {
		opts.Space = statfsSpace
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	po := &pebble.Options{Logger: pebbleLogger{opts.Log}}
	if opts.FS != nil {
		po.FS = opts.FS
	} else if _, err := upgradeV1(dir, opts.Log); err != nil {
		return nil, fmt.Errorf("opening store in %s: %w", dir, err)
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		err = classify(lockedError(dir, err))
		return nil, fmt.Errorf("opening store in %s: %w", dir, err)
	}
	d := &DB{db: db, dir: dir, minFree: opts.MinFree, space: opts.Space}
	d.initSeq()
	return d, nil
}

// Failed reports whether the database has failed (see ErrFailed).
func (d *DB) Failed() bool { return d.failed.Load() }

// Close closes the database.
func (d *DB) Close() error { return d.db.Close() }

func statfsSpace(dir string) (Space, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return Space{}, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return Space{Free: st.Bavail * uint64(st.Bsize), ReadOnly: st.Flags&unix.ST_RDONLY != 0}, nil
}

// fatal is what pebbleLogger panics with when pebble would exit the
// process; write paths recover it into ErrFailed.
type fatal struct{ msg string }

type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "engine", "pebble")
}

// Errorf is called by pebble on a background error it recovers from,
// such as a failed compaction that it retries.
func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...), "engine", "pebble")
}

// Fatalf is called by pebble on an error it cannot continue from, such
// as a failed WAL write. Pebble's default exits the process; panicking
// instead lets the database answer the write with an error, and refuse
// the writes after it, while reads keep working.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error("storage engine failed", "engine", "pebble", "err", msg)
	panic(fatal{msg})
}

// classify wraps disk errors in the sentinel the server maps.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("%w: %w", ErrDiskFull, err)
	case errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%w: %w", ErrReadOnly, err)
	}
	return err
}

// writable checks the disk before a write, so a full or read-only disk
// refuses the write cleanly instead of failing inside the engine.
func (d *DB) writable() error {
	if d.failed.Load() {
		return ErrFailed
	}
	sp, err := d.space(d.dir)
	if err != nil {
		return fmt.Errorf("checking free space: %w", err)
	}
	if sp.ReadOnly {
		return fmt.Errorf("%w: %s", ErrReadOnly, d.dir)
	}
	if sp.Free < d.minFree {
		return fmt.Errorf("%w: %d MiB free in %s, need %d MiB", ErrDiskFull, sp.Free>>20, d.dir, d.minFree>>20)
	}
	return nil
}

// Batch is a set of writes applied atomically by Apply or Commit. A
// batch is not safe for concurrent use.
type Batch struct{ b *pebble.Batch }

// NewBatch returns an empty batch; the caller closes it.
func (d *DB) NewBatch() *Batch { return &Batch{b: d.db.NewBatch()} }

// Set adds key = val to the batch.
func (b *Batch) Set(key, val []byte) { b.b.Set(key, val, nil) }

// Delete adds the deletion of key to the batch.
func (b *Batch) Delete(key []byte) { b.b.Delete(key, nil) }

// DeleteRange adds the deletion of every key from start up to (not
// including) end to the batch.
func (b *Batch) DeleteRange(start, end []byte) { b.b.DeleteRange(start, end, nil) }

// Close releases the batch.
func (b *Batch) Close() error { return b.b.Close() }

// Write is one key and value to set, made by one piece of code (a
// queue's Write) for another to add to a batch it writes.
type Write struct {
	Key, Value []byte
}

// Apply writes a batch durably (synced) and atomically.
func (d *DB) Apply(b *Batch) error { return d.Commit(b, true) }

// Commit writes a batch atomically, synced when sync is set. A write
// that fails inside the engine fails the database (ErrFailed); a full
// or read-only disk refuses it before it starts.
func (d *DB) Commit(b *Batch, sync bool) (err error) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(fatal)
			if !ok {
				panic(r)
			}
			d.failed.Store(true)
			err = fmt.Errorf("%w: %s", ErrFailed, f.msg)
		}
	}()
	if err := d.writable(); err != nil {
		return err
	}
	opts := pebble.NoSync
	if sync {
		opts = pebble.Sync
	}
	return classify(b.b.Commit(opts))
}

// View calls fn with key's value, which is valid only during the call;
// found is false (and fn not called) when there is none.
func (d *DB) View(key []byte, fn func(val []byte) error) (found bool, err error) {
	if d.failed.Load() {
		return false, ErrFailed
	}
	val, closer, err := d.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer closer.Close()
	return true, fn(val)
}

// Get returns a copy of key's value, or nil when there is none.
func (d *DB) Get(key []byte) ([]byte, error) {
	var out []byte
	_, err := d.View(key, func(val []byte) error {
		out = bytes.Clone(val)
		return nil
	})
	return out, err
}

// Iter walks the keys of a range in order. It is not safe for
// concurrent use; the caller closes it.
type Iter struct{ it *pebble.Iterator }

// NewIter returns an iterator over the keys from lower up to (not
// including) upper; a nil upper has no bound.
func (d *DB) NewIter(lower, upper []byte) (*Iter, error) {
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	return &Iter{it: it}, nil
}

// Prefix returns an iterator over the keys with prefix.
func (d *DB) Prefix(prefix []byte) (*Iter, error) { return d.NewIter(prefix, PrefixEnd(prefix)) }

// First moves to the first key; false when there is none.
func (i *Iter) First() bool { return i.it.First() }

// Last moves to the last key; false when there is none.
func (i *Iter) Last() bool { return i.it.Last() }

// Next moves to the next key; false at the end.
func (i *Iter) Next() bool { return i.it.Next() }

// Prev moves to the previous key; false at the start.
func (i *Iter) Prev() bool { return i.it.Prev() }

// SeekGE moves to the first key at or after key; false when there is
// none.
func (i *Iter) SeekGE(key []byte) bool { return i.it.SeekGE(key) }

// Key is the current key, valid until the iterator moves.
func (i *Iter) Key() []byte { return i.it.Key() }

// Value is the current value, valid until the iterator moves.
func (i *Iter) Value() []byte { return i.it.Value() }

// Error is the error the iteration met, if any.
func (i *Iter) Error() error { return i.it.Error() }

// Close releases the iterator and returns the error the iteration met.
func (i *Iter) Close() error { return i.it.Close() }

// PrefixEnd is the first key after every key with this prefix.
func PrefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// Count counts the keys under prefix, up to limit (0: all).
func (d *DB) Count(prefix string, limit int) (int, error) {
	it, err := d.Prefix([]byte(prefix))
	if err != nil {
		return 0, fmt.Errorf("counting %q keys: %w", prefix, err)
	}
	n := 0
	for ok := it.First(); ok && (limit <= 0 || n < limit); ok = it.Next() {
		n++
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("counting %q keys: %w", prefix, err)
	}
	return n, nil
}

// DiskBytes is the space the database's files take on the disk.
func (d *DB) DiskBytes() uint64 { return d.db.Metrics().DiskSpaceUsage() }

// PrefixBytes estimates the disk space taken by the keys under prefix.
func (d *DB) PrefixBytes(prefix []byte) (uint64, error) {
	return d.db.EstimateDiskUsage(prefix, PrefixEnd(prefix))
}

// initSeq starts the queue sequence at the wall clock in nanoseconds,
// so entries made after a restart sort after older ones.
func (d *DB) initSeq() { d.seq.Store(uint64(time.Now().UnixNano())) }
