package pipeline

import (
	"math/rand/v2"
	"testing"

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

func BenchmarkWindowSeen(b *testing.B) {
	w := newDupWindow(1 << 18)
	recs := make([][]byte, 1<<20)
	for i := range recs {
		var id event.UUID
		id[0], id[1], id[2], id[15] = byte(i), byte(i>>8), byte(i>>16), 0x5A
		id[8] = byte(i * 7)
		recs[i] = encodedWithID(id, true)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.seen(recs[i&(len(recs)-1)])
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
	recs := make([][]byte, 1<<20)
	for i := range recs {
		var id event.UUID
		id[0], id[1], id[2], id[15] = byte(i), byte(i>>8), byte(i>>16), 0x5A
		id[8] = byte(i * 7)
		recs[i] = encodedWithID(id, true)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.seen(recs[i&(len(recs)-1)])
	}
}
