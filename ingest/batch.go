package ingest

import "encoding/binary"

// Batch is a run of events in binary form (AppendBinary, back to back). It is the unit the pipeline inserts, spills to disk and replays,
// so a spilled batch is written exactly as it would have been inserted and nothing is re-encoded on the way.
type Batch struct {
	Data []byte
	N    int
	// MaybeStored marks a batch that may already be in ClickHouse (an insert whose outcome is unknown: a timeout, or a crash between
	// insert and acknowledgement). The sink filters such a batch by event_id before inserting it again.
	MaybeStored bool
}

// Reset empties b, keeping its buffer.
func (b *Batch) Reset() {
	b.Data = b.Data[:0]
	b.N = 0
	b.MaybeStored = false
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

// Each decodes the events in order into e and calls fn; it stops at the first error.
func (b *Batch) Each(e *Event, fn func(e *Event) error) error {
	data := b.Data
	for i := 0; i < b.N; i++ {
		n, err := e.DecodeBinary(data)
		if err != nil {
			return err
		}
		data = data[n:]
		if err := fn(e); err != nil {
			return err
		}
	}
	if len(data) != 0 {
		return ErrCorrupt
	}
	return nil
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
	return append(dst, b.Data...)
}

// UnmarshalRecord fills b from a spill record; b.Data aliases rec.
func (b *Batch) UnmarshalRecord(rec []byte) error {
	if len(rec) < 5 {
		return ErrCorrupt
	}
	b.MaybeStored = rec[0]&batchFlagMaybeStored != 0
	b.N = int(binary.LittleEndian.Uint32(rec[1:]))
	b.Data = rec[5:]
	if b.N < 0 || b.N > len(b.Data)/fixedLen {
		return ErrCorrupt
	}
	return nil
}
