package store

import (
	"bytes"
	"container/heap"
	"fmt"

	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/store/kv"
)

// MergePosts returns the newest limit posts of all the given authors
// together, older than before (all when before is zero), newest first,
// and whether more remain. It walks one reverse iterator per author and
// merges them lazily, so it copies only the posts it returns, however
// many authors there are. Authors without posts (or without an account)
// contribute nothing.
func (s *Store) MergePosts(authors []string, before feed.ID, limit int) ([]RawPost, bool, error) {
	if s.db.Failed() {
		return nil, false, fmt.Errorf("merging posts: %w", ErrFailed)
	}
	h := make(postHeap, 0, len(authors))
	defer func() {
		for _, c := range h {
			c.it.Close()
		}
	}()
	for _, a := range authors {
		lower := postPrefix(a)
		upper := kv.PrefixEnd(lower)
		if !before.IsZero() {
			upper = postKey(a, before)
		}
		it, err := s.db.NewIter(lower, upper)
		if err != nil {
			return nil, false, fmt.Errorf("reading posts of %s: %w", a, err)
		}
		c := &cursorIter{it: it, prefix: len(lower)}
		if !c.load(it.Last()) {
			if err := it.Close(); err != nil {
				return nil, false, fmt.Errorf("reading posts of %s: %w", a, err)
			}
			continue
		}
		h = append(h, c)
	}
	heap.Init(&h)
	var out []RawPost
	for len(h) > 0 {
		c := h[0]
		if len(out) == limit {
			return out, true, nil
		}
		out = append(out, RawPost{ID: c.id, JSON: bytes.Clone(c.it.Value())})
		if c.load(c.it.Prev()) {
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
			if err := c.it.Close(); err != nil {
				return nil, false, fmt.Errorf("merging posts: %w", err)
			}
		}
	}
	return out, false, nil
}

// cursorIter is one author's iterator and the id it points at.
type cursorIter struct {
	it     *kv.Iter
	prefix int
	id     feed.ID
}

func (c *cursorIter) load(ok bool) bool {
	if !ok {
		return false
	}
	copy(c.id[:], c.it.Key()[c.prefix:])
	return true
}

// postHeap is a max-heap of cursors by id: the newest post on top.
type postHeap []*cursorIter

func (h postHeap) Len() int           { return len(h) }
func (h postHeap) Less(i, j int) bool { return h[i].id.Compare(h[j].id) > 0 }
func (h postHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *postHeap) Push(x any)        { *h = append(*h, x.(*cursorIter)) }
func (h *postHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}
