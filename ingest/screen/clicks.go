package screen

import (
	"encoding/binary"
	"hash/maphash"
	"math"
	"math/bits"
	"sync"
	"time"

	"github.com/adtracker/adtracker/ingest/event"
)

// clickTable remembers counted clicks for ivt.click_window, in a fixed amount of memory that never grows.
//
// It is a hash table of buckets, one cache line each: a mutex and bucketWays slots. A slot is empty (0) or holds a click as
// tag<<32 | receive second, where tag is the upper half of the client+ad key's hash (never 0) and the lower half picks the
// bucket. A slot whose second is a window or more in the past is expired and free for reuse. When every slot of a bucket holds
// a live click, the oldest is forgotten (adtracker_ivt_click_evictions_total): a later duplicate of that click counts as valid,
// so a full table misses duplicates but never flags a first click. Two clients whose keys share bucket and tag (a 2⁻³²
// chance per pair in a bucket) look like one.
//
// The table is per process: with several nodes behind a load balancer, a client's clicks are only recognised as duplicates
// when they reach the same node (README, "Invalid traffic and enrichment").
type clickTable struct {
	seed    maphash.Seed
	window  int64 // seconds, ≥ 1
	mask    uint64
	buckets []bucket
}

const (
	bucketWays  = 7
	bucketBytes = 64
)

type bucket struct {
	mu    sync.Mutex
	slots [bucketWays]uint64
}

// newClickTable sizes the table to the largest power of two of buckets that fits in maxBytes (at least one bucket).
func newClickTable(window time.Duration, maxBytes int) *clickTable {
	n := maxBytes / bucketBytes
	if n < 1 {
		n = 1
	}
	n = 1 << (bits.Len(uint(n)) - 1)
	w := int64((window + time.Second - 1) / time.Second)
	if w < 1 {
		w = 1
	}
	return &clickTable{seed: maphash.MakeSeed(), window: w, mask: uint64(n - 1), buckets: make([]bucket, n)}
}

// key identifies the client and the ad of e: the viewer id when the event has one, else its address and user agent.
func (t *clickTable) key(e *event.Event) uint64 {
	var buf [8 + 1 + 16 + event.MaxUserAgentLen]byte
	binary.LittleEndian.PutUint64(buf[:8], e.AdID)
	b := buf[:8]
	if v := e.ViewerID(); len(v) > 0 {
		b = append(append(b, 'v'), v...)
	} else {
		b = append(append(append(b, 'a'), e.IP[:]...), e.UA()...)
	}
	return maphash.Bytes(t.seed, b)
}

func split(key uint64) (idx uint64, tag uint64) {
	tag = key >> 32
	if tag == 0 {
		tag = 1
	}
	return key, tag << 32
}

// seen reports whether key has a counted click within the window around now (unix seconds); if not, it remembers this click
// as counted at now.
func (t *clickTable) seen(key uint64, now int64) bool {
	idx, tag := split(key)
	b := &t.buckets[idx&t.mask]
	b.mu.Lock()
	defer b.mu.Unlock()
	victim, best := 0, int64(math.MinInt64)
	for i, v := range b.slots {
		age := t.window // an empty slot is as good as an expired one
		if v != 0 {
			age = now - int64(uint32(v))
			if v&^0xffffffff == tag {
				if age < t.window && age > -t.window {
					return true
				}
				b.slots[i] = tag | uint64(uint32(now))
				return false
			}
		}
		if age > best {
			victim, best = i, age
		}
	}
	if best < t.window {
		clickEvictions.Inc() // every slot holds a live click: forget the oldest
	}
	b.slots[victim] = tag | uint64(uint32(now))
	return false
}

// forget undoes seen's remembering of the click at now, unless a later click replaced it.
func (t *clickTable) forget(key uint64, now int64) {
	idx, tag := split(key)
	b := &t.buckets[idx&t.mask]
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, v := range b.slots {
		if v == tag|uint64(uint32(now)) {
			b.slots[i] = 0
			return
		}
	}
}
