package pipeline

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/adtracker/adtracker/ingest/event"
)

func poisonEvent(i int) *event.Event {
	e := mkEvent(i, false)
	e.AdID = 99
	return e
}

func enqueueEvents(t *testing.T, p *Pipeline, evs []*event.Event) {
	t.Helper()
	for _, e := range evs {
		for {
			err := p.Enqueue(e)
			if err == nil {
				break
			}
			if !errors.Is(err, ErrFull) {
				t.Fatalf("enqueue: %v", err)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// A spill record ClickHouse refuses retryably every time while it answers Ping is the record's fault: live batches go back to
// ClickHouse directly at once, instead of every batch spilling behind the record forever. (Quarantine disabled here, so the record
// stays at the head of the spill the whole time.)
func TestPoisonRecordDoesNotStopLiveInserts(t *testing.T) {
	sink := newFake()
	sink.poisonAd = 99
	cfg := testConfig(t)
	cfg.ReplayMaxAttempts, cfg.ReplayMaxAge = 0, 0
	p, err := Open(cfg, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	var poison []*event.Event
	for i := range 10 {
		poison = append(poison, poisonEvent(1_000_000+i))
	}
	enqueueEvents(t, p, poison)
	waitFor(t, "the poison batch spilled and replayed at least twice", func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return p.Spilled.Load() > 0 && sink.poisoned >= 3
	})
	waitFor(t, "live again", func() bool { return p.health.live() })
	before := p.Spilled.Load()
	enqueueN(t, p, 0, 300, false)
	waitFor(t, "later events stored while the poison record is still at the head", func() bool { n, _ := sink.count(); return n == 300 })
	if p.Quarantined.Load() != 0 || p.Spilled.Load() != before {
		t.Fatalf("quarantined %d, spilled %d → %d", p.Quarantined.Load(), before, p.Spilled.Load())
	}
}

// With the bounds on, the poison record is quarantined to the dead-letter directory after ReplayMaxAttempts, and the records behind
// it in the spill replay: every event is either stored once or in a quarantine file.
func TestPoisonRecordQuarantined(t *testing.T) {
	sink := newFake()
	sink.poisonAd = 99
	cfg := testConfig(t)
	cfg.ReplayMaxAttempts = 3
	p, err := Open(cfg, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	enqueueN(t, p, 0, 200, false)
	var poison []*event.Event
	for i := range 10 {
		poison = append(poison, poisonEvent(1_000_000+i))
	}
	enqueueEvents(t, p, poison)
	enqueueN(t, p, 200, 200, false)
	waitFor(t, "quarantine", func() bool { return p.Quarantined.Load() >= 10 })
	waitFor(t, "everything stored or quarantined", func() bool {
		n, _ := sink.count()
		return int64(n)+p.Quarantined.Load() == 410
	})
	sink.mu.Lock()
	if sink.poisoned < cfg.ReplayMaxAttempts {
		t.Errorf("quarantined after %d refusals, want ≥ %d", sink.poisoned, cfg.ReplayMaxAttempts)
	}
	sink.mu.Unlock()
	enqueueN(t, p, 400, 50, false)
	waitFor(t, "later events stored", func() bool { n, _ := sink.count(); return int64(n)+p.Quarantined.Load() == 460 })
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	files, err := ListDeadLetters(cfg.Dir)
	if err != nil {
		t.Fatal(err)
	}
	rows := 0
	for _, f := range files {
		rows += f.Rows
		if len(f.Error) < len(reasonQuarantined) || f.Error[:len(reasonQuarantined)] != reasonQuarantined {
			t.Errorf("%s: error line %q", f.Path, f.Error)
		}
	}
	if int64(rows) != p.Quarantined.Load() {
		t.Fatalf("quarantine files hold %d rows, counted %d", rows, p.Quarantined.Load())
	}
	// Once ClickHouse takes the batch, replaying the files stores every quarantined event exactly once, twice over.
	sink.set(func(f *fakeSink) { f.poisonAd = 0 })
	for range 2 {
		if _, err := ReplayDeadLetters(context.Background(), cfg.Dir, sink, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n, d := sink.count(); n != 460 || d != 0 {
		t.Fatalf("after replay: %d stored, %d twice", n, d)
	}
	if files, _ := ListDeadLetters(cfg.Dir); len(files) != 0 {
		t.Fatalf("%d files left after replay", len(files))
	}
}
