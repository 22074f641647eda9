package ratelimit

import "hash/maphash"

// clients is one shard's table of client states for one address family: open addressing with linear probing over 16-byte
// slots, four to a cache line (tables are powers of two of at least 256 bytes, which Go allocates aligned), so finding a client
// usually touches one line. The Go map it replaced walked its group twice per request (a lookup, then a store) over 32-byte
// slots; BENCHMARKS.md, "Design measurements", has the figures.
//
// Invariants (the shard's mutex guards them):
//   - len(slots) is 0 or a power of two, and n ≤ len(slots)/2 after every insert, so a probe always meets an empty slot;
//   - a slot is empty exactly when its fullAt is 0 (a stored state's fullAt is at least one interval past a time ≥ 0);
//   - no key is stored twice, and a stored key is reachable from its home slot (hash & mask) without crossing an empty slot.
type clients struct {
	slots []slot
	n     int
	seed  maphash.Seed // the table's: hash(k) is what the table computed to pick the shard
}

// hash is the seeded hash of a key, random per limiter as the duplicate window's is (ingest/pipeline/dedup.go): an IPv6 client
// with a /48 chooses 65,536 keys, and with a fixed hash could choose them all into one run. Both its top bits (the shard) and
// its low bits (the slot) are spread.
func (c *clients) hash(k uint64) uint64 { return maphash.Comparable(c.seed, k) }

// slot is one client's state: the time its bucket will be full again (generic cell rate algorithm: a token bucket kept as
// one number). fullAt ≤ now means a full bucket, the same as a client never seen, so the slot may be emptied.
type slot struct {
	key    uint64
	fullAt int64 // nanoseconds since the limiter's epoch; 0 = empty slot
}

// minSlots is a table's first size; it doubles from there.
const minSlots = 16

// find returns the index of k's slot (found) or of the empty slot where k belongs (none in a table not yet allocated).
func (c *clients) find(k, h uint64) (i uint64, found bool) {
	if len(c.slots) == 0 {
		return 0, false
	}
	mask := uint64(len(c.slots) - 1)
	for i = h & mask; ; i = (i + 1) & mask {
		s := &c.slots[i]
		if s.fullAt == 0 {
			return i, false
		}
		if s.key == k {
			return i, true
		}
	}
}

// insert stores a new key (not present; h = c.hash(k)) with fullAt > 0, growing the table first when it would pass half full.
func (c *clients) insert(k, h uint64, fullAt int64) uint64 {
	if (c.n+1)*2 > len(c.slots) {
		c.resize(max(minSlots, 2*len(c.slots)))
	}
	i, _ := c.find(k, h)
	c.slots[i] = slot{key: k, fullAt: fullAt}
	c.n++
	return i
}

// resize moves every state into a table of size slots (a power of two that holds them at most half full).
func (c *clients) resize(size int) {
	old := c.slots
	c.slots = make([]slot, size)
	for _, s := range old {
		if s.fullAt != 0 {
			i, _ := c.find(s.key, c.hash(s.key))
			c.slots[i] = s
		}
	}
}

// sweep empties the slots of clients whose buckets are full at now, in place, and gives back memory when the table has emptied
// to an eighth of its size or less.
//
// Deleting from linear probing cannot just empty a slot: a later key of the same run would become unreachable. Each deletion
// therefore shifts the run's later keys back into the hole when their home slot allows it (Knuth's algorithm R). The walk
// starts right after an empty slot, so no run wraps around the walk's start, and every key a shift moves lands at or after
// the walk's position: each key is looked at once.
func (c *clients) sweep(now int64) {
	if c.n == 0 {
		c.slots = nil
		return
	}
	size := uint64(len(c.slots))
	mask := size - 1
	start := uint64(0)
	for c.slots[start].fullAt != 0 {
		start++
	}
	for step := uint64(1); step <= size; step++ {
		i := (start + step) & mask
		for c.slots[i].fullAt != 0 && c.slots[i].fullAt <= now {
			c.n--
			c.shiftBack(i, mask)
		}
	}
	switch {
	case c.n == 0:
		c.slots = nil
	case len(c.slots) > minSlots && c.n*8 <= len(c.slots):
		c.resize(max(minSlots, nextPow2(c.n*4)))
	}
}

// shiftBack empties slot hole and closes the gap: each later key of the run whose home slot is not cyclically within
// (hole, its slot] moves back into the hole, which moves on to where the key was.
func (c *clients) shiftBack(hole, mask uint64) {
	for j := (hole + 1) & mask; c.slots[j].fullAt != 0; j = (j + 1) & mask {
		home := c.hash(c.slots[j].key) & mask
		// The key at j may fill the hole unless its home lies after the hole, up to j itself (cyclically).
		if (j-home)&mask >= (j-hole)&mask {
			c.slots[hole] = c.slots[j]
			hole = j
		}
	}
	c.slots[hole] = slot{}
}

func nextPow2(n int) int {
	p := 1
	for p < n {
		p <<= 1
	}
	return p
}
