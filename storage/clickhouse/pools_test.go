package clickhouse

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/adtracker/adtracker/internal/testenv"
	"github.com/adtracker/adtracker/migrations"
)

// saturateReads runs n slow reads (~6 s each: 12 one-row blocks of sleepEachRow(0.5), as 18.16 refuses more than 3 s of sleep per
// block) on db's read pool and returns once the server runs as many as the pool allows; wait() waits for them all.
func saturateReads(t *testing.T, db *DB, n int) (wait func()) {
	t.Helper()
	prefix := testenv.Name("poolprobe")
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := ch.Context(context.Background(), ch.WithQueryID(fmt.Sprintf("%s-%d", prefix, i)))
			var s uint64
			// Readers past the pool's size fail to get a connection; that is the read side being full, which is the point.
			_ = db.Conn.QueryRow(ctx, "SELECT sum(sleepEachRow(0.5)) FROM numbers(12) SETTINGS max_block_size = 1").Scan(&s)
		}()
	}
	probe := nodeConn(t, db.cfg.Addr, db.Database)
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		var running uint64
		if err := probe.QueryRow(context.Background(), "SELECT count() FROM system.processes WHERE startsWith(query_id, ?)", prefix).Scan(&running); err != nil {
			t.Fatal(err)
		}
		if int(running) >= min(n, db.cfg.ReadConns) {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("only %d slow reads started", running)
		}
	}
	return wg.Wait
}

// Slow analytics fill the read pool; inserts through the sink still get a connection and succeed within a short timeout. The same
// scenario with the old wiring — one pool for both — fails the insert (it waits for a connection past DialTimeout), which shows the
// scenario really starves a shared pool.
func TestSlowReadsDoNotStarveInserts(t *testing.T) {
	t.Parallel() // a private database; most of its time is the server sleeping
	open := func(t *testing.T) *DB {
		addr, database := testenv.ClickHouseDB(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		db, err := Open(ctx, Config{Addr: addr, Database: database, ReadConns: 3, WriteConns: 2, DialTimeout: time.Second}, false)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		files, err := migrations.ClickHouse()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Migrate(ctx, files); err != nil {
			t.Fatal(err)
		}
		return db
	}
	insert := func(s *Sink, ad uint64) error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return s.Insert(ctx, testBatch(200, ad))
	}

	t.Run("separate pools", func(t *testing.T) {
		db := open(t)
		s := NewSink(db)
		wait := saturateReads(t, db, 6)
		for ad := uint64(1); ad <= 3; ad++ {
			if err := insert(s, ad); err != nil {
				t.Fatalf("insert %d while slow reads hold the read pool: %v", ad, err)
			}
		}
		wait()
		if rows, _ := countEvents(t, db.Conn, "events"); rows != 600 {
			t.Fatalf("%d rows stored, want 600", rows)
		}
	})

	t.Run("one shared pool fails (control)", func(t *testing.T) {
		db := open(t)
		db.write = db.Conn // the wiring before the split: inserts and reads share one pool
		s := NewSink(db)
		wait := saturateReads(t, db, 6)
		err := insert(s, 1)
		wait()
		if err == nil {
			t.Fatal("an insert through a pool full of slow reads succeeded: the scenario does not starve a shared pool")
		}
		t.Logf("shared pool: %v", err)
	})
}
