package spill

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// rec is record i: its id, then filler that differs per record, of varying length.
func rec(i int) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(i))
	for j := range 20 + (i*37)%200 {
		b = append(b, byte(i*7+j))
	}
	return b
}

// recID checks that b is exactly rec(id) for the id it carries.
func recID(t *testing.T, b []byte) int {
	t.Helper()
	if len(b) < 4 {
		t.Fatalf("record of %d bytes", len(b))
	}
	id := int(binary.LittleEndian.Uint32(b))
	if !bytes.Equal(b, rec(id)) {
		t.Fatalf("record %d has wrong content", id)
	}
	return id
}

func open(t *testing.T, dir string, opt Options) *Queue {
	t.Helper()
	q, err := Open(dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func appendRange(t *testing.T, q *Queue, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := q.Append(rec(i)); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
}

// readAll reads until io.EOF and returns the ids and the position of the last record.
func readAll(t *testing.T, q *Queue) ([]int, Position) {
	t.Helper()
	var ids []int
	var last Position
	for {
		b, pos, err := q.Next()
		if errors.Is(err, io.EOF) {
			return ids, last
		}
		if err != nil {
			t.Fatal(err)
		}
		if !last.before(pos) {
			t.Fatalf("position %v after %v", pos, last)
		}
		ids = append(ids, recID(t, b))
		last = pos
	}
}

func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

func TestAppendReopenRead(t *testing.T) {
	f := func(name string, opt Options, n int) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			q := open(t, dir, opt)
			appendRange(t, q, 0, n)
			if ids, _ := readAll(t, q); !slices.Equal(ids, seq(0, n)) {
				t.Fatalf("before reopen read %v", ids)
			}
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			q = open(t, dir, opt)
			if ids, _ := readAll(t, q); !slices.Equal(ids, seq(0, n)) {
				t.Fatalf("after reopen read %v", ids)
			}
			if st := q.Stats(); st != (Stats{}) {
				t.Fatalf("clean reopen has stats %+v", st)
			}
			// Next after io.EOF sees later appends.
			appendRange(t, q, n, n+3)
			if ids, _ := readAll(t, q); !slices.Equal(ids, seq(n, n+3)) {
				t.Fatalf("after EOF read %v", ids)
			}
		})
	}
	f("fsync each", Options{}, 50)
	f("fsync interval", Options{FsyncInterval: time.Millisecond}, 200)
	f("small segments", Options{SegmentBytes: 500}, 200)
	f("record larger than segment", Options{SegmentBytes: 16}, 20)
	f("empty", Options{}, 0)
}

func TestReopenDoesNotPileUpEmptySegments(t *testing.T) {
	dir := t.TempDir()
	for range 5 {
		q := open(t, dir, Options{})
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if got := segFiles(t, dir); len(got) != 1 {
		t.Fatalf("segments after 5 empty opens: %v", got)
	}
}

func TestAckResume(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, Options{SegmentBytes: 1000})
	appendRange(t, q, 0, 30)
	var pos []Position
	for range 12 {
		b, p, err := q.Next()
		if err != nil {
			t.Fatal(err)
		}
		recID(t, b)
		pos = append(pos, p)
	}
	if err := q.Ack(pos[9]); err != nil {
		t.Fatal(err)
	}
	if err := q.Ack(pos[3]); err != nil { // older than the ack: nothing happens
		t.Fatal(err)
	}
	if st := q.Stats(); st.Acked != 10 || st.Appended != 30 {
		t.Fatalf("stats %+v", st)
	}
	if err := q.Ack(Position{Segment: pos[11].Segment + 5, Offset: 8}); !errors.Is(err, ErrPosition) {
		t.Fatalf("ack past the reader: %v", err)
	}
	// Next goes on after the last record read, not after the ack.
	if ids, _ := readAll(t, q); !slices.Equal(ids, seq(12, 30)) {
		t.Fatalf("read on %v", ids)
	}
	q.Close()

	q = open(t, dir, Options{SegmentBytes: 1000})
	ids, last := readAll(t, q)
	if !slices.Equal(ids, seq(10, 30)) {
		t.Fatalf("after reopen read %v", ids)
	}
	if err := q.Ack(last); err != nil {
		t.Fatal(err)
	}
	q.Close()
	q = open(t, dir, Options{SegmentBytes: 1000})
	if ids, _ := readAll(t, q); len(ids) != 0 {
		t.Fatalf("everything acked, read %v", ids)
	}
}

func TestRewind(t *testing.T) {
	q := open(t, t.TempDir(), Options{SegmentBytes: 300})
	appendRange(t, q, 0, 10)
	next := func(want int) Position {
		t.Helper()
		b, p, err := q.Next()
		if err != nil {
			t.Fatal(err)
		}
		if id := recID(t, b); id != want {
			t.Fatalf("read %d, want %d", id, want)
		}
		return p
	}
	next(0)
	next(1)
	q.Rewind()
	next(0)
	p := next(1)
	next(2)
	next(3)
	if err := q.Ack(p); err != nil {
		t.Fatal(err)
	}
	q.Rewind()
	next(2)
	next(3)
	p = next(4)
	if err := q.Ack(p); err != nil {
		t.Fatal(err)
	}
	if st := q.Stats(); st.Acked != 5 {
		t.Fatalf("acked %d records, want 5 (re-reads count once)", st.Acked)
	}
}

func TestRotationAndDeletion(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, Options{SegmentBytes: 1024})
	appendRange(t, q, 0, 100)
	n := q.Segments()
	if n < 10 || len(segFiles(t, dir)) != n {
		t.Fatalf("%d segments, %d files", n, len(segFiles(t, dir)))
	}
	var size int64
	for _, p := range segFiles(t, dir) {
		fi, _ := os.Stat(p)
		size += fi.Size()
		if fi.Size() > 1024 {
			t.Fatalf("%s has %d bytes", p, fi.Size())
		}
	}
	if q.Bytes() != size {
		t.Fatalf("Bytes() = %d, files hold %d", q.Bytes(), size)
	}

	// Ack into the middle: the segments before the acked record's go, its own stays.
	var mid Position
	for range 50 {
		_, p, err := q.Next()
		if err != nil {
			t.Fatal(err)
		}
		mid = p
	}
	if err := q.Ack(mid); err != nil {
		t.Fatal(err)
	}
	files := segFiles(t, dir)
	if first := filepath.Base(files[0]); first != segName(mid.Segment) && first != segName(mid.Segment+1) {
		t.Fatalf("oldest segment %s after ack %v", first, mid)
	}
	if q.Segments() != len(files) {
		t.Fatalf("Segments() = %d, %d files", q.Segments(), len(files))
	}

	ids, last := readAll(t, q)
	if !slices.Equal(ids, seq(50, 100)) {
		t.Fatalf("read %v", ids)
	}
	if err := q.Ack(last); err != nil {
		t.Fatal(err)
	}
	// Only the segment being written survives a full ack.
	files = segFiles(t, dir)
	fi, err := os.Stat(files[len(files)-1])
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || q.Segments() != 1 || q.Bytes() != fi.Size() {
		t.Fatalf("after full ack: files %v, Segments %d, Bytes %d", files, q.Segments(), q.Bytes())
	}
}

func TestQuota(t *testing.T) {
	f := func(name string, opt Options) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			q := open(t, dir, opt)
			n := 0
			for ; ; n++ {
				before := q.Bytes()
				err := q.Append(rec(n))
				if errors.Is(err, ErrFull) {
					if q.Bytes() != before || before+int64(frameSize+len(rec(n))) <= opt.MaxBytes {
						t.Fatalf("ErrFull at %d bytes of %d for a %d-byte record (Bytes now %d)", before, opt.MaxBytes, len(rec(n)), q.Bytes())
					}
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if q.Bytes() > opt.MaxBytes {
					t.Fatalf("Bytes() = %d over quota %d", q.Bytes(), opt.MaxBytes)
				}
			}
			if n < 5 {
				t.Fatalf("only %d records fit", n)
			}
			ids, last := readAll(t, q)
			if !slices.Equal(ids, seq(0, n)) {
				t.Fatalf("read %v", ids)
			}
			if err := q.Append(rec(n)); !errors.Is(err, ErrFull) {
				t.Fatalf("reading alone frees nothing, got %v", err)
			}
			if err := q.Ack(last); err != nil {
				t.Fatal(err)
			}
			// The same records fit again: acked space is all given back.
			appendRange(t, q, 0, n)
			if ids, _ := readAll(t, q); !slices.Equal(ids, seq(0, n)) {
				t.Fatalf("after ack read %v", ids)
			}
		})
	}
	f("several segments", Options{SegmentBytes: 1000, MaxBytes: 5000})
	// All in the segment being written, which is never deleted: it must be replaced.
	f("one segment", Options{SegmentBytes: 1 << 20, MaxBytes: 5000})
}

func TestOldestAge(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, Options{SegmentBytes: 500})
	if q.OldestAge() != 0 {
		t.Fatal("empty queue has an age")
	}
	appendRange(t, q, 0, 10)
	q.Close()
	old := time.Now().Add(-time.Hour)
	for _, p := range segFiles(t, dir) {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	q = open(t, dir, Options{SegmentBytes: 500})
	if age := q.OldestAge(); age < time.Hour {
		t.Fatalf("OldestAge() = %v, want ≥ 1h", age)
	}
	_, last := readAll(t, q)
	if err := q.Ack(last); err != nil {
		t.Fatal(err)
	}
	if age := q.OldestAge(); age != 0 {
		t.Fatalf("OldestAge() = %v with everything acked", age)
	}
}

func TestAppendErrors(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, Options{})
	if err := q.Append(nil); !errors.Is(err, ErrEmpty) {
		t.Fatalf("empty: %v", err)
	}
	if err := q.Append(make([]byte, MaxRecordBytes+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v", err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := q.Append([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
	if _, _, err := q.Next(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after close: %v", err)
	}
	if err := q.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
}

func TestStrayFilesIgnored(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"1.seg", "notes.txt", "00000000000000000001.seg.bak"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("hello"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	q := open(t, dir, Options{})
	appendRange(t, q, 0, 3)
	if ids, _ := readAll(t, q); !slices.Equal(ids, seq(0, 3)) {
		t.Fatalf("read %v", ids)
	}
	if st := q.Stats(); st != (Stats{Appended: 3}) {
		t.Fatalf("stats %+v", st)
	}
	for _, p := range segFiles(t, dir) {
		if strings.HasSuffix(p, "/1.seg") {
			return
		}
	}
	t.Fatal("stray 1.seg was removed")
}

func TestLargeRecords(t *testing.T) {
	// Around and past the reader's window, so it must grow and shrink again.
	sizes := []int{1, readChunk - frameSize, readChunk + 1, 5 << 20, 10, 3 * readChunk, 7}
	body := func(i, n int) []byte {
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(i*13 + j/7)
		}
		return b
	}
	dir := t.TempDir()
	q := open(t, dir, Options{FsyncInterval: time.Hour, SegmentBytes: 4 << 20})
	for i, n := range sizes {
		if err := q.Append(body(i, n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Sync(); err != nil {
		t.Fatal(err)
	}
	q.Close()
	if err := q.Sync(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Sync after Close: %v", err)
	}
	q = open(t, dir, Options{})
	for i, n := range sizes {
		b, _, err := q.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, body(i, n)) {
			t.Fatalf("record %d: %d bytes back, want %d", i, len(b), n)
		}
	}
	if _, _, err := q.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last record: %v", err)
	}
}
