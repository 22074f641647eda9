package pipeline

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/adtracker/adtracker/ingest/event"
)

// gatedSink holds every insert until its gate is closed, so the ring stays full for as long as a test needs.
type gatedSink struct {
	*fakeSink
	gate chan struct{}
}

func (g *gatedSink) Insert(ctx context.Context, b *event.Batch) error {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.fakeSink.Insert(ctx, b)
}

// fullPipeline opens a pipeline whose inserts wait for the returned gate and fills its ring: the next Enqueue answers ErrFull. It
// returns how many events went in (ids 0..n-1).
func fullPipeline(t *testing.T) (*Pipeline, *gatedSink, int) {
	t.Helper()
	cfg := testConfig(t)
	cfg.InsertTimeout = time.Minute // a held insert must not time out into the spill, which would release the ring
	sink := &gatedSink{fakeSink: newFake(), gate: make(chan struct{})}
	p, err := Open(cfg, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := p.Enqueue(mkEvent(n, true))
		if errors.Is(err, ErrFull) {
			// The batcher may still be reading: full only when it stays full.
			time.Sleep(20 * time.Millisecond)
			if err = p.Enqueue(mkEvent(n, true)); errors.Is(err, ErrFull) {
				return p, sink, n
			}
		}
		if err != nil {
			t.Fatalf("enqueue %d: %v", n, err)
		}
		n++
		if time.Now().After(deadline) {
			t.Fatal("the ring never filled")
		}
	}
}

// An event that finds the ring full waits for the next release instead of being refused, and gets in when an insert frees room.
func TestEnqueueByWaitsForRoom(t *testing.T) {
	p, sink, n := fullPipeline(t)
	defer func() { _ = p.Close(context.Background()) }()
	waits := counterValue(t, enqueueWaits)
	done := make(chan error, 1)
	go func() { done <- p.EnqueueBy(mkEvent(n, true), time.Now().Add(time.Minute)) }()
	select {
	case err := <-done:
		t.Fatalf("EnqueueBy answered %v with the ring full and no insert finished", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(sink.gate)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("after a release: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("EnqueueBy still waiting after inserts freed the ring")
	}
	if got := counterValue(t, enqueueWaits) - waits; got < 1 {
		t.Fatalf("enqueue waits counted %v", got)
	}
	waitFor(t, "every event stored", func() bool { c, _ := sink.count(); return c == n+1 })
}

// The wait ends at the deadline with ErrFull, counted once as a ring_full refusal; a deadline already past refuses at once.
func TestEnqueueByDeadline(t *testing.T) {
	p, sink, n := fullPipeline(t)
	defer func() { close(sink.gate); _ = p.Close(context.Background()) }()
	refused := counterValue(t, enqueueRefused.WithLabelValues("ring_full"))
	start := time.Now()
	if err := p.EnqueueBy(mkEvent(n, true), start.Add(100*time.Millisecond)); !errors.Is(err, ErrFull) {
		t.Fatalf("EnqueueBy on a full ring: %v", err)
	}
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Fatalf("refused after %v, before its deadline", waited)
	}
	if err := p.EnqueueBy(mkEvent(n, true), start); !errors.Is(err, ErrFull) {
		t.Fatalf("EnqueueBy with a past deadline: %v", err)
	}
	if got := counterValue(t, enqueueRefused.WithLabelValues("ring_full")) - refused; got != 2 {
		t.Fatalf("ring_full refusals counted %v, want 2", got)
	}
}

// Close wakes the waiters: they answer ErrClosed at once, while Close still drains (its inserts are held here), instead of holding
// Close, which waits for every Enqueue in flight, until their deadline.
func TestCloseWakesEnqueueByWaiters(t *testing.T) {
	p, sink, n := fullPipeline(t)
	done := make(chan error, 1)
	go func() { done <- p.EnqueueBy(mkEvent(n, true), time.Now().Add(time.Hour)) }()
	time.Sleep(50 * time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- p.Close(context.Background()) }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("waiter answered %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiter not woken by Close")
	}
	close(sink.gate) // now the drain can finish
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	if c, _ := sink.count(); c != n {
		t.Fatalf("stored %d of the %d accepted events", c, n)
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
