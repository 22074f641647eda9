package pipeline

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/adtracker/adtracker/internal/testenv"
)

// enqueueUntilRefused enqueues distinct events until Enqueue refuses one, pausing now and then so batches reach the store policy,
// and returns how many it accepted and the refusal (nil when limit events were all accepted).
func enqueueUntilRefused(p *Pipeline, limit int) (int, error) {
	for i := range limit {
		if err := p.Enqueue(mkEvent(i, false)); err != nil {
			return i, err
		}
		if i%50 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	return limit, nil
}

// A full disk: the dead-letter directory and the spill cannot take a batch. The batch must keep its ring slots (so the ring fills and
// Enqueue answers ErrFull → 503) and nothing may be released, lost or counted as stored; once space returns, every accepted event
// ends where it belongs, exactly once.
func TestFullDiskKeepsBatchesInRing(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(f *fakeSink)
	}{
		// ClickHouse refuses for good: dead letter, else forced spill; neither has room.
		{"refused", func(f *fakeSink) { f.permanent = true }},
		// ClickHouse down: the spill has no room.
		{"down", func(f *fakeSink) { f.down = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := testenv.Tmpfs(t, "1m")
			sink := newFake()
			sink.set(tc.set)
			cfg := testConfig(t)
			cfg.Dir = filepath.Join(dir, "data")
			cfg.RingCapacity = 1 << 11
			p, err := Open(cfg, sink, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				// Bounded: on a failure the disk may still be full, and a batch with nowhere to go waits for ever (by design).
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = p.Close(ctx)
			}()
			filler := filepath.Join(dir, "filler")
			testenv.FillDisk(t, filler)

			limit := 20 * cfg.RingCapacity
			accepted, refused := enqueueUntilRefused(p, limit)
			if !errors.Is(refused, ErrFull) {
				t.Fatalf("after %d events on a full disk: %v, want ErrFull", accepted, refused)
			}
			// A small batch may still fit in the unused end of a page the spill segment or a file already holds (the filler takes
			// only free pages), so a few events can be kept; whatever is, the accounting below must still come out exact.
			if got := p.DeadLettered.Load() + p.Spilled.Load(); got > int64(accepted)/2 {
				t.Fatalf("%d of %d events counted as kept on a full disk", got, accepted)
			}
			if p.ring.Len() == 0 {
				t.Fatal("ring empty: the batches were released")
			}
			if ok, _ := p.Ready(); ok {
				t.Fatal("Ready with a full ring")
			}

			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
			sink.set(func(f *fakeSink) { f.down = false }) // a refused batch stays refused: it must reach the dead-letter directory
			waitFor(t, "every accepted event stored or dead-lettered", func() bool {
				n, _ := sink.count()
				return int64(n)+p.DeadLettered.Load() == int64(accepted)
			})
			if _, d := sink.count(); d != 0 {
				t.Fatalf("%d events stored twice", d)
			}
			rows := 0
			files, err := ListDeadLetters(cfg.Dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				rows += f.Rows
			}
			if int64(rows) != p.DeadLettered.Load() {
				t.Fatalf("dead-letter files hold %d rows, counted %d", rows, p.DeadLettered.Load())
			}
			if _, err := enqueueUntilRefused(p, 10); err != nil {
				t.Fatalf("enqueue after space returned: %v", err)
			}
		})
	}
}
