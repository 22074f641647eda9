package ratelimit

import (
	"hash/maphash"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// checkClients verifies the table's invariants against want (key → fullAt): every key is found with its state, the count
// matches, nothing else is stored, and the table is at most half full.
func checkClients(t *testing.T, c *clients, want map[uint64]int64) {
	t.Helper()
	if c.n != len(want) {
		t.Fatalf("n = %d, want %d", c.n, len(want))
	}
	if c.n > 0 && c.n*2 > len(c.slots) {
		t.Fatalf("%d keys in %d slots: more than half full", c.n, len(c.slots))
	}
	stored := 0
	for _, s := range c.slots {
		if s.fullAt != 0 {
			stored++
		}
	}
	if stored != c.n {
		t.Fatalf("%d slots in use, n = %d", stored, c.n)
	}
	for k, fullAt := range want {
		i, found := c.find(k, c.hash(k))
		if !found || c.slots[i].fullAt != fullAt {
			t.Fatalf("key %#x: found=%v fullAt=%d, want %d", k, found, c.slots[i].fullAt, fullAt)
		}
	}
}

// Random inserts and sweeps against a map. Keys below 64 put long runs in a small table, which wrap around its
// end; the sweep's backward shifts must keep every surviving key reachable and drop exactly the refilled ones.
func TestClientsMatchMap(t *testing.T) {
	for _, rngSeed := range []uint64{0, 0x9e3779b97f4a7c15} {
		rng := rand.New(rand.NewPCG(rngSeed, 1))
		c := &clients{seed: maphash.MakeSeed()}
		want := map[uint64]int64{}
		now := int64(1)
		for round := 0; round < 2000; round++ {
			keys := uint64(64)
			if round%3 == 0 {
				keys = 1 << 20
			}
			for range rng.IntN(40) {
				k := rng.Uint64N(keys)
				if _, ok := want[k]; ok {
					continue
				}
				fullAt := now + 1 + rng.Int64N(100)
				c.insert(k, c.hash(k), fullAt)
				want[k] = fullAt
			}
			checkClients(t, c, want)
			now += rng.Int64N(60)
			c.sweep(now)
			for k, fullAt := range want {
				if fullAt <= now {
					delete(want, k)
				}
			}
			checkClients(t, c, want)
			if len(want) == 0 && c.slots != nil {
				t.Fatal("an empty table kept its slots")
			}
		}
	}
}

// After a flood the table shrinks again: a table an eighth full or less is rebuilt smaller by the sweep.
func TestClientsShrink(t *testing.T) {
	c := &clients{seed: maphash.MakeSeed()}
	for k := uint64(0); k < 10_000; k++ {
		fullAt := int64(10)
		if k%100 == 0 {
			fullAt = 1000
		}
		c.insert(k, c.hash(k), fullAt)
	}
	big := len(c.slots)
	c.sweep(10)
	if c.n != 100 || len(c.slots) >= big/8 {
		t.Fatalf("after the sweep %d keys in %d slots (was %d slots)", c.n, len(c.slots), big)
	}
	for k := uint64(0); k < 10_000; k += 100 {
		if _, found := c.find(k, c.hash(k)); !found {
			t.Fatalf("key %d lost by the shrink", k)
		}
	}
}

// Shards are whole cache lines (the padding in shard), so one core's lock and table header do not share a line with its
// neighbour's.
func TestShardSize(t *testing.T) {
	if n := unsafe.Sizeof(shard{}); n%64 != 0 {
		t.Fatalf("a shard is %d bytes, not a whole number of 64-byte lines", n)
	}
}
