package pipeline

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/adtracker/adtracker/ingest/event"
)

// sizedSink records the rows of every insert as it starts, then holds it behind the gatedSink's gate.
type sizedSink struct {
	*gatedSink
	mu    sync.Mutex
	sizes []int
}

func (s *sizedSink) Insert(ctx context.Context, b *event.Batch) error {
	s.mu.Lock()
	s.sizes = append(s.sizes, b.N)
	s.mu.Unlock()
	return s.gatedSink.Insert(ctx, b)
}

func (s *sizedSink) started() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sizes)
}

// A batch that could leave early (FlushInterval, a pause in the input) while the inserter is busy keeps filling instead of
// queueing: what arrives during an insert goes into the next insert whole. Queued, it would have stopped growing and a third batch
// would have started beside it in the ring, so under batch traffic inserts would be a third of the ring instead of half, and
// ClickHouse pays per insert (BENCHMARKS.md, "Design measurements").
func TestBatchFillsWhileInserterBusy(t *testing.T) {
	cfg := testConfig(t)
	cfg.BatchSize = 1000
	cfg.InsertTimeout = time.Minute // a held insert must not time out into the spill
	sink := &sizedSink{gatedSink: &gatedSink{fakeSink: newFake(), gate: make(chan struct{})}}
	p, err := Open(cfg, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close(context.Background()) }()

	enqueueN(t, p, 0, 10, true)
	waitFor(t, "the first insert started", func() bool { return len(sink.started()) == 1 })
	// Two groups, each followed by ten flush intervals of silence: either pause would send a batch to a free inserter.
	enqueueN(t, p, 10, 10, true)
	time.Sleep(10 * cfg.FlushInterval)
	enqueueN(t, p, 20, 10, true)
	time.Sleep(10 * cfg.FlushInterval)
	close(sink.gate)
	waitFor(t, "everything stored", func() bool { n, _ := sink.count(); return n == 30 })
	// Two inserts: the first group (all of it, unless a slow machine let a pause split it before the first insert began), and
	// everything that came while that insert was held.
	if got := sink.started(); len(got) != 2 || got[1] < 20 {
		t.Fatalf("rows per insert %v, want two inserts, the second with the 20 events that came during the first", got)
	}
	if _, d := sink.count(); d != 0 {
		t.Fatalf("%d events stored twice", d)
	}
}

// The batcher naps busyNap while records arrive at busyRate per millisecond or more, or while half the ring or more is taken, and
// quietNap otherwise; the rate is what arrived during the last nap, whatever its length.
func TestNapFor(t *testing.T) {
	const capacity = 1 << 18
	for _, c := range []struct {
		name string
		got  int
		last time.Duration
		used int
		want time.Duration
	}{
		{"nothing arrived", 0, busyNap, 0, quietNap},
		{"10k a second after a short nap", 10, busyNap, 1000, quietNap},
		{"10k a second after a long nap", 50, quietNap, 1000, quietNap},
		{"just below the busy rate after a long nap", busyRate*5 - 1, quietNap, 0, quietNap},
		{"the busy rate after a short nap", busyRate, busyNap, 0, busyNap},
		{"the busy rate after a long nap", busyRate * 5, quietNap, 0, busyNap},
		{"40k a second", 40, busyNap, 0, busyNap},
		{"nothing arrived, ring half taken", 0, quietNap, capacity / 2, busyNap},
		{"nothing arrived, ring just under half taken", 0, quietNap, capacity/2 - 1, quietNap},
		{"nothing arrived, ring full", 0, busyNap, capacity, busyNap},
	} {
		if got := napFor(c.got, c.last, c.used, capacity); got != c.want {
			t.Errorf("%s: napFor(%d, %v, %d, %d) = %v, want %v", c.name, c.got, c.last, c.used, capacity, got, c.want)
		}
	}
}
