package limits

import (
	"hash/maphash"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// table is a fixed-capacity map from a key to its bucket, split into
// shards, each an LRU cache (hashicorp/golang-lru) of an equal part of
// the capacity: when a shard is full, its least recently used bucket
// makes room.
type table[K comparable] struct {
	seed   maphash.Seed
	shards [shards]*lru.Cache[K, *bucket]
}

func newTable[K comparable](size int) *table[K] {
	t := &table[K]{seed: maphash.MakeSeed()}
	for i := range t.shards {
		c, err := lru.New[K, *bucket](shardSize(size))
		if err != nil {
			panic(err) // only for a size below 1, which shardSize never gives
		}
		t.shards[i] = c
	}
	return t
}

func shardSize(size int) int { return max(1, size/shards) }

func (t *table[K]) shard(k K) *lru.Cache[K, *bucket] {
	return t.shards[maphash.Comparable(t.seed, k)%shards]
}

// get returns k's bucket, made for rule (settings generation gen) if
// k has none.
func (t *table[K]) get(k K, gen uint64, rule Rule) *bucket {
	c := t.shard(k)
	if b, ok := c.Get(k); ok {
		return b
	}
	b := &bucket{gen: gen, lim: rate.NewLimiter(rule.Rate, rule.Burst)}
	if prev, ok, _ := c.PeekOrAdd(k, b); ok {
		return prev // another request made it first
	}
	return b
}

func (t *table[K]) resize(size int) {
	for _, c := range t.shards {
		c.Resize(shardSize(size))
	}
}

func (t *table[K]) len() int {
	n := 0
	for _, c := range t.shards {
		n += c.Len()
	}
	return n
}

// atomicSettings holds the limiter's current settings.
type atomicSettings = atomic.Pointer[settings]
