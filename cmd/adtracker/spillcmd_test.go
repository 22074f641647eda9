package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/ingest/pipeline"
	"github.com/adtracker/adtracker/ingest/spill"
	"github.com/adtracker/adtracker/storage/clickhouse/chtest"
)

func cmdEvent(i int) *event.Event {
	e := &event.Event{Type: event.TypeClick, AdID: uint64(i%3 + 1), EventTime: 1745247600, ReceiveTime: 1745247600}
	e.ID[0], e.ID[1], e.ID[2], e.ID[3] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
	e.ID[6], e.ID[8] = 0x40, 0x80
	return e
}

func batchRecord(from, n int) []byte {
	var b event.Batch
	for i := from; i < from+n; i++ {
		b.Append(cmdEvent(i))
	}
	return b.MarshalRecord(nil)
}

// spill ls counts the unacked records and their events, shows the ack, and reports a damaged record instead of hiding it.
func TestSpillLs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spill")
	q, err := spill.Open(dir, spill.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := q.Append(batchRecord(i*10, 10)); err != nil {
			t.Fatal(err)
		}
	}
	_, pos, err := q.Next()
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Ack(pos); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := spillLs(&out, dir); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"acked up to " + pos.String(), "2 records waiting with 20 events", "damage: none"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("spill ls output lacks %q:\n%s", want, out.String())
		}
	}
	// Flip a byte inside the last record's payload.
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	data, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-5] ^= 0xFF
	if err := os.WriteFile(segs[0], data, 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := spillLs(&out, dir); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "1 records waiting with 10 events") || !strings.Contains(out.String(), "damage: ") ||
		strings.Contains(out.String(), "damage: none") {
		t.Fatalf("damage not reported:\n%s", out.String())
	}
}

type refuseAll struct{}

type refusal struct{}

func (refusal) Error() string   { return "refused for the test" }
func (refusal) Retryable() bool { return false }

func (refuseAll) Insert(context.Context, *event.Batch) error { return refusal{} }
func (refuseAll) Ping(context.Context) error                 { return nil }

// deadLettered runs a pipeline whose ClickHouse refuses every batch for good over n events, batchSize to a batch, and returns
// its data dir: n events in dead-letter files.
func deadLettered(t *testing.T, n, batchSize int) string {
	t.Helper()
	dataDir := t.TempDir()
	cfg := pipeline.Defaults()
	cfg.Dir = dataDir
	cfg.RingCapacity = 1 << 12
	cfg.BatchSize = batchSize
	cfg.FlushInterval = 10 * time.Millisecond
	p, err := pipeline.Open(cfg, refuseAll{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		for p.Enqueue(cmdEvent(i)) != nil {
			time.Sleep(time.Millisecond)
		}
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p.DeadLettered.Load() != int64(n) {
		t.Fatalf("dead-lettered %d, want %d", p.DeadLettered.Load(), n)
	}
	return dataDir
}

// deadletterLsFor points the deadletter commands' configuration at dataDir and the given ClickHouse (t.Setenv) and returns
// what deadletter ls prints.
func deadletterLsFor(t *testing.T, dataDir, addr, database string) *bytes.Buffer {
	t.Helper()
	t.Setenv("ADTRACKER_INGEST_DATA_DIR", dataDir)
	t.Setenv("ADTRACKER_CLICKHOUSE_ADDR", addr)
	t.Setenv("ADTRACKER_CLICKHOUSE_DATABASE", database)
	t.Setenv("ADTRACKER_LOG_LEVEL", "error")
	var out bytes.Buffer
	if err := deadletterLs(&out, dataDir); err != nil {
		t.Fatal(err)
	}
	return &out
}

// deadletter ls lists what a refusing ClickHouse left, and deadletter replay stores it in the real ClickHouse exactly once — also
// when a replay is repeated after it inserted but before it removed the files (simulated by putting the files back).
func TestDeadletterReplayRealClickHouse(t *testing.T) {
	ctx := context.Background()
	db, addr := chtest.Migrated(t)

	const n = 150
	dataDir := deadLettered(t, n, 40)

	out := deadletterLsFor(t, dataDir, addr, db.Database)
	if !strings.Contains(out.String(), "150 events") || !strings.Contains(out.String(), "refused for the test") {
		t.Fatalf("deadletter ls:\n%s", out.String())
	}
	dl := filepath.Join(dataDir, pipeline.DeadLetterDir)
	saved := map[string][]byte{}
	ents, _ := os.ReadDir(dl)
	for _, e := range ents {
		if b, err := os.ReadFile(filepath.Join(dl, e.Name())); err == nil {
			saved[e.Name()] = b
		}
	}
	if err := deadletterCmd([]string{"replay"}); err != nil {
		t.Fatalf("replay: %v", err)
	}
	if left, _ := pipeline.ListDeadLetters(dataDir); len(left) != 0 {
		t.Fatalf("%d files left after replay", len(left))
	}
	for name, b := range saved { // as if the first replay had died before removing them
		if err := os.WriteFile(filepath.Join(dl, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := deadletterCmd([]string{"replay", filepath.Join(dl, firstBatch(saved))}); err != nil {
		t.Fatalf("replay of one named file: %v", err)
	}
	if err := deadletterCmd([]string{"replay"}); err != nil {
		t.Fatalf("second replay: %v", err)
	}
	var total, distinct uint64
	if err := db.Conn.QueryRow(ctx, "SELECT count(), uniqExact(event_id) FROM events").Scan(&total, &distinct); err != nil {
		t.Fatal(err)
	}
	if total != n || distinct != n {
		t.Fatalf("%d rows, %d distinct after replaying twice; want %d once each", total, distinct, n)
	}
}

func firstBatch(files map[string][]byte) string {
	first := ""
	for name := range files {
		if strings.HasSuffix(name, ".batch") && (first == "" || name < first) {
			first = name
		}
	}
	return first
}

// Two replays at once would insert one file twice (each one's stored check runs before the other's insert): the second is refused.
func TestDeadletterReplayRefusesConcurrentReplay(t *testing.T) {
	dataDir := t.TempDir()
	dl := filepath.Join(dataDir, pipeline.DeadLetterDir)
	if err := os.MkdirAll(dl, 0o700); err != nil {
		t.Fatal(err)
	}
	unlock, err := spill.Lock(filepath.Join(dl, ".lock")) // what a running replay holds
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	_, err = pipeline.ReplayDeadLetters(context.Background(), dataDir, refuseAll{}, nil)
	if err == nil || !strings.Contains(err.Error(), "another deadletter replay") {
		t.Fatalf("concurrent replay: %v", err)
	}
}

// A dead letter damaged on disk is refused by replay — listed as damaged, left in place, none of its events in ClickHouse —
// while the others are stored. Without the file's checksum the flipped byte would be inserted as a valid row.
func TestDeadletterReplayRefusesDamagedFile(t *testing.T) {
	ctx := context.Background()
	db, addr := chtest.Migrated(t)
	const n = 60
	dataDir := deadLettered(t, n, 20)
	files, err := pipeline.ListDeadLetters(dataDir)
	if err != nil || len(files) < 2 {
		t.Fatalf("%d dead letters, %v; want at least 2", len(files), err)
	}
	damaged := files[0]
	data, err := os.ReadFile(damaged.Path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x10 // inside an event, past the file's header
	if err := os.WriteFile(damaged.Path, data, 0o600); err != nil {
		t.Fatal(err)
	}

	out := deadletterLsFor(t, dataDir, addr, db.Database)
	if !strings.Contains(out.String(), filepath.Base(damaged.Path)+"  damaged") || !strings.Contains(out.String(), "checksum mismatch") ||
		!strings.Contains(out.String(), fmt.Sprintf("%d events", n-damaged.Rows)) {
		t.Fatalf("deadletter ls:\n%s", out.String())
	}
	if err := deadletterCmd([]string{"replay"}); err == nil {
		t.Fatal("replay with a damaged file exited 0")
	}
	var total uint64
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM events").Scan(&total); err != nil {
		t.Fatal(err)
	}
	if want := uint64(n - damaged.Rows); total != want {
		t.Fatalf("%d rows in ClickHouse, want %d: the damaged file's %d events must not be inserted", total, want, damaged.Rows)
	}
	left, _ := pipeline.ListDeadLetters(dataDir)
	if len(left) != 1 || left[0].Path != damaged.Path {
		t.Fatalf("left after replay: %+v; want only the damaged file", left)
	}
}
