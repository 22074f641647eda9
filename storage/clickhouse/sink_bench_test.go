package clickhouse

import (
	"context"
	"testing"

	"github.com/adtracker/adtracker/internal/testenv"
)

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
	cpu := testenv.ProcessCPU(b)
	for i := 0; i < b.N; i++ {
		if err := s.Insert(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((testenv.ProcessCPU(b)-cpu).Nanoseconds())/float64(b.N)/50000, "cpu-ns/event")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/50000, "ns/event")
}
