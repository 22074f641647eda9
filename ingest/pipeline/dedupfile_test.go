package pipeline

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/adtracker/adtracker/ingest/event"
)

// marshalWindow is the whole file writeWindow writes, in memory.
func marshalWindow(w *dupWindow) []byte {
	var b bytes.Buffer
	if err := writeWindow(&b, w); err != nil {
		panic(err)
	}
	return b.Bytes()
}

func idN(i int) event.UUID {
	var id event.UUID
	id[0], id[1], id[2], id[3] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
	id[15] = 0x55
	return id
}

// The file keeps the newest ids in order: a window that wrapped round, loaded into a smaller one, keeps the newest of them.
func TestDedupFileRoundTrip(t *testing.T) {
	w := newDupWindow(100)
	for i := range 250 { // wraps the FIFO twice
		id := idN(i)
		w.seenID(&id)
	}
	data := marshalWindow(w)
	w2 := newDupWindow(100)
	if n, err := unmarshalWindow(w2, data); err != nil || n != 100 {
		t.Fatalf("load: %d, %v", n, err)
	}
	small := newDupWindow(10)
	if n, err := unmarshalWindow(small, data); err != nil || n != 10 {
		t.Fatalf("load into a smaller window: %d, %v", n, err)
	}
	for i := 150; i < 250; i++ { // a hit changes nothing
		id := idN(i)
		if !w2.seenID(&id) {
			t.Fatalf("id %d not restored", i)
		}
	}
	if id := idN(149); w2.seenID(&id) {
		t.Fatal("evicted id 149 restored")
	}
	for i := 240; i < 250; i++ {
		id := idN(i)
		if !small.seenID(&id) {
			t.Fatalf("smaller window lost newest id %d", i)
		}
	}
}

// Any single damaged byte, and any truncation, is detected: the loader starts empty rather than trusting a wrong window.
func TestDedupFileCorruptionDetected(t *testing.T) {
	w := newDupWindow(20)
	for i := range 20 {
		id := idN(i)
		w.seenID(&id)
	}
	data := marshalWindow(w)
	for i := range data {
		bad := append([]byte(nil), data...)
		bad[i] ^= 0x01
		if _, err := unmarshalWindow(newDupWindow(20), bad); err == nil {
			t.Fatalf("flipped bit in byte %d of %d not detected", i, len(data))
		}
	}
	for n := range len(data) {
		if _, err := unmarshalWindow(newDupWindow(20), data[:n]); err == nil {
			t.Fatalf("truncation to %d bytes not detected", n)
		}
	}
}

// A clean stop (Close) persists the window; a client's retry after the restart is a duplicate. A damaged file is logged and the
// pipeline starts with an empty window.
func TestDedupSurvivesCleanRestart(t *testing.T) {
	cfg := testConfig(t)
	sink := newFake()
	p, err := Open(cfg, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	enqueueN(t, p, 0, 50, true)
	waitFor(t, "stored", func() bool { n, _ := sink.count(); return n == 50 })
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cfg.Dir, dedupFile)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("dedup file: %v %v", fi, err)
	}

	p2, err := Open(cfg, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	enqueueN(t, p2, 0, 50, true) // the retries
	waitFor(t, "retries dropped", func() bool { return p2.Duplicates.Load() == 50 })
	if err := p2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, d := sink.count(); n != 50 || d != 0 {
		t.Fatalf("stored %d, %d twice", n, d)
	}

	// Damage one byte: the next start logs it and remembers nothing from before.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xFF
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.ErrorLevel)
	p3, err := Open(cfg, sink, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	if p3.dedup.size() != 0 {
		t.Fatalf("window holds %d ids from a damaged file", p3.dedup.size())
	}
	_ = p3.Close(context.Background())
	if logs.FilterField(zap.String("file", path)).Len() != 1 {
		t.Fatalf("damaged dedup file not logged with its path: %v", logs.All())
	}
}

// The start-up cost of restoring a full default window (262,144 ids, a 4 MiB file): decode, checksum and insert every id.
func BenchmarkDedupLoadFullWindow(b *testing.B) {
	n := Defaults().DedupWindow
	w := newDupWindow(n)
	for i := range n {
		id := idN(i)
		w.seenID(&id)
	}
	data := marshalWindow(w)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := unmarshalWindow(newDupWindow(n), data); err != nil {
			b.Fatal(err)
		}
	}
}

// The cost at Close of writing a full default window: write, fsync, rename.
func BenchmarkDedupSaveFullWindow(b *testing.B) {
	p := fullWindowPipeline(b)
	b.ReportAllocs()
	for b.Loop() {
		p.saveDedup()
	}
}

// The batcher's share of a checkpoint of a full default window: writing the file into the page cache. The writer goroutine's fsync
// and rename are not in it (the writer is not started).
func BenchmarkDedupCheckpointFullWindow(b *testing.B) {
	p := fullWindowPipeline(b)
	cp := &p.dedupCP
	cp.every, cp.files = time.Nanosecond, make(chan *os.File, 1)
	b.SetBytes(int64(16 * p.dedup.size()))
	b.ReportAllocs()
	for b.Loop() {
		cp.lastAdded = 0
		p.checkpointDedup(time.Now())
		f := <-cp.files
		_ = f.Close()
		cp.busy.Store(false)
	}
}

func fullWindowPipeline(tb testing.TB) *Pipeline {
	n := Defaults().DedupWindow
	w := newDupWindow(n)
	for i := range n {
		id := idN(i)
		w.seenID(&id)
	}
	return &Pipeline{dedup: w, dedupAt: filepath.Join(tb.TempDir(), dedupFile), log: zap.NewNop()}
}

// A running checkpoint streams the window to the file: it allocates a small fraction of the window (it used to copy all of it,
// 4 MiB for the default window, every checkpoint), and what the writer renames into place is the window, byte for byte.
func TestDedupCheckpointStreamsTheWindow(t *testing.T) {
	p := fullWindowPipeline(t)
	p.cfg.DedupCheckpoint = time.Nanosecond
	p.startDedupCheckpoints()
	want := marshalWindow(p.dedup)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	p.checkpointDedup(time.Now())
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 16<<10 {
		t.Errorf("a checkpoint of a %d-byte window allocated %d bytes", len(want), got)
	}
	p.stopDedupCheckpoints() // waits for the rename
	got, err := os.ReadFile(p.dedupAt)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("checkpoint file: %d bytes (want %d), %v", len(got), len(want), err)
	}
	if tmps, _ := filepath.Glob(filepath.Join(filepath.Dir(p.dedupAt), ".*.tmp")); len(tmps) != 0 {
		t.Fatalf("temporaries left: %v", tmps)
	}
}

// The file holds the window's ids oldest first, whether the FIFO is empty, filling, full, or wrapped round at any point; and a
// failed write is returned, not swallowed.
func TestWriteWindowOldestFirst(t *testing.T) {
	const size = 300
	for _, added := range []int{0, 1, 299, 300, 301, 450, 599, 600, 1000} {
		w := newDupWindow(size)
		for i := range added {
			id := idN(i)
			w.seenID(&id)
		}
		want := []byte(dedupMagic)
		want = binary.LittleEndian.AppendUint32(want, uint32(min(added, size)))
		for i := max(0, added-size); i < added; i++ {
			id := idN(i)
			want = append(want, id[:]...)
		}
		want = binary.LittleEndian.AppendUint32(want, crc32.Checksum(want, castagnoli))
		var b bytes.Buffer
		if err := writeWindow(&b, w); err != nil || !bytes.Equal(b.Bytes(), want) {
			t.Fatalf("%d ids added: %d bytes, want %d, %v", added, b.Len(), len(want), err)
		}
	}
	w := newDupWindow(size)
	for i := range 450 {
		id := idN(i)
		w.seenID(&id)
	}
	for after := range 4 {
		fw := &failingWriter{left: after}
		if err := writeWindow(fw, w); !errors.Is(err, errDiskFull) {
			t.Fatalf("write failing after %d writes: %v", after, err)
		}
	}
}

var errDiskFull = errors.New("disk full")

type failingWriter struct{ left int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.left == 0 {
		return 0, errDiskFull
	}
	f.left--
	return len(p), nil
}

// A killed process (no Close, so no save at stop) still leaves the window of its last checkpoint: retries of events it had
// already stored are dropped after the restart.
func TestDedupCheckpointSurvivesCrash(t *testing.T) {
	cfg := testConfig(t)
	cfg.DedupCheckpoint = 20 * time.Millisecond
	sink := newFake()
	p, err := Open(cfg, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	enqueueN(t, p, 0, 50, true)
	waitFor(t, "stored", func() bool { n, _ := sink.count(); return n == 50 })
	path := filepath.Join(cfg.Dir, dedupFile)
	waitFor(t, "a checkpoint with every id", func() bool {
		data, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		n, err := unmarshalWindow(newDupWindow(100), data)
		return err == nil && n == 50
	})
	crash(t, p)

	p2, err := Open(cfg, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	enqueueN(t, p2, 0, 50, true) // the retries
	waitFor(t, "retries dropped", func() bool { return p2.Duplicates.Load() == 50 })
	if err := p2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, d := sink.count(); n != 50 || d != 0 {
		t.Fatalf("stored %d, %d twice", n, d)
	}
}

// FuzzUnmarshalWindow reads arbitrary files as the duplicate window; with fixSum the last four bytes are replaced by the right
// checksum, so the fuzzer gets past it to the header and the id count. Nothing may panic, and what is accepted is a whole file:
// its length matches its count, and the window keeps the newest of its ids.
func FuzzUnmarshalWindow(f *testing.F) {
	w := newDupWindow(4)
	for i := range 6 {
		id := idN(i)
		w.seenID(&id)
	}
	f.Add(marshalWindow(w), false)
	f.Add([]byte(dedupMagic+"\x01\x00\x00\x00"), true)
	f.Add([]byte(dedupMagic+"\x02\x00\x00\x00"+strings.Repeat("\x07", 32)+"sum."), true) // one id twice
	f.Add([]byte{}, true)
	f.Fuzz(func(t *testing.T, data []byte, fixSum bool) {
		if fixSum && len(data) >= 4 {
			data = binary.LittleEndian.AppendUint32(bytes.Clone(data[:len(data)-4]), crc32.Checksum(data[:len(data)-4], castagnoli))
		}
		into := newDupWindow(3)
		n, err := unmarshalWindow(into, data)
		if err != nil {
			if !errors.Is(err, errDedupCorrupt) {
				t.Fatalf("error %v is not errDedupCorrupt", err)
			}
			return
		}
		count := int(binary.LittleEndian.Uint32(data[len(dedupMagic):]))
		// A file may name an id twice (writeWindow never does); the window keeps it once.
		if len(data) != len(dedupMagic)+4+16*count+4 || n != min(count, 3) || into.size() > n || into.size() == 0 && n > 0 {
			t.Fatalf("accepted %d bytes holding %d ids: read %d, window %d", len(data), count, n, into.size())
		}
	})
}
