package pipeline

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/adtracker/adtracker/ingest/event"
)

// deadLetterBatch is a batch of n events as the inserter hands one to deadLetter.
func deadLetterBatch(n int) *event.Batch {
	b := &event.Batch{}
	for i := range n {
		e := mkEvent(i, true)
		e.SetUserAgent([]byte("Mozilla/5.0 (test)"))
		b.Append(e)
	}
	return b
}

func writeDeadLetter(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "x"+batchSuffix)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A dead letter waits on disk for a human: any byte that changed there, or a file cut short, is refused, never read as events.
// Without the checksum most of these flips decode as valid events with another ad id, time or address.
func TestDeadLetterCorruptionDetected(t *testing.T) {
	want := deadLetterBatch(3)
	data := marshalDeadLetter(want)
	got, err := ReadDeadLetter(writeDeadLetter(t, data))
	if err != nil {
		t.Fatal(err)
	}
	if got.N != want.N || !bytes.Equal(got.MarshalRecord(nil), want.MarshalRecord(nil)) {
		t.Fatalf("read back %d events, want the %d written", got.N, want.N)
	}
	for i := range data {
		for _, bit := range []byte{0x01, 0x80} {
			bad := bytes.Clone(data)
			bad[i] ^= bit
			if _, err := decodeDeadLetter(bad); !errors.Is(err, ErrDeadLetterDamaged) {
				t.Fatalf("bit %#x of byte %d of %d flipped: %v", bit, i, len(data), err)
			}
		}
	}
	for n := range len(data) {
		if _, err := decodeDeadLetter(data[:n]); !errors.Is(err, ErrDeadLetterDamaged) {
			t.Fatalf("cut to %d of %d bytes: %v", n, len(data), err)
		}
	}
	if _, err := ReadDeadLetter(writeDeadLetter(t, append(bytes.Clone(data), 0))); !errors.Is(err, ErrDeadLetterDamaged) {
		t.Fatalf("a byte appended: %v", err)
	}
}

// Files written before the checksum — the spill record alone — are still read, so an upgrade does not strand them.
func TestDeadLetterWithoutChecksumStillRead(t *testing.T) {
	want := deadLetterBatch(4)
	want.MaybeStored = true
	got, err := ReadDeadLetter(writeDeadLetter(t, want.MarshalRecord(nil)))
	if err != nil {
		t.Fatal(err)
	}
	if got.N != 4 || !got.MaybeStored || !bytes.Equal(got.MarshalRecord(nil), want.MarshalRecord(nil)) {
		t.Fatalf("read %d events (maybe stored %v)", got.N, got.MaybeStored)
	}
}

// The dead-letter directory, listed: a damaged file says why, and is not counted as events.
func TestListDeadLettersNamesDamage(t *testing.T) {
	dir := t.TempDir()
	dl := filepath.Join(dir, DeadLetterDir)
	if err := os.MkdirAll(dl, 0o700); err != nil {
		t.Fatal(err)
	}
	good := marshalDeadLetter(deadLetterBatch(2))
	bad := bytes.Clone(good)
	bad[len(deadLetterMagic)+10] ^= 0x04
	for name, data := range map[string][]byte{"a.batch": good, "b.batch": bad, "b.error.txt": []byte("dead_lettered: refused\n")} {
		if err := os.WriteFile(filepath.Join(dl, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	files, err := ListDeadLetters(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].Rows != 2 || files[0].Damage != "" || files[1].Rows != -1 ||
		files[1].Damage != "dead-letter file damaged: checksum mismatch" || files[1].Error != "dead_lettered: refused" {
		t.Fatalf("%+v", files)
	}
}

func FuzzDecodeDeadLetter(f *testing.F) {
	f.Add(marshalDeadLetter(deadLetterBatch(2)))
	f.Add(deadLetterBatch(2).MarshalRecord(nil))
	f.Add([]byte(deadLetterMagic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := decodeDeadLetter(data)
		if err != nil {
			if !errors.Is(err, ErrDeadLetterDamaged) {
				t.Fatalf("error %v is not ErrDeadLetterDamaged", err)
			}
			return
		}
		// Whatever is accepted is exactly what its writer would have written for those events.
		again := b.MarshalRecord(nil)
		if bytes.HasPrefix(data, []byte(deadLetterMagic)) {
			again = marshalDeadLetter(b)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("accepted %d bytes that do not re-encode to themselves", len(data))
		}
	})
}
