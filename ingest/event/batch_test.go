package event

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

// A batch of references must be indistinguishable from a batch of copies: the sink decodes it with Each and the spill writes it
// with MarshalRecord, and a replayed record must come back as the same events.
func TestBatchRefsMatchCopies(t *testing.T) {
	var encs [][]byte
	for i := 0; i < 5; i++ {
		e := sampleEvent()
		e.AdID = uint64(100 + i)
		e.SetViewerID(bytes.Repeat([]byte("v"), i*7))
		encs = append(encs, e.AppendBinary(nil))
	}
	var copies, refs Batch
	for _, p := range encs {
		copies.AppendEncoded(p)
		refs.AppendRef(p)
	}
	ads := func(b *Batch) []uint64 {
		t.Helper()
		var out []uint64
		var e Event
		if err := b.Each(&e, func(e *Event) error { out = append(out, e.AdID); return nil }); err != nil {
			t.Fatalf("Each: %v", err)
		}
		return out
	}
	if got, want := ads(&refs), ads(&copies); len(got) != 5 || !slices.Equal(got, want) {
		t.Fatalf("refs decode to %v, copies to %v", got, want)
	}
	if refs.Size() != copies.Size() || refs.Size() != len(copies.Data) {
		t.Fatalf("Size: refs %d, copies %d, data %d", refs.Size(), copies.Size(), len(copies.Data))
	}
	refs.MaybeStored, copies.MaybeStored = true, true
	rec := refs.MarshalRecord(nil)
	if !bytes.Equal(rec, copies.MarshalRecord(nil)) {
		t.Fatal("MarshalRecord differs between refs and copies")
	}
	// A batch reused for a replay after holding references must forget them.
	var back Batch
	back.AppendRef(encs[0])
	if err := back.UnmarshalRecord(rec); err != nil {
		t.Fatal(err)
	}
	if got := ads(&back); !back.MaybeStored || back.N != 5 || !slices.Equal(got, ads(&copies)) {
		t.Fatalf("record read back as %v (MaybeStored %v, N %d)", got, back.MaybeStored, back.N)
	}
	refs.Reset()
	if refs.N != 0 || refs.Size() != 0 || len(refs.Refs) != 0 || refs.MaybeStored {
		t.Fatalf("Reset left %+v", refs)
	}
}

// A reference with bytes after its event is damage (a slot holds exactly one event), not a second event.
func TestBatchRefWithTrailingBytesIsCorrupt(t *testing.T) {
	e := sampleEvent()
	var b Batch
	b.AppendRef(append(e.AppendBinary(nil), 0))
	var got Event
	if err := b.Each(&got, func(*Event) error { return nil }); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Each = %v, want ErrCorrupt", err)
	}
}

// A record's flags byte has one bit (maybe stored); any other set is damage, and is what tells an older dead-letter file (the
// record alone, flags 0 or 1) from a checksummed one (a magic starting with 'A').
func TestBatchRecordWithUnknownFlagIsCorrupt(t *testing.T) {
	var b Batch
	e := sampleEvent()
	b.Append(&e)
	rec := b.MarshalRecord(nil)
	for _, flags := range []byte{2, 0x80, 'A'} {
		bad := append([]byte{flags}, rec[1:]...)
		var got Batch
		if err := got.UnmarshalRecord(bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flags %#x: %v, want ErrCorrupt", flags, err)
		}
	}
	var got Batch
	if err := got.UnmarshalRecord(append([]byte{batchFlagMaybeStored}, rec[1:]...)); err != nil || !got.MaybeStored {
		t.Fatalf("maybe stored: %v %v", err, got.MaybeStored)
	}
}
