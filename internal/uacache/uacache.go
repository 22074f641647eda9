// Package uacache remembers verdicts computed from a key such as a user agent in a fixed-size, lock-free table keyed by its hash.
package uacache

import (
	"hash/maphash"
	"math/bits"
	"sync/atomic"
)

// Cache maps a key's 64-bit hash to a 64-bit verdict. It is 4-way set-associative: a hash picks a bucket of Ways slots (one
// cache line) and may sit in any of them, so two hot keys that share a bucket both stay (with one slot each, two hot user
// agents on one slot would evict each other on every event, and a crawler-list match costs ~100 µs). A full bucket replaces a
// slot chosen round-robin. The table never grows; a miss only costs recomputing the verdict.
//
// Lock-free without torn reads: a slot holds the verdict and check = hash ^ verdict, each one atomic word. A reader that sees
// a verdict and a check from two writers of different keys finds check ^ verdict ≠ its hash, and treats the slot as a miss,
// unless the two hashes differ exactly by the two verdicts' difference: for verdicts of a few dozen bits, as the callers store,
// odds below 2⁻³⁰ per torn read (two writers of the same key write the same verdict). The hash is
// seeded per process (hash/maphash), so nobody outside can aim keys at one bucket or craft a collision; a 64-bit collision
// between honest keys is ~n²/2⁶⁵ over n distinct keys.
type Cache struct {
	seed    maphash.Seed
	mask    uint64
	buckets []bucket
	next    atomic.Uint32 // round-robin victim among a full bucket's slots
}

// Ways is the number of slots per bucket.
const Ways = 4

type bucket [Ways]slot

type slot struct {
	check, val atomic.Uint64
}

// New returns a cache of at least entries slots (rounded up to a power of two, at least Ways).
func New(entries int) *Cache {
	n := (entries + Ways - 1) / Ways
	if n < 1 {
		n = 1
	}
	n = 1 << bits.Len(uint(n-1))
	return &Cache{seed: maphash.MakeSeed(), mask: uint64(n - 1), buckets: make([]bucket, n)}
}

// Len is the number of slots.
func (c *Cache) Len() int { return len(c.buckets) * Ways }

// Hash returns the key of b; it is never 0, so an empty slot (0, 0) never matches. No allocation.
func (c *Cache) Hash(b []byte) uint64 {
	h := maphash.Bytes(c.seed, b)
	if h == 0 {
		h = 1
	}
	return h
}

// Get returns the verdict stored for hash h.
func (c *Cache) Get(h uint64) (uint64, bool) {
	b := &c.buckets[h&c.mask]
	for i := range b {
		s := &b[i]
		v := s.val.Load()
		if s.check.Load()^v == h {
			return v, true
		}
	}
	return 0, false
}

// Put stores verdict v for hash h: in the slot that holds h, else an empty one, else one replaced round-robin.
func (c *Cache) Put(h, v uint64) {
	b := &c.buckets[h&c.mask]
	victim := -1
	for i := range b {
		s := &b[i]
		val, chk := s.val.Load(), s.check.Load()
		if chk^val == h {
			victim = i
			break
		}
		if victim < 0 && chk == 0 && val == 0 {
			victim = i
		}
	}
	if victim < 0 {
		victim = int(c.next.Add(1) % Ways)
	}
	s := &b[victim]
	s.val.Store(v)
	s.check.Store(h ^ v)
}
