package clickhouse

import "testing"

// BenchmarkFillColumns measures turning a 50k-event batch into insert columns (the CPU the inserter spends per batch besides the network).
func BenchmarkFillColumns(b *testing.B) {
	batch := testBatch(50000, 3)
	c := new(columns)
	b.ReportAllocs()
	b.SetBytes(int64(batch.Size()))
	for i := 0; i < b.N; i++ {
		if err := c.fill(batch, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/50000, "ns/event")
}
