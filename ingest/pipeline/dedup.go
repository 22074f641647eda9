package pipeline

import "github.com/adtracker/adtracker/ingest"

// window remembers the last N client-chosen event_ids. Only the batcher goroutine uses it, so it needs no lock and the handlers never
// touch it: duplicate detection costs the hot path nothing.
type window struct {
	ids  map[ingest.UUID]struct{}
	fifo []ingest.UUID
	next int
}

func newWindow(n int) *window {
	if n <= 0 {
		return nil
	}
	return &window{ids: make(map[ingest.UUID]struct{}, n), fifo: make([]ingest.UUID, 0, n)}
}

// Offsets of the id and flags in the binary event form (see ingest/codec.go): version u8 | id [16] | type u8 | flags u8.
const (
	offID    = 1
	offFlags = 18
)

// seen reports whether the encoded event carries a client event_id already in the window, and remembers it when not.
func (w *window) seen(rec []byte) bool {
	if w == nil || len(rec) <= offFlags || rec[offFlags]&ingest.FlagClientID == 0 {
		return false
	}
	var id ingest.UUID
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
