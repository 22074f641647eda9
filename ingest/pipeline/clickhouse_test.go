package pipeline_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/ingest/pipeline"
	chstore "github.com/adtracker/adtracker/storage/clickhouse"
	"github.com/adtracker/adtracker/storage/clickhouse/chtest"
)

const poisonAd = 99

func realEvent(i int, ad uint64) *event.Event {
	e := &event.Event{Type: event.TypeImpression, AdID: ad, EventTime: 1745247600, ReceiveTime: 1745247600}
	e.ID[0], e.ID[1], e.ID[2], e.ID[3] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
	e.ID[6], e.ID[8] = 0x40, 0x80 // a valid version-4 UUID
	return e
}

// A batch the real ClickHouse refuses every time with an error the sink classes retryable (code 395 from throwIf, which is not in
// its permanent list) while the server answers ping: it is quarantined after ReplayMaxAttempts, the batches around it are stored,
// and once the cause is gone `deadletter replay` stores it — once, however often it is run.
//
// The refusal is a MATERIALIZED column of events computing throwIf(ad_id = 99): it throws before the block is written. (A
// materialized view with the same throwIf would not do: 18.16 writes the events table before pushing to the view, so the rows land
// there and the retry's stored check skips them all: README, "What does not hold".)
func TestPoisonBatchQuarantinedOnRealClickHouse(t *testing.T) {
	ctx := context.Background()
	db, _ := chtest.Migrated(t)
	if err := db.Conn.Exec(ctx, "ALTER TABLE events ADD COLUMN poison UInt8 MATERIALIZED throwIf(ad_id = 99)"); err != nil {
		t.Fatal(err)
	}
	count := func(where string) uint64 {
		t.Helper()
		var n uint64
		if err := db.Conn.QueryRow(ctx, "SELECT count() FROM events WHERE "+where).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	cfg := pipeline.Defaults()
	cfg.Dir = t.TempDir()
	cfg.RingCapacity = 1 << 12
	cfg.BatchSize = 50
	cfg.FlushInterval = 10 * time.Millisecond
	cfg.ReplayBackoff = 10 * time.Millisecond
	cfg.ReplayMaxAttempts = 3
	sink := chstore.NewSink(db)
	p, err := pipeline.Open(cfg, sink, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	enqueue := func(e *event.Event) {
		t.Helper()
		for {
			if err := p.Enqueue(e); err == nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for i := range 100 {
		enqueue(realEvent(i, uint64(i%3+1)))
	}
	wait("first events stored", func() bool { return count("ad_id != 99") == 100 })
	for i := range 5 {
		enqueue(realEvent(1000+i, poisonAd))
	}
	wait("poison quarantined", func() bool { return p.Quarantined.Load() > 0 })
	for i := range 100 {
		enqueue(realEvent(2000+i, uint64(i%3+1)))
	}
	// Everything not quarantined is stored: the poison batch may have taken a few neighbours with it.
	wait("the rest stored", func() bool { return int64(count("1"))+p.Quarantined.Load() == 205 })
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count("ad_id = 99"); n != 0 {
		t.Fatalf("%d poison rows stored", n)
	}
	dl, err := pipeline.ListDeadLetters(cfg.Dir)
	if err != nil || len(dl) == 0 {
		t.Fatalf("dead-letter files: %v %v", dl, err)
	}
	for _, f := range dl {
		t.Logf("%s: %d rows: %s", f.Path, f.Rows, f.Error)
	}

	// The operator removes the cause, then replays — twice, as someone unsure whether the first run finished would.
	if err := db.Conn.Exec(ctx, "ALTER TABLE events DROP COLUMN poison"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := pipeline.ReplayDeadLetters(ctx, cfg.Dir, sink, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := count("1"); n != 205 {
		t.Fatalf("%d rows stored after replay, want 205", n)
	}
	if n := count("ad_id = 99"); n != 5 {
		t.Fatalf("%d poison rows after replay, want 5", n)
	}
	var dups uint64
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM (SELECT event_id FROM events GROUP BY event_id HAVING count() > 1)").Scan(&dups); err != nil {
		t.Fatal(err)
	}
	if dups != 0 {
		t.Fatalf("%d event_ids stored twice", dups)
	}
}
