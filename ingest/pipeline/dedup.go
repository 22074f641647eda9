package pipeline

import (
	"hash/maphash"
	"unsafe"

	"github.com/adtracker/adtracker/ingest/event"
)

// dupWindow remembers the last N client-chosen event_ids. Only the batcher goroutine uses it, so it needs no lock and the handlers never
// touch it: duplicate detection costs the request path nothing.
//
// The ids live in a FIFO in arrival order (which is also the eviction order); an open-addressing table (linear probing,
// backward-shift deletion) maps them to their FIFO position. A table entry is 8 bytes: 32 bits of the id's hash, which give both the
// home slot and a tag that rules out almost every non-match without reading the id, and the FIFO position + 1 (0 = empty slot). A Go
// map with a delete per insert is mostly cache misses, and a table holding the 16-byte ids inline rehashes every entry a deletion
// shifts (BENCHMARKS.md, "Design measurements"; BenchmarkWindowSeen against BenchmarkWindowSeenMapReference). Here a deletion shifts
// entries by their stored hash, and the table is half the size (4 MiB for the default 262,144 ids, at a load factor ≤ 0.5). The hash
// is seeded per process, so ids chosen to collide cannot turn probes into a scan.
type dupWindow struct {
	table []uint64
	mask  uint64
	seed  maphash.Seed
	fifo  []event.UUID
	next  int
	added uint64 // ids remembered so far; a checkpoint is due only when it moved
	// touched sums the entries seenGroup loads ahead; nothing reads it, but as a use of those loads it keeps them in the code.
	touched uint64
}

func newDupWindow(n int) *dupWindow {
	if n <= 0 {
		return nil
	}
	n = min(n, 1<<31) // positions are stored in 32 bits
	size := 1
	for size < 2*n { // load factor ≤ 0.5 keeps linear-probe runs short
		size <<= 1
	}
	return &dupWindow{table: make([]uint64, size), mask: uint64(size - 1), seed: maphash.MakeSeed(), fifo: make([]event.UUID, 0, n)}
}

// Offsets of the id and flags in the binary event form (see ingest/event/codec.go): version u8 | id [16] | type u8 | flags u8.
const (
	offID    = 1
	offFlags = 18
)

// posMask selects a table entry's FIFO position + 1; the upper 32 bits are the id's hash.
const posMask = 1<<32 - 1

func (w *dupWindow) hash(id *event.UUID) uint32 { return uint32(maphash.Bytes(w.seed, id[:])) }

// seen reports whether the encoded event carries a client event_id already in the window, and remembers it when not.
func (w *dupWindow) seen(rec []byte) bool {
	var id event.UUID
	if w == nil || !clientID(rec, &id) {
		return false
	}
	return w.seenID(&id)
}

// clientID copies the client event_id of the encoded event rec into id; false when it has none.
func clientID(rec []byte, id *event.UUID) bool {
	if len(rec) <= offFlags || rec[offFlags]&event.FlagClientID == 0 {
		return false
	}
	copy(id[:], rec[offID:offID+16])
	return true
}

// dupGroup is how many records seenGroup takes at once.
const dupGroup = 16

// seenGroup is seen for each of recs (at most dupGroup) in order, with the answers in dup. The table is megabytes, so in a busy
// server nearly every probe is a cache miss, and seen waits for each in turn: the id's home slot, then the home slot of the id
// its insert evicts. seenGroup first computes all of those hashes for the group and loads the table entries at them in one go,
// independent loads the CPU overlaps, then runs seen's logic with the hashes it has (BENCHMARKS.md, issue 20 after session 21).
func (w *dupWindow) seenGroup(recs [][]byte, dup []bool) {
	if w == nil {
		clear(dup[:len(recs)])
		return
	}
	var ids [dupGroup]event.UUID
	var hs, vhs [dupGroup]uint32
	var has [dupGroup]bool
	var touch uint64
	n := 0
	for i, rec := range recs {
		if has[i] = clientID(rec, &ids[i]); has[i] {
			hs[i] = w.hash(&ids[i])
			touch += w.table[uint64(hs[i])&w.mask]
			n++
		}
	}
	// The ids the group's inserts evict when the window is full: insert j evicts the one at FIFO position next+j. Positions
	// must not repeat within the group (a window shorter than the group; tests use them), or a hash would be of an id the
	// group already replaced. Fewer inserts than n (duplicates) leave a load unused, no harm.
	nv := 0
	if len(w.fifo) == cap(w.fifo) {
		for pos := w.next; nv < n && nv < len(w.fifo); nv++ {
			vhs[nv] = w.hash(&w.fifo[pos])
			touch += w.table[uint64(vhs[nv])&w.mask]
			if pos++; pos == len(w.fifo) {
				pos = 0
			}
		}
	}
	w.touched += touch // a use of every load, so none is dropped
	inserts := 0
	for i := range recs {
		if dup[i] = false; !has[i] {
			continue
		}
		vh, known := uint32(0), false
		if inserts < nv {
			vh, known = vhs[inserts], true
		}
		if dup[i] = w.seenHashed(&ids[i], hs[i], vh, known); !dup[i] {
			inserts++
		}
	}
}

// seenID reports whether id is in the window, and remembers it when not.
func (w *dupWindow) seenID(idp *event.UUID) bool { return w.seenHashed(idp, w.hash(idp), 0, false) }

// seenHashed is seenID with the id's hash h given, and, when known, the hash vh of the id its insert evicts.
func (w *dupWindow) seenHashed(idp *event.UUID, h, vh uint32, known bool) bool {
	id := *idp
	i := uint64(h) & w.mask
	for e := w.table[i]; e != 0; e = w.table[i] {
		if e>>32 == uint64(h) && w.fifo[e&posMask-1] == id {
			return true
		}
		i = (i + 1) & w.mask
	}
	pos := len(w.fifo)
	if pos < cap(w.fifo) {
		w.fifo = append(w.fifo, id)
	} else {
		pos = w.next
		if !known {
			vh = w.hash(&w.fifo[pos])
		}
		w.evict(pos, vh)
		w.fifo[pos] = id
		w.next = (w.next + 1) % len(w.fifo)
		// The eviction may have shifted entries into the free slot found above: probe again.
		i = uint64(h) & w.mask
		for w.table[i] != 0 {
			i = (i + 1) & w.mask
		}
	}
	w.table[i] = uint64(h)<<32 | uint64(pos+1)
	w.added++
	return false
}

// evict deletes the table entry of FIFO position pos, whose id hashes to h, with backward-shift deletion, so no tombstones
// accumulate and lookups stay short.
func (w *dupWindow) evict(pos int, h uint32) {
	ref := uint64(pos + 1)
	i := uint64(h) & w.mask
	for w.table[i]&posMask != ref {
		if w.table[i] == 0 {
			return
		}
		i = (i + 1) & w.mask
	}
	for {
		w.table[i] = 0
		j := i
		for {
			j = (j + 1) & w.mask
			e := w.table[j]
			if e == 0 {
				return
			}
			h := (e >> 32) & w.mask
			// Move table[j] into the hole at i unless its home lies cyclically in (i, j].
			if (j > i && (h <= i || h > j)) || (j < i && (h <= i && h > j)) {
				w.table[i] = e
				i = j
				break
			}
		}
	}
}

// spans returns the remembered ids as bytes, oldest first: older then newer. They alias the FIFO and are valid until the next
// seenID.
func (w *dupWindow) spans() (older, newer []byte) {
	if w == nil || len(w.fifo) == 0 {
		return nil, nil
	}
	// event.UUID is [16]byte, so the FIFO is one contiguous run of 16·len bytes.
	all := unsafe.Slice(&w.fifo[0][0], 16*len(w.fifo)) //nolint:gosec // G103: a byte view of the FIFO's ids, read only
	if len(w.fifo) < cap(w.fifo) {
		return all, nil
	}
	return all[16*w.next:], all[:16*w.next]
}

// size is the number of remembered ids.
func (w *dupWindow) size() int {
	if w == nil {
		return 0
	}
	return len(w.fifo)
}
