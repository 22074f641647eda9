package pipeline

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/adtracker/adtracker/ingest/event"
)

func encodedWithID(id event.UUID, client bool) []byte {
	e := event.Event{ID: id, Type: event.TypeClick, AdID: 1}
	if client {
		e.Flags = event.FlagClientID
	}
	return e.AppendBinary(nil)
}

// The table must answer exactly like the obvious map + FIFO over a long random stream with many repeats and evictions.
func TestWindowMatchesReference(t *testing.T) {
	f := func(size, ids, steps int) {
		t.Helper()
		w := newDupWindow(size)
		ref := map[event.UUID]bool{}
		var fifo []event.UUID
		r := rand.New(rand.NewPCG(uint64(size), uint64(ids)))
		for step := 0; step < steps; step++ {
			var id event.UUID
			n := r.IntN(ids) + 1
			id[0], id[1], id[15] = byte(n), byte(n>>8), byte(n>>16)
			want := ref[id]
			if !want {
				ref[id] = true
				fifo = append(fifo, id)
				if len(fifo) > size {
					delete(ref, fifo[0])
					fifo = fifo[1:]
				}
			}
			if got := w.seen(encodedWithID(id, true)); got != want {
				t.Fatalf("size %d, step %d, id %x: seen = %v, want %v", size, step, id[:2], got, want)
			}
		}
	}
	f(1, 3, 1000)
	f(8, 20, 20000)
	f(100, 150, 50000)
	f(1000, 5000, 200000)
}

// seenGroup must answer exactly as seen does record by record, and leave the window in the same state: over random groups of every
// length up to dupGroup, with repeats inside a group and across, records without a client id, and windows shorter than a group
// (where one group's inserts wrap the FIFO).
func TestWindowGroupMatchesSeen(t *testing.T) {
	f := func(size, ids, steps int) error {
		one, grouped := newDupWindow(size), newDupWindow(size)
		one.seed = grouped.seed // the same table positions, so the states compare
		r := rand.New(rand.NewPCG(uint64(size), uint64(ids)+1))
		var recs [][]byte
		var dup [dupGroup]bool
		for step := 0; step < steps; {
			n := 1 + r.IntN(dupGroup)
			recs = recs[:0]
			for range n {
				var id event.UUID
				k := r.IntN(ids) + 1
				id[0], id[1], id[15] = byte(k), byte(k>>8), byte(k>>16)
				recs = append(recs, encodedWithID(id, r.IntN(10) != 0))
			}
			grouped.seenGroup(recs, dup[:n])
			for i, rec := range recs {
				if want := one.seen(rec); dup[i] != want {
					return fmt.Errorf("size %d, step %d, record %d of %d: seenGroup says %v, seen %v", size, step, i, n, dup[i], want)
				}
			}
			step += n
		}
		if !slices.Equal(one.table, grouped.table) || !slices.Equal(one.fifo, grouped.fifo) || one.next != grouped.next ||
			one.added != grouped.added {
			return fmt.Errorf("size %d: the windows differ after %d records", size, steps)
		}
		return nil
	}
	// A corrupt table makes a probe loop forever (no empty slot left): fail instead of waiting for the test binary's timeout.
	res := make(chan error, 1)
	go func() {
		for _, c := range [][3]int{{1, 3, 2000}, {3, 8, 5000}, {15, 40, 20000}, {16, 40, 20000}, {17, 60, 20000}, {1000, 5000, 200000}} {
			if err := f(c[0], c[1], c[2]); err != nil {
				res <- err
				return
			}
		}
		res <- nil
	}()
	select {
	case err := <-res:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the windows did not finish in a minute: a probe loops over a corrupt table")
	}
	var nilWindow *dupWindow
	dup := []bool{true, true}
	nilWindow.seenGroup([][]byte{encodedWithID(event.UUID{1}, true), encodedWithID(event.UUID{1}, true)}, dup)
	if dup[0] || dup[1] {
		t.Fatal("a disabled window reports duplicates")
	}
}

func TestWindowIgnoresServerIDs(t *testing.T) {
	w := newDupWindow(4)
	var id event.UUID
	id[3] = 7
	for i := 0; i < 2; i++ {
		if w.seen(encodedWithID(id, false)) {
			t.Fatal("server-made ids are never duplicates")
		}
	}
	if w.seen(encodedWithID(id, true)) || !w.seen(encodedWithID(id, true)) {
		t.Fatal("a client id is a duplicate the second time")
	}
	var nilWindow *dupWindow
	if nilWindow.seen(encodedWithID(id, true)) {
		t.Fatal("a disabled window reports duplicates")
	}
}

// windowRecs returns n encoded events, each with its own client id.
func windowRecs(n int) [][]byte {
	recs := make([][]byte, n)
	for i := range recs {
		var id event.UUID
		id[0], id[1], id[2], id[3], id[15] = byte(i), byte(i>>8), byte(i>>16), byte(i>>24), 0x5A
		id[8] = byte(i * 7)
		recs[i] = encodedWithID(id, true)
	}
	return recs
}

func BenchmarkWindowSeen(b *testing.B) {
	w := newDupWindow(1 << 18)
	recs := windowRecs(1 << 20)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.seen(recs[i&(len(recs)-1)])
	}
}

// BenchmarkWindowSeenGroup is BenchmarkWindowSeen the way the batcher calls the window: dupGroup records at a time.
func BenchmarkWindowSeenGroup(b *testing.B) { benchWindow(b, 1<<18, true) }

// BenchmarkWindowSeenLarge and BenchmarkWindowSeenGroupLarge use a window of 2^21 ids (64 MiB of table and FIFO), larger than
// this machine's caches: nearly every probe misses, as the default window's do in a busy server, where decoding and ClickHouse
// share the caches (BENCHMARKS.md, issue 20 after session 21).
func BenchmarkWindowSeenLarge(b *testing.B)      { benchWindow(b, 1<<21, false) }
func BenchmarkWindowSeenGroupLarge(b *testing.B) { benchWindow(b, 1<<21, true) }

// benchWindow feeds a full window of size ids new ids, one by one or dupGroup at a time.
func benchWindow(b *testing.B, size int, group bool) {
	w := newDupWindow(size)
	recs := windowRecs(2 * size)
	for _, rec := range recs[:size] { // full: every new id evicts one
		w.seen(rec)
	}
	var dup [dupGroup]bool
	b.ReportAllocs()
	b.ResetTimer()
	if !group {
		for i := 0; i < b.N; i++ {
			w.seen(recs[(size+i)%len(recs)])
		}
		return
	}
	for i := 0; i < b.N; i += dupGroup {
		k := (size + i) % len(recs)
		w.seenGroup(recs[k:min(k+dupGroup, len(recs))], dup[:])
	}
}

// mapWindow is the obvious implementation (the one the table replaced), kept as the benchmark's reference.
type mapWindow struct {
	ids  map[event.UUID]struct{}
	fifo []event.UUID
	next int
}

func (w *mapWindow) seen(rec []byte) bool {
	var id event.UUID
	copy(id[:], rec[offID:offID+16])
	if _, ok := w.ids[id]; ok {
		return true
	}
	if len(w.fifo) < cap(w.fifo) {
		w.fifo = append(w.fifo, id)
	} else {
		delete(w.ids, w.fifo[w.next])
		w.fifo[w.next] = id
		w.next = (w.next + 1) % len(w.fifo)
	}
	w.ids[id] = struct{}{}
	return false
}

func BenchmarkWindowSeenMapReference(b *testing.B) {
	w := &mapWindow{ids: make(map[event.UUID]struct{}, 1<<18), fifo: make([]event.UUID, 0, 1<<18)}
	recs := windowRecs(1 << 20)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.seen(recs[i&(len(recs)-1)])
	}
}
