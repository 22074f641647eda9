package event

import "encoding/binary"

// Batch is a run of events in binary form (AppendBinary). It is the unit the pipeline inserts, spills to disk and replays, so a
// spilled batch is written exactly as it would have been inserted and nothing is re-encoded on the way.
//
// The events are either back to back in Data (Append, AppendEncoded, UnmarshalRecord) or, in Refs, one slice per event that aliases
// memory the caller keeps unchanged while the batch is in use (AppendRef: the batcher points at ring slots, which stay put until the
// batch is stored). A batch holds one form or the other, never both. References spare the batcher a copy of every event and the
// process a second copy of everything in flight: 50 000 events are ~10 MB of Data but 1.2 MB of Refs.
type Batch struct {
	Data []byte
	Refs [][]byte
	N    int
	// MaybeStored marks a batch that may already be in ClickHouse (an insert whose outcome is unknown: a timeout, or a crash between
	// insert and acknowledgement). The sink filters such a batch by event_id before inserting it again.
	MaybeStored bool

	refBytes int // sum of len(Refs[i])
}

// Reset empties b, keeping its buffers.
func (b *Batch) Reset() {
	b.Data = b.Data[:0]
	clear(b.Refs) // drop the aliases so a pooled batch does not pin what they point at
	b.Refs = b.Refs[:0]
	b.refBytes = 0
	b.N = 0
	b.MaybeStored = false
}

// Size is the length of the batch's encoded events, as MarshalRecord writes them (without the record header).
func (b *Batch) Size() int { return len(b.Data) + b.refBytes }

// AppendRef adds one event in binary form without copying it: p must stay unchanged until b is Reset.
func (b *Batch) AppendRef(p []byte) {
	b.Refs = append(b.Refs, p)
	b.refBytes += len(p)
	b.N++
}

// Append adds one event.
func (b *Batch) Append(e *Event) {
	b.Data = e.AppendBinary(b.Data)
	b.N++
}

// AppendEncoded adds one event already in binary form.
func (b *Batch) AppendEncoded(p []byte) {
	b.Data = append(b.Data, p...)
	b.N++
}

// EachView decodes the events in order into v and calls fn; it stops at the first error. v's slices alias the batch's memory (the
// ring slots or Data), valid while the batch is.
func (b *Batch) EachView(v *View, fn func(v *View) error) error {
	if len(b.Refs) > 0 {
		for _, p := range b.Refs {
			n, err := v.Decode(p)
			if err != nil {
				return err
			}
			if n != len(p) {
				return ErrCorrupt
			}
			if err := fn(v); err != nil {
				return err
			}
		}
		return nil
	}
	data := b.Data
	for i := 0; i < b.N; i++ {
		n, err := v.Decode(data)
		if err != nil {
			return err
		}
		data = data[n:]
		if err := fn(v); err != nil {
			return err
		}
	}
	if len(data) != 0 {
		return ErrCorrupt
	}
	return nil
}

// Each decodes the events in order into e and calls fn; it stops at the first error.
func (b *Batch) Each(e *Event, fn func(e *Event) error) error {
	var v View
	return b.EachView(&v, func(v *View) error {
		v.Event(e)
		return fn(e)
	})
}

// Spill record framing of a batch: flags u8 | count u32 | data. The spill queue adds length and CRC around it.
const batchFlagMaybeStored = 1

// MarshalRecord appends the spill record form of b to dst.
func (b *Batch) MarshalRecord(dst []byte) []byte {
	var flags byte
	if b.MaybeStored {
		flags |= batchFlagMaybeStored
	}
	dst = append(dst, flags)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(b.N))
	dst = append(dst, b.Data...)
	for _, p := range b.Refs {
		dst = append(dst, p...)
	}
	return dst
}

// UnmarshalRecord fills b from a spill record; b.Data aliases rec.
func (b *Batch) UnmarshalRecord(rec []byte) error {
	if len(rec) < 5 {
		return ErrCorrupt
	}
	if rec[0]&^batchFlagMaybeStored != 0 {
		return ErrCorrupt // a flag no version writes
	}
	b.Reset()
	b.MaybeStored = rec[0]&batchFlagMaybeStored != 0
	b.N = int(binary.LittleEndian.Uint32(rec[1:]))
	b.Data = rec[5:]
	if b.N < 0 || b.N > len(b.Data)/fixedLen {
		return ErrCorrupt
	}
	return nil
}
