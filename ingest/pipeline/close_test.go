package pipeline

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/adtracker/adtracker/ingest/spill"
)

// Handlers still running when Close unmaps the ring (the shutdown deadline passed) get ErrClosed, never a write into unmapped
// memory (which would kill the process with SIGSEGV). Run with -race: Close and Enqueue share only atomics.
func TestEnqueueDuringAndAfterClose(t *testing.T) {
	for round := range 5 {
		cfg := testConfig(t)
		p, err := Open(cfg, newFake(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var closed atomic.Bool
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					wasClosed := closed.Load()
					err := p.Enqueue(mkEvent(g<<24|i, false))
					if wasClosed {
						if !errors.Is(err, ErrClosed) {
							errs <- err
							return // the channel holds one error per goroutine: a second send would block the test
						}
						if i > 1000 {
							return
						}
					}
					if err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrFull) {
						errs <- err
						return
					}
				}
			}()
		}
		if err := p.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		closed.Store(true)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: Enqueue after Close: %v, want ErrClosed", round, err)
		}
	}
}

// Close does not unmap the ring while an Enqueue is between its closing check and its ring write (simulated by holding the
// in-flight count that such a call holds).
func TestCloseWaitsForEnqueueInFlight(t *testing.T) {
	p, err := Open(testConfig(t), newFake(), nil)
	if err != nil {
		t.Fatal(err)
	}
	p.inflight.Add(1) // a handler past the check
	done := closeBlocked(t, p, "an Enqueue was in flight")
	if !errors.Is(p.Enqueue(mkEvent(1, false)), ErrClosed) {
		t.Fatal("Enqueue during Close not refused")
	}
	p.inflight.Add(-1) // the handler's ring write is done
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A batch request holds the pipeline once for all of its events (Hold … Release). Close does not unmap the ring while a holder
// is inside, refuses the holder's further events and any new Hold, and finishes once the holder releases; the enqueued counter
// counts what the holder reported at Release.
func TestCloseWaitsForHolder(t *testing.T) {
	p, err := Open(testConfig(t), newFake(), nil)
	if err != nil {
		t.Fatal(err)
	}
	before := counterValue(t, eventsEnqueued)
	if !p.Hold() {
		t.Fatal("Hold refused on an open pipeline")
	}
	for i := range 3 {
		if err := p.EnqueueHeld(mkEvent(i, false), time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := counterValue(t, eventsEnqueued) - before; got != 0 {
		t.Fatalf("enqueued counter moved by %v before Release, want 0 (counted at Release)", got)
	}
	done := closeBlocked(t, p, "a producer held it")
	if err := p.EnqueueHeld(mkEvent(9, false), time.Now().Add(time.Second)); !errors.Is(err, ErrClosed) {
		t.Fatalf("EnqueueHeld during Close: %v, want ErrClosed at once", err)
	}
	if p.Hold() {
		t.Fatal("Hold during Close accepted")
	}
	p.Release(3)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := counterValue(t, eventsEnqueued) - before; got != 3 {
		t.Fatalf("enqueued counter moved by %v, want 3", got)
	}
}

// closeBlocked starts p.Close and returns its result channel once Close has gone as far as it can while a producer is inside:
// its last step before unmapping is closing the spill, so once the spill is closed only the wait for producers stands before the
// unmap. It fails the test if Close has returned by then; while says what the producer was doing.
func closeBlocked(t *testing.T, p *Pipeline, while string) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.Close(context.Background()) }()
	waitFor(t, "spill closed", func() bool { _, _, err := p.spill.Next(); return errors.Is(err, spill.ErrClosed) })
	select {
	case err := <-done:
		t.Fatalf("Close returned (%v) and unmapped the ring while %s", err, while)
	default:
	}
	return done
}
