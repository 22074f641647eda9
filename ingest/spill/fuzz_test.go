package spill

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzOpenSegment feeds arbitrary bytes as the only segment file (after a valid header
// when withHeader). Open and Next must not fail or panic, every record returned must sit
// in the file behind a frame whose length and CRC match it, and the queue must still
// take and return a new record.
func FuzzOpenSegment(f *testing.F) {
	valid := frameBytes(frameBytes(nil, []byte("one")), []byte("two"))
	f.Add(valid, true)
	f.Add(valid[:len(valid)-1], true)
	f.Add(append(appendHeader(nil), valid...), false)
	f.Fuzz(func(t *testing.T, data []byte, withHeader bool) {
		seg := data
		if withHeader {
			seg = append(appendHeader(nil), data...)
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segName(1)), seg, 0o644); err != nil {
			t.Fatal(err)
		}
		q, err := Open(dir, Options{FsyncInterval: time.Hour})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer q.Close()
		for k := 0; ; k++ {
			rec, pos, err := q.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			start := pos.Offset - frameSize - int64(len(rec))
			if pos.Segment != 1 || start < headerSize || pos.Offset > int64(len(seg)) || k > len(seg)/frameSize {
				t.Fatalf("record %d of %d bytes at %v in a %d-byte segment", k, len(rec), pos, len(seg))
			}
			h := seg[start:]
			if int(binary.LittleEndian.Uint32(h)) != len(rec) || binary.LittleEndian.Uint32(h[4:]) != checksum(rec) ||
				!bytes.Equal(seg[start+frameSize:pos.Offset], rec) {
				t.Fatalf("record %d at %v does not match its frame", k, pos)
			}
		}
		if err := q.Append([]byte("after")); err != nil {
			t.Fatal(err)
		}
		rec, _, err := q.Next()
		if err != nil || string(rec) != "after" {
			t.Fatalf("after recovery Next = %q, %v", rec, err)
		}
	})
}

func frameBytes(b, p []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(p)))
	b = binary.LittleEndian.AppendUint32(b, checksum(p))
	return append(b, p...)
}
