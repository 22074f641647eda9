//go:build chaos

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/adtracker/adtracker/internal/testenv"
)

// Scenario 7b: ClickHouse refuses every batch for a reason retrying cannot fix (a MATERIALIZED column that fails to parse for ad 3,
// exception 6, classed permanent) while the disk holding the dead-letter directory and the spill is full. No durable place can take
// a batch, so it must stay in the ring and clients must get 503 — not be released and lost. Once ClickHouse takes the rows again and
// the space returns, every answered event is stored exactly once (anything that did reach the dead-letter directory meanwhile is
// put back with `adtracker deadletter replay`).
func TestChaos7bDeadLetterDiskFull(t *testing.T) {
	s := newStack(t, "ADTRACKER_INGEST_BATCH_SIZE=500", "ADTRACKER_INGEST_RING_CAPACITY=4096")
	s.useTmpfs("4m")
	s.start()
	// The ring file is mapped into memory: a page the disk never allocated faults (SIGBUS kills the process) when it is first
	// written on a full disk, so the whole file must be allocated when the server starts.
	if st, err := os.Stat(filepath.Join(s.dataDir, "ring")); err != nil {
		t.Fatal(err)
	} else if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Blocks*512 < st.Size() {
		t.Errorf("the ring file is sparse (%d of %d bytes allocated): on a full disk the process dies on its first write to a new page",
			sys.Blocks*512, st.Size())
	}
	l := startLoad(t, s.url, 8, 1<<40)
	l.waitAnswered(t, 3000) // the ring (4096 slots, ~4 an event) has gone round: every page of it is allocated now
	filler := filepath.Join(s.dataDir, "filler")
	testenv.FillDisk(t, filler)
	c := s.conn()
	ctx := context.Background()
	if err := c.Exec(ctx, "ALTER TABLE events ADD COLUMN chaos_poison UInt8 MATERIALIZED toUInt8(if(ad_id = 3, 'x', '1'))"); err != nil {
		t.Fatal(err)
	}
	before := l.non2xx.Load()
	time.Sleep(10 * time.Second)
	refusedWhileFull := l.non2xx.Load() - before
	if err := c.Exec(ctx, "ALTER TABLE events DROP COLUMN chaos_poison"); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	l.waitAnswered(t, l.count()+2000)
	answered := l.finish()
	replayed := s.replayDeadLetters()
	m := s.metrics()
	s.settle("7b dead letter+spill disk full", l, answered, fmt.Sprintf("%d refused (503) while full; dead-letter files replayed: %s; %.0f rows dead-lettered",
		refusedWhileFull, replayed, m["adtracker_pipeline_dead_lettered_rows_total"]))
	if refusedWhileFull == 0 {
		t.Error("no request was refused while neither ClickHouse nor the disk could take a batch: where did the batches go?")
	}
}

// replayDeadLetters runs `adtracker deadletter replay` when the dead-letter directory holds batches, and says what happened.
func (s *stack) replayDeadLetters() string {
	files, _ := filepath.Glob(filepath.Join(s.dataDir, "deadletter", "*.batch"))
	if len(files) == 0 {
		return "none"
	}
	cmd := exec.Command(adtrackerBin(s.t), "deadletter", "replay")
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Logf("adtracker deadletter replay: %v\n%s", err, out)
		return fmt.Sprintf("%d, replay failed", len(files))
	}
	return fmt.Sprintf("%d, replayed", len(files))
}
