package pipeline

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
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
					err := p.Enqueue(event(g<<24|i, false))
					if wasClosed {
						if !errors.Is(err, ErrClosed) {
							errs <- err
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
