// Package uacache remembers verdicts computed from a user agent in a fixed-size, lock-free table keyed by the user agent's hash.
package uacache

import (
	"hash/maphash"
	"math/bits"
	"sync/atomic"
)

// Cache maps a user agent's 64-bit hash to a 64-bit verdict. It is direct-mapped: each hash has one slot, a newer user agent
// overwrites an older one in it, so the table never grows and a miss only costs recomputing the verdict.
//
// Lock-free without torn reads: a slot holds the verdict and check = hash ^ verdict, each one atomic word. A reader that sees
// a verdict and a check from two different writers finds check ^ verdict ≠ its hash and treats the slot as a miss. The hash is
// seeded per process (hash/maphash), so nobody outside can craft two user agents that share a slot and a hash; a 64-bit
// collision between honest user agents is ~n²/2⁶⁵ over n distinct agents.
type Cache struct {
	seed  maphash.Seed
	mask  uint64
	slots []slot
}

type slot struct {
	check, val atomic.Uint64
}

// SlotBytes is the memory of one slot.
const SlotBytes = 16

// New returns a cache of at least entries slots (rounded up to a power of two, at least 1).
func New(entries int) *Cache {
	if entries < 1 {
		entries = 1
	}
	n := 1 << bits.Len(uint(entries-1))
	return &Cache{seed: maphash.MakeSeed(), mask: uint64(n - 1), slots: make([]slot, n)}
}

// Len is the number of slots.
func (c *Cache) Len() int { return len(c.slots) }

// Hash returns the key of ua; it is never 0, so an empty slot (0, 0) never matches. No allocation.
func (c *Cache) Hash(ua []byte) uint64 {
	h := maphash.Bytes(c.seed, ua)
	if h == 0 {
		h = 1
	}
	return h
}

// Get returns the verdict stored for hash h.
func (c *Cache) Get(h uint64) (uint64, bool) {
	s := &c.slots[h&c.mask]
	v := s.val.Load()
	if s.check.Load()^v != h {
		return 0, false
	}
	return v, true
}

// Put stores verdict v for hash h, replacing whatever held the slot.
func (c *Cache) Put(h, v uint64) {
	s := &c.slots[h&c.mask]
	s.val.Store(v)
	s.check.Store(h ^ v)
}
