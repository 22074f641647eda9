package spill

import (
	"errors"
	"io"
	"os"
	"testing"
	"time"
)

// benchAppend appends size-byte records, starting a fresh queue every 256 MiB so a long
// run does not fill the disk.
func benchAppend(b *testing.B, size int, opt Options) {
	rec := make([]byte, size)
	for i := range rec {
		rec[i] = byte(i)
	}
	base := b.TempDir()
	var q *Queue
	reopen := func() {
		if q != nil {
			q.Close()
		}
		dir, err := os.MkdirTemp(base, "q")
		if err != nil {
			b.Fatal(err)
		}
		if q, err = Open(dir, opt); err != nil {
			b.Fatal(err)
		}
	}
	reopen()
	defer func() { _ = q.Close() }()
	perQueue := (256 << 20) / (size + frameSize)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i > 0 && i%perQueue == 0 {
			b.StopTimer()
			reopen()
			b.StartTimer()
		}
		if err := q.Append(rec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppend(b *testing.B) {
	interval := Options{FsyncInterval: 100 * time.Millisecond}
	b.Run("1KiB/fsync=100ms", func(b *testing.B) { benchAppend(b, 1<<10, interval) })
	b.Run("64KiB/fsync=100ms", func(b *testing.B) { benchAppend(b, 64<<10, interval) })
	b.Run("1KiB/fsync=each", func(b *testing.B) { benchAppend(b, 1<<10, Options{}) })
	b.Run("64KiB/fsync=each", func(b *testing.B) { benchAppend(b, 64<<10, Options{}) })
}

// BenchmarkNext reads 64 KiB records back (from the page cache, as a replayer right behind
// the writer would), rewinding at the end instead of acking so the data stays.
func BenchmarkNext(b *testing.B) {
	const size = 64 << 10
	rec := make([]byte, size)
	q, err := Open(b.TempDir(), Options{FsyncInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	const n = 2048 // 128 MiB, read round and round via Rewind
	for range n {
		if err := q.Append(rec); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		_, _, err := q.Next()
		if errors.Is(err, io.EOF) {
			q.Rewind()
			_, _, err = q.Next()
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}
