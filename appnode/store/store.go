package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"golang.org/x/sys/unix"

	"github.com/ringfront/ringfront/appnode/feed"
)

// Errors callers branch on. Write errors caused by the disk wrap
// ErrDiskFull or ErrReadOnly; the server maps them to 507 and 503.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrDiskFull = errors.New("disk is full")
	ErrReadOnly = errors.New("disk is read-only")
	// ErrFailed means a write failed inside the storage engine, whose
	// state is then unknown: the store refuses every read and write
	// until the node restarts and pebble recovers from its log.
	ErrFailed = errors.New("store failed after a disk error (restart the node)")
)

// Space is what the store needs to know about its disk.
type Space struct {
	Free     uint64 // bytes available to the daemon
	ReadOnly bool
}

// DefaultMinFree is the free space below which writes are refused with
// ErrDiskFull: room for pebble's WAL, flushes and a compaction or two,
// so the engine never meets ENOSPC halfway through a write.
const DefaultMinFree = 64 << 20

// Options configure Open.
type Options struct {
	// MinFree is the free-space floor; 0 means DefaultMinFree.
	MinFree uint64
	// Space reports free space and whether the disk is read-only; nil
	// means statfs(2) on the data directory. Tests pass a fake.
	Space func(dir string) (Space, error)
	// FS is pebble's file system; nil means the real one.
	FS vfs.FS
	// Log receives pebble's messages; nil means slog.Default().
	Log *slog.Logger
	// Now is the member's wall clock, for the due times of edge notes;
	// nil means time.Now.
	Now func() time.Time
}

// Store is one node's database.
type Store struct {
	db      *pebble.DB
	dir     string
	minFree uint64
	space   func(string) (Space, error)
	now     func() time.Time
	failed  atomic.Bool
	users   userLocks // serialise each user's writes (check, then write with the digest)
	leaves  leafTable
	seq     atomic.Uint64 // queue entries' sequence (queue.go)
	id      string        // see ID
	// digestReads counts per-user digest entries read (DigestReads).
	digestReads atomic.Uint64
	metaMu      sync.Mutex // serialises inbox meta read-modify-write (inbox.go)
}

// Open opens or creates the database in dir.
func Open(dir string, opts Options) (*Store, error) {
	if opts.MinFree == 0 {
		opts.MinFree = DefaultMinFree
	}
	if opts.Space == nil {
		opts.Space = statfsSpace
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
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
	st := &Store{db: db, dir: dir, minFree: opts.MinFree, space: opts.Space, now: opts.Now}
	st.users.seed = maphash.MakeSeed()
	st.initSeq()
	if err := st.initID(); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening store in %s: %w", dir, err)
	}
	start := time.Now()
	n, err := st.initDigests()
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("opening store in %s: %w", dir, err)
	}
	if n > 0 {
		opts.Log.Info("digests backfilled", "op", "open", "users", n, "seconds", time.Since(start).Seconds())
	}
	return st, nil
}

// Failed reports whether the store has failed (see ErrFailed).
func (s *Store) Failed() bool { return s.failed.Load() }

// Close closes the database.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("closing store: %w", err)
	}
	return nil
}

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
// instead lets the store answer the write with an error, and refuse the
// writes after it, while reads keep working.
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
func (s *Store) writable() error {
	if s.failed.Load() {
		return ErrFailed
	}
	sp, err := s.space(s.dir)
	if err != nil {
		return fmt.Errorf("checking free space: %w", err)
	}
	if sp.ReadOnly {
		return fmt.Errorf("%w: %s", ErrReadOnly, s.dir)
	}
	if sp.Free < s.minFree {
		return fmt.Errorf("%w: %d MiB free in %s, need %d MiB", ErrDiskFull, sp.Free>>20, s.dir, s.minFree>>20)
	}
	return nil
}

// apply writes a batch durably (synced) and atomically.
func (s *Store) apply(b *pebble.Batch) error { return s.commit(b, pebble.Sync) }

// commit writes a batch atomically, synced as opts says.
func (s *Store) commit(b *pebble.Batch, opts *pebble.WriteOptions) (err error) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(fatal)
			if !ok {
				panic(r)
			}
			s.failed.Store(true)
			err = fmt.Errorf("%w: %s", ErrFailed, f.msg)
		}
	}()
	if err := s.writable(); err != nil {
		return err
	}
	return classify(b.Commit(opts))
}

func (s *Store) get(key []byte, out any) error {
	if s.failed.Load() {
		return ErrFailed
	}
	val, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	defer closer.Close()
	if err := json.Unmarshal(val, out); err != nil {
		return fmt.Errorf("decoding record %q: %w", key, err)
	}
	return nil
}

func userKey(name string) []byte { return []byte("u/" + name) }

func postPrefix(author string) []byte { return []byte("p/" + author + "/") }

func postKey(author string, id feed.ID) []byte { return append(postPrefix(author), id[:]...) }

func edgeKey(kind byte, a, b string) []byte { return []byte(string(kind) + "/" + a + "/" + b) }

// prefixEnd is the first key after every key with this prefix.
func prefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// CreateUser stores a new user; ErrExists if the name is taken.
func (s *Store) CreateUser(u feed.User) error {
	val, err := json.Marshal(u)
	if err != nil {
		return fmt.Errorf("encoding user %s: %w", u.Name, err)
	}
	defer s.users.lock(u.Name)()
	key := userKey(u.Name)
	switch old, err := s.getRaw(key); {
	case err != nil:
		return fmt.Errorf("creating user %s: %w", u.Name, err)
	case old != nil:
		return fmt.Errorf("creating user %s: %w", u.Name, ErrExists)
	}
	if err := s.write(u.Name, key, nil, val); err != nil {
		return fmt.Errorf("creating user %s: %w", u.Name, err)
	}
	return nil
}

// write stores key = val (replacing old, nil when new) for user owner
// with the change of owner's digest, synced, in one batch, together with
// whatever extra adds to the batch (derived data outside the digests).
// The caller holds owner's lock.
func (s *Store) write(owner string, key, old, val []byte, extra ...func(*pebble.Batch)) error {
	b := s.db.NewBatch()
	defer b.Close()
	delta, err := s.putRecord(b, owner, key, old, val)
	if err != nil {
		return err
	}
	for _, add := range extra {
		add(b)
	}
	if err := s.apply(b); err != nil {
		return err
	}
	s.committed(owner, delta)
	return nil
}

// HasUser reports whether a user exists, without decoding it.
func (s *Store) HasUser(name string) (bool, error) {
	if s.failed.Load() {
		return false, ErrFailed
	}
	_, closer, err := s.db.Get(userKey(name))
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading user %s: %w", name, err)
	}
	closer.Close()
	return true, nil
}

// User returns a user; ErrNotFound if there is none.
func (s *Store) User(name string) (feed.User, error) {
	var u feed.User
	if err := s.get(userKey(name), &u); err != nil {
		return feed.User{}, fmt.Errorf("reading user %s: %w", name, err)
	}
	return u, nil
}

// AddPost stores a post, and the extra writes (inbox and outbox
// entries, derived data outside the digests) in the same synced batch.
// Storing the same post again is harmless (and writes nothing, the
// extra writes included); another post with the same id is ErrExists.
func (s *Store) AddPost(p feed.Post, also ...Write) error {
	val, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encoding post %s: %w", p.ID, err)
	}
	key := postKey(p.Author, p.ID)
	defer s.users.lock(p.Author)()
	old, err := s.getRaw(key)
	if err != nil {
		return fmt.Errorf("storing post %s by %s: %w", p.ID, p.Author, err)
	}
	if bytes.Equal(old, val) {
		return nil // a post is immutable: this copy is durable already
	}
	if old != nil {
		return fmt.Errorf("storing post %s by %s: another post has this id: %w", p.ID, p.Author, ErrExists)
	}
	extra := func(b *pebble.Batch) {
		for _, w := range also {
			b.Set(w.key, w.value, nil)
		}
	}
	if err := s.write(p.Author, key, old, val, extra); err != nil {
		return fmt.Errorf("storing post %s by %s: %w", p.ID, p.Author, err)
	}
	return nil
}

// RawPost is a stored post as its JSON encoding (the API's form), with
// its id: answers are assembled from these without decoding them.
type RawPost struct {
	ID   feed.ID
	JSON []byte
}

// PostsRaw returns up to limit posts by author, newest first, older than
// before (all posts when before is zero), and the cursor for the next
// page (zero when there is none). It is one reverse range scan.
func (s *Store) PostsRaw(author string, before feed.ID, limit int) ([]RawPost, feed.ID, error) {
	if s.failed.Load() {
		return nil, feed.ID{}, fmt.Errorf("reading posts of %s: %w", author, ErrFailed)
	}
	lower := postPrefix(author)
	upper := prefixEnd(lower)
	if !before.IsZero() {
		upper = postKey(author, before)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, feed.ID{}, fmt.Errorf("reading posts of %s: %w", author, err)
	}
	defer it.Close()
	var posts []RawPost
	var next feed.ID
	for ok := it.Last(); ok; ok = it.Prev() {
		if len(posts) == limit {
			next = posts[len(posts)-1].ID
			break
		}
		var p RawPost
		key := it.Key()
		if len(key) != len(lower)+len(p.ID) {
			return nil, feed.ID{}, fmt.Errorf("reading posts of %s: malformed key %q", author, key)
		}
		copy(p.ID[:], key[len(lower):])
		p.JSON = bytes.Clone(it.Value())
		posts = append(posts, p)
	}
	if err := it.Error(); err != nil {
		return nil, feed.ID{}, fmt.Errorf("reading posts of %s: %w", author, err)
	}
	return posts, next, nil
}

// Posts is PostsRaw with the posts decoded.
func (s *Store) Posts(author string, before feed.ID, limit int) ([]feed.Post, feed.ID, error) {
	raw, next, err := s.PostsRaw(author, before, limit)
	if err != nil {
		return nil, feed.ID{}, err
	}
	var posts []feed.Post
	for _, r := range raw {
		var p feed.Post
		if err := json.Unmarshal(r.JSON, &p); err != nil {
			return nil, feed.ID{}, fmt.Errorf("decoding post %s of %s: %w", r.ID, author, err)
		}
		posts = append(posts, p)
	}
	return posts, next, nil
}

// Side says on which user's side an edge is stored.
type Side byte

const (
	// Following is the follower's side: whom the user follows.
	Following Side = 'f'
	// Followers is the followee's side: who follows the user.
	Followers Side = 'r'
)

func (side Side) key(e feed.Edge) []byte {
	if side == Following {
		return edgeKey(byte(side), e.Follower, e.Followee)
	}
	return edgeKey(byte(side), e.Followee, e.Follower)
}

// Edges returns the edges stored on one side of name, removed ones
// included, in name order of the other user.
func (s *Store) Edges(side Side, name string) ([]feed.Edge, error) {
	if s.failed.Load() {
		return nil, fmt.Errorf("reading edges of %s: %w", name, ErrFailed)
	}
	lower := []byte(string(byte(side)) + "/" + name + "/")
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return nil, fmt.Errorf("reading edges of %s: %w", name, err)
	}
	defer it.Close()
	var out []feed.Edge
	for ok := it.First(); ok; ok = it.Next() {
		var e feed.Edge
		if err := json.Unmarshal(it.Value(), &e); err != nil {
			return nil, fmt.Errorf("decoding edge %q: %w", it.Key(), err)
		}
		out = append(out, e)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("reading edges of %s: %w", name, err)
	}
	return out, nil
}

// Stats are sizes for metrics and status.
type Stats struct {
	DiskBytes  uint64            `json:"disk_bytes"`
	KindBytes  map[string]uint64 `json:"kind_bytes"` // estimated bytes by record kind
	WritesFail bool              `json:"failed,omitempty"`
}

var kinds = map[string]string{"users": "u/", "posts": "p/", "following": "f/", "followers": "r/", "hints": hintPrefix, "digests": digestPrefix}

// Stats estimates the database's sizes.
func (s *Store) Stats() Stats {
	st := Stats{DiskBytes: s.db.Metrics().DiskSpaceUsage(), KindBytes: map[string]uint64{}, WritesFail: s.failed.Load()}
	for kind, prefix := range kinds {
		n, err := s.db.EstimateDiskUsage([]byte(prefix), prefixEnd([]byte(prefix)))
		if err == nil {
			st.KindBytes[kind] = n
		}
	}
	return st
}

// MergeUser merges a copy of user u from another replica into this
// store (feed.Join): it is stored when there is no user of that name
// here, when it wins over the one here (feed.Wins: the name was created
// on both sides of a partition), and for a copy of the same creation
// the two token sets are merged. It returns the record now stored and
// whether it changed.
func (s *Store) MergeUser(u feed.User) (feed.User, bool, error) {
	return s.UpdateUser(u.Name, func(cur *feed.User) (feed.User, error) {
		if cur == nil {
			return feed.Join(u, u), nil
		}
		return feed.Join(*cur, u), nil
	})
}

// UpdateUser replaces user name's record with what change makes of the
// current one (nil when there is none), under the user's lock, so no
// other write of the record comes between the read and the write. It
// writes nothing when change returns the record unchanged (feed.Same)
// or an error, which it returns. It returns the record now stored and
// whether it changed.
func (s *Store) UpdateUser(name string, change func(cur *feed.User) (feed.User, error)) (feed.User, bool, error) {
	defer s.users.lock(name)()
	key := userKey(name)
	old, err := s.getRaw(key)
	if err != nil {
		return feed.User{}, false, fmt.Errorf("updating user %s: %w", name, err)
	}
	var cur *feed.User
	if old != nil {
		cur = new(feed.User)
		if err := json.Unmarshal(old, cur); err != nil {
			return feed.User{}, false, fmt.Errorf("decoding record %q: %w", key, err)
		}
	}
	u, err := change(cur)
	if err != nil {
		return feed.User{}, false, err
	}
	if cur != nil && feed.Same(*cur, u) {
		return *cur, false, nil
	}
	val, err := json.Marshal(u)
	if err != nil {
		return feed.User{}, false, fmt.Errorf("encoding user %s: %w", name, err)
	}
	if err := s.write(name, key, old, val); err != nil {
		return feed.User{}, false, fmt.Errorf("storing user %s: %w", name, err)
	}
	return u, true, nil
}
