//go:build chaos

package main

import (
	"fmt"
	"testing"
	"time"
)

// Scenario 10: ClickHouse frozen (SIGSTOP) past the insert timeout, four times under load. Each freeze strands inserts whose data the
// server has fully received: it completes them when it runs again, after adtracker gave up, marked the batch maybe-stored and spilled
// it. The replayer's "which of these ids are stored?" must see those late commits, or the batch is inserted twice (raw rows and
// rollups doubled).
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
	m := s.metrics()
	failed := m["adtracker_clickhouse_insert_errors_total"]
	s.finishExact(lg, fmt.Sprintf("10 clickhouse SIGSTOP %v x%d", freeze, times), fmt.Sprintf("timeout %v: %.0f inserts failed, %.0f rows spilled",
		insertTimeout, failed, m[`adtracker_pipeline_rows_total{outcome="spilled"}`]))
	if failed == 0 {
		t.Error("no insert failed while ClickHouse was frozen: the scenario did not test a timed-out insert")
	}
}
