//go:build chaos

package main

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Scenario 10: ClickHouse frozen (SIGSTOP) past the insert timeout, four times under load. A freeze that lands while an insert's data
// is on its way strands an INSERT the server completes when it runs again, after adtracker gave up, marked the batch maybe-stored
// and spilled it; the replayer's "which of these ids are stored?" must see that late commit, or the batch is inserted twice (raw
// rows and rollups doubled). Most freezes land between inserts, or before the server asked for the data, so this scenario meets a
// late commit only now and then; 10b makes one certain.
func TestChaos10FrozenFourTimes(t *testing.T) {
	const insertTimeout = 2 * time.Second
	s := newStack(t, "ADTRACKER_INGEST_INSERT_TIMEOUT="+insertTimeout.String())
	s.start()
	freeze := dur("CHAOS_FREEZE_EACH", 5*time.Second)
	const gap, lead, times = 3 * time.Second, 4 * time.Second, 4
	lg := s.loadgen(lead+times*(freeze+gap)+lead, 2500)
	time.Sleep(lead)
	for i := 0; i < times; i++ {
		if err := s.ch.Freeze(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(freeze)
		if err := s.ch.Thaw(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(gap)
	}
	<-lg.done // the note reads adtracker's counts
	failed := s.metrics()["adtracker_clickhouse_insert_errors_total"]
	s.finishExact(lg, fmt.Sprintf("10 clickhouse SIGSTOP %v x%d", freeze, times), fmt.Sprintf("timeout %v: %s", insertTimeout, s.insertFaults()))
	if failed == 0 {
		t.Error("no insert failed while ClickHouse was frozen: the scenario did not test a timed-out insert")
	}
}

// Scenario 10b: the late commit made certain. A MATERIALIZED column that sleeps 1.2 ms per row makes ClickHouse spend 2-3 s on a
// batch after it has received all of it and before the rows are written: past the 2 s insert timeout, so adtracker gives up on
// inserts that the server then completes. A stored check that runs meanwhile finds nothing and the batch goes in again, unless
// adtracker makes sure the first INSERT is over (finished or killed) before it asks. The column is dropped after 10 s.
func TestChaos10bSlowCommit(t *testing.T) {
	const insertTimeout = 2 * time.Second
	// Batches up to 2,400 rows: 2.9 s at 1.2 ms a row, under 18.16's 3 s limit on one block's sleep.
	s := newStack(t, "ADTRACKER_INGEST_INSERT_TIMEOUT="+insertTimeout.String(), "ADTRACKER_INGEST_BATCH_SIZE=2400", "ADTRACKER_INGEST_FLUSH_INTERVAL=1s")
	s.start()
	lg := s.loadgen(24*time.Second, 2500)
	time.Sleep(4 * time.Second)
	c := s.conn()
	ctx := context.Background()
	if err := c.Exec(ctx, "ALTER TABLE events ADD COLUMN chaos_slow UInt8 MATERIALIZED sleepEachRow(0.0012)"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Second)
	if err := c.Exec(ctx, "ALTER TABLE events DROP COLUMN chaos_slow"); err != nil {
		t.Fatal(err)
	}
	<-lg.done // the note reads adtracker's counts
	s.finishExact(lg, "10b clickhouse commits late", fmt.Sprintf("timeout %v: %s", insertTimeout, s.insertFaults()))
}
