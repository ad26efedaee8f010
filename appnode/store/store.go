package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"time"

	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/store/digest"
	"github.com/ringfront/ringfront/appnode/store/kv"
)

// Errors callers branch on. Write errors caused by the disk wrap
// ErrDiskFull or ErrReadOnly; the server maps them to 507 and 503.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrDiskFull = kv.ErrDiskFull
	ErrReadOnly = kv.ErrReadOnly
	// ErrFailed means a write failed inside the storage engine, whose
	// state is then unknown: the store refuses every read and write
	// until the node restarts and pebble recovers from its log.
	ErrFailed = kv.ErrFailed
)

// Space is what the store needs to know about its disk.
type Space = kv.Space

// LockedError is Open's error for a database another process has open.
type LockedError = kv.LockedError

// DefaultMinFree is the free space below which writes are refused with
// ErrDiskFull (see kv.DefaultMinFree).
const DefaultMinFree = kv.DefaultMinFree

// Options configure Open.
type Options struct {
	// MinFree is the free-space floor; 0 means DefaultMinFree.
	MinFree uint64
	// Space reports free space and whether the disk is read-only; nil
	// means statfs(2) on the data directory. Tests pass a fake.
	Space func(dir string) (Space, error)
	// FS is pebble's file system; nil means the real one.
	FS kv.FS
	// Log receives pebble's messages; nil means slog.Default().
	Log *slog.Logger
	// Now is the member's wall clock, for the due times of edge notes;
	// nil means time.Now.
	Now func() time.Time
}

// Store is one node's database.
type Store struct {
	db      *kv.DB
	now     func() time.Time
	users   userLocks // serialise each user's writes (check, then write with the digest)
	digests *digest.Table
	id      string     // see ID
	metaMu  sync.Mutex // serialises inbox meta read-modify-write (inbox.go)
}

// Open opens or creates the database in dir.
func Open(dir string, opts Options) (*Store, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	db, err := kv.Open(dir, kv.Options{MinFree: opts.MinFree, Space: opts.Space, FS: opts.FS, Log: opts.Log})
	if err != nil {
		return nil, err
	}
	st := &Store{db: db, now: opts.Now}
	st.users.seed = maphash.MakeSeed()
	if err := st.initID(); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening store in %s: %w", dir, err)
	}
	start := time.Now()
	var n int
	st.digests, n, err = digest.Load(db, func() (map[string]Digest, error) { return st.ScanDigests(nil) })
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
func (s *Store) Failed() bool { return s.db.Failed() }

// Close closes the database.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("closing store: %w", err)
	}
	return nil
}

// get decodes key's JSON value into out; ErrNotFound if there is none.
func (s *Store) get(key []byte, out any) error {
	found, err := s.db.View(key, func(val []byte) error {
		if err := json.Unmarshal(val, out); err != nil {
			return fmt.Errorf("decoding record %q: %w", key, err)
		}
		return nil
	})
	if err == nil && !found {
		return ErrNotFound
	}
	return err
}

func userKey(name string) []byte { return []byte("u/" + name) }

func postPrefix(author string) []byte { return []byte("p/" + author + "/") }

func postKey(author string, id feed.ID) []byte { return append(postPrefix(author), id[:]...) }

func edgeKey(kind byte, a, b string) []byte { return []byte(string(kind) + "/" + a + "/" + b) }

// CreateUser stores a new user; ErrExists if the name is taken.
func (s *Store) CreateUser(u feed.User) error {
	val, err := json.Marshal(u)
	if err != nil {
		return fmt.Errorf("encoding user %s: %w", u.Name, err)
	}
	defer s.users.lock(u.Name)()
	key := userKey(u.Name)
	switch old, err := s.db.Get(key); {
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
func (s *Store) write(owner string, key, old, val []byte, extra ...func(*kv.Batch)) error {
	b := s.db.NewBatch()
	defer b.Close()
	delta, err := s.digests.Put(b, owner, key, old, val)
	if err != nil {
		return err
	}
	for _, add := range extra {
		add(b)
	}
	if err := s.db.Apply(b); err != nil {
		return err
	}
	s.digests.Committed(owner, delta)
	return nil
}

// HasUser reports whether a user exists, without decoding it.
func (s *Store) HasUser(name string) (bool, error) {
	found, err := s.db.View(userKey(name), func([]byte) error { return nil })
	if errors.Is(err, ErrFailed) {
		return false, ErrFailed
	}
	if err != nil {
		return false, fmt.Errorf("reading user %s: %w", name, err)
	}
	return found, nil
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
	old, err := s.db.Get(key)
	if err != nil {
		return fmt.Errorf("storing post %s by %s: %w", p.ID, p.Author, err)
	}
	if bytes.Equal(old, val) {
		return nil // a post is immutable: this copy is durable already
	}
	if old != nil {
		return fmt.Errorf("storing post %s by %s: another post has this id: %w", p.ID, p.Author, ErrExists)
	}
	extra := func(b *kv.Batch) {
		for _, w := range also {
			b.Set(w.Key, w.Value)
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
	if s.db.Failed() {
		return nil, feed.ID{}, fmt.Errorf("reading posts of %s: %w", author, ErrFailed)
	}
	lower := postPrefix(author)
	upper := kv.PrefixEnd(lower)
	if !before.IsZero() {
		upper = postKey(author, before)
	}
	it, err := s.db.NewIter(lower, upper)
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
	if s.db.Failed() {
		return nil, fmt.Errorf("reading edges of %s: %w", name, ErrFailed)
	}
	it, err := s.db.Prefix([]byte(string(byte(side)) + "/" + name + "/"))
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
	st := Stats{DiskBytes: s.db.DiskBytes(), KindBytes: map[string]uint64{}, WritesFail: s.db.Failed()}
	for kind, prefix := range kinds {
		n, err := s.db.PrefixBytes([]byte(prefix))
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
	old, err := s.db.Get(key)
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
