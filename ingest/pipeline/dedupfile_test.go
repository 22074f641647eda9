package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/adtracker/adtracker/ingest/event"
)

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

// The cost at Close of writing a full default window.
func BenchmarkDedupSaveFullWindow(b *testing.B) {
	n := Defaults().DedupWindow
	w := newDupWindow(n)
	for i := range n {
		id := idN(i)
		w.seenID(&id)
	}
	path := filepath.Join(b.TempDir(), dedupFile)
	b.ReportAllocs()
	for b.Loop() {
		if err := writeFileAtomic(path, marshalWindow(w)); err != nil {
			b.Fatal(err)
		}
	}
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
