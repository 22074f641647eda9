package clickhouse

import (
	"context"
	"syscall"
	"testing"
	"time"
)

// processCPU is the CPU time (user + system) this process has used: the inserter's cost per event without the server's,
// which runs in its own process.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFillColumns measures turning a 50k-event batch into insert columns (the CPU the inserter spends per batch besides the network).
func BenchmarkFillColumns(b *testing.B) {
	batch := testBatch(50000, 3)
	c := new(columns)
	b.ReportAllocs()
	b.SetBytes(int64(batch.Size()))
	for i := 0; i < b.N; i++ {
		if err := c.fill(batch, nil, insertChunk, func(*columns) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/50000, "ns/event")
}

// BenchmarkSinkInsert inserts 50k-event batches into a real ClickHouse (skipped without ADTRACKER_TEST_CH_ADDR). B/op is what one
// insert allocates: with chunked sends it is one chunk's driver columns, not the whole batch's. cpu-ns/event is this process's
// CPU (the fill, the driver, the collector); ns/event is wall time, the server's work included.
func BenchmarkSinkInsert(b *testing.B) {
	db := migrated(b)
	s := NewSink(db)
	batch := randomBatch(50000)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(batch.Size()))
	b.ResetTimer() // B/op counts the inserts, not building the batch
	cpu := processCPU(b)
	for i := 0; i < b.N; i++ {
		if err := s.Insert(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((processCPU(b)-cpu).Nanoseconds())/float64(b.N)/50000, "cpu-ns/event")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/50000, "ns/event")
}
