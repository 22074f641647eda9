package clickhouse

import (
	"context"
	"errors"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/adtracker/adtracker/ingest/event"
)

// slowCommit makes the server take ~2.4 s between receiving the last block of a 100-row insert and writing its part: a MATERIALIZED
// column is computed before the table is written. (A slow materialized view would not do: 18.16 writes the table first and the
// views after it, so the rows would be visible to the stored check early.) 18.16 refuses a sleep over 3 s per block.
func slowCommit(t *testing.T, c driver.Conn, table string) {
	t.Helper()
	q := "ALTER TABLE " + table + " ADD COLUMN slow_commit UInt8 MATERIALIZED sleepEachRow(0.024)"
	if err := c.Exec(context.Background(), q); err != nil {
		t.Fatal(err)
	}
}

// waitSettled waits (bounded, not asserted on) until no insert of the sink's node runs on any of conns, so counts are final.
func waitSettled(t *testing.T, s *Sink, conns ...driver.Conn) {
	t.Helper()
	for _, c := range conns {
		for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
			var n uint64
			if err := c.QueryRow(context.Background(), "SELECT count() FROM system.processes WHERE startsWith(initial_query_id, ?)", s.ids.node).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			if time.Since(start) > time.Minute {
				t.Fatalf("inserts of %s still running after a minute", s.ids.node)
			}
		}
	}
}

// uncertainInsert inserts b with a 1 s timeout into a server that commits after ~2.4 s: the data is sent, the answer is not seen.
func uncertainInsert(t *testing.T, s *Sink, b *event.Batch) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := s.Insert(ctx, b)
	var e *Error
	if !errors.As(err, &e) || !e.Uncertain || e.Permanent {
		t.Fatalf("insert past its timeout: %v, want a retryable uncertain *Error", err)
	}
}

func countEvents(t *testing.T, c driver.Conn, table string) (rows, distinct uint64) {
	t.Helper()
	if err := c.QueryRow(context.Background(), "SELECT count(), uniqExact(event_id) FROM "+table).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	return rows, distinct
}

// rollupEvents is the number of events the minute rollup counts, so a double reaching only the views would show too.
func rollupEvents(t *testing.T, c driver.Conn) uint64 {
	t.Helper()
	var n uint64
	if err := c.QueryRow(context.Background(), "SELECT toUInt64(sum(impressions + clicks + starts + first_quartiles + midpoints + third_quartiles + completes + skips + pauses + resumes + mutes + unmutes + errors)) FROM ad_stats_minute").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// replayStoresOnce inserts b as a MaybeStored replay with a minute's budget, waits until nothing of s still runs, and fails unless
// events holds b's 100 rows once each.
func replayStoresOnce(t *testing.T, s *Sink, db *DB, b *event.Batch) {
	t.Helper()
	b.MaybeStored = true
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Insert(ctx, b); err != nil {
		t.Fatal(err)
	}
	waitSettled(t, s, db.Conn)
	if rows, distinct := countEvents(t, db.Conn, "events"); rows != 100 || distinct != 100 {
		t.Fatalf("after a late commit and its replay: %d rows, %d distinct event_ids, want 100 once each", rows, distinct)
	}
}

// An insert that timed out after its data was sent commits late; the replay of its batch, marked MaybeStored, comes before that
// commit. It must not store the batch a second time: raw rows and rollups once each. Before settle, the check found nothing and
// the replay inserted all 100 rows again (200 rows, 100 distinct).
func TestLateCommitIsNotStoredTwice(t *testing.T) {
	t.Parallel() // a private database; most of its time is the server sleeping
	db := migrated(t)
	slowCommit(t, db.Conn, "events")
	s := NewSink(db)
	b := testBatch(100, 7)
	uncertainInsert(t, s, b)
	replayStoresOnce(t, s, db, b)
	if n := rollupEvents(t, db.Conn); n != 100 {
		t.Fatalf("ad_stats_minute counts %d events, want 100", n)
	}
}

// The same with settle asking for KILL QUERY at once: 18.16 cannot kill an INSERT with client data (code 380) and settle waits for
// it; a server that can kill it discards it and the replay stores the batch. Exactly once either way.
func TestLateCommitKillThenCheck(t *testing.T) {
	t.Parallel() // a private database; most of its time is the server sleeping
	db := migrated(t)
	slowCommit(t, db.Conn, "events")
	s := NewSink(db)
	s.settleWait = 0
	b := testBatch(100, 7)
	uncertainInsert(t, s, b)
	replayStoresOnce(t, s, db, b)
}

// A new process of the same node (same node id, new boot) does not know what the previous one left uncertain: it waits for every
// insert of the node's earlier processes. When one outlasts half of the caller's budget, the answer is a retryable error naming it,
// not a check that could miss rows; the next attempt succeeds once it ended.
func TestLateCommitOfPreviousProcess(t *testing.T) {
	t.Parallel() // a private database; most of its time is the server sleeping
	db := migrated(t)
	slowCommit(t, db.Conn, "events")
	before := NewSink(db)
	b := testBatch(100, 9)
	uncertainInsert(t, before, b)

	after := NewSink(db)
	if after.ids.process == before.ids.process || after.ids.node != before.ids.node {
		t.Fatalf("query id prefixes: before %q/%q, after %q/%q", before.ids.node, before.ids.process, after.ids.node, after.ids.process)
	}
	b.MaybeStored = true
	short, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	err := after.Insert(short, b)
	cancel()
	var e *Error
	if !errors.Is(err, ErrInsertStillRunning) || !errors.As(err, &e) || e.Permanent || !e.IsWaiting() || e.Uncertain {
		t.Fatalf("replay while the previous process's insert runs: %v, want a retryable ErrInsertStillRunning", err)
	}
	replayStoresOnce(t, after, db, b)
}

// settle ignores this process's live inserts (they are not uncertain; another inserter is running them) and waits for the ones
// that ended uncertain; once it saw them end it forgets them.
func TestSettleWaitsOnlyForUncertainInserts(t *testing.T) {
	t.Parallel() // a private database; most of its time is the server sleeping
	db := migrated(t)
	slowCommit(t, db.Conn, "events")
	s := NewSink(db)
	done := make(chan error, 1)
	go func() { done <- s.Insert(context.Background(), testBatch(100, 11)) }()
	host := replica{addr: db.cfg.Addr, conn: db.Conn}
	var live []string
	for start := time.Now(); len(live) == 0; time.Sleep(20 * time.Millisecond) {
		rows, err := db.Conn.Query(context.Background(), "SELECT query_id FROM system.processes WHERE startsWith(query_id, ?)", s.ids.process)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			live = append(live, id)
		}
		rows.Close()
		if time.Since(start) > 30*time.Second {
			t.Fatal("the slow insert never showed in system.processes")
		}
	}
	got, err := s.running(context.Background(), host)
	if err != nil || len(got) != 0 {
		t.Fatalf("running() with only a live insert of this process: %v %v, want none", got, err)
	}
	seq, own := s.ids.ownSeq(live[0])
	if !own {
		t.Fatalf("%s is not recognised as this process's id", live[0])
	}
	s.late.add(seq)
	got, err = s.running(context.Background(), host)
	if err != nil || len(got) != 1 || got[0] != live[0] {
		t.Fatalf("running() after marking %s uncertain: %v %v", live[0], got, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := s.settle(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.late.has(seq) {
		t.Fatal("settle saw the insert end but still remembers it")
	}
}

func TestLateInsertsBounded(t *testing.T) {
	var l lateInserts
	for i := uint64(1); i <= lateKeep+10; i++ {
		l.add(i)
	}
	if len(l.seqs) != lateKeep || l.floor != 10 {
		t.Fatalf("%d remembered, floor %d; want %d and 10", len(l.seqs), l.floor, lateKeep)
	}
	for _, s := range []uint64{1, 10, 11, lateKeep + 10} {
		if !l.has(s) {
			t.Fatalf("%d forgotten", s)
		}
	}
	if l.has(lateKeep + 11) {
		t.Fatal("an insert never added counts as uncertain")
	}
	seqs, floor := l.snapshot()
	l.forget(seqs, floor)
	if l.has(1) || l.has(lateKeep+10) || l.floor != 0 || len(l.order) != 0 {
		t.Fatalf("after forget: floor %d, %d remembered", l.floor, len(l.order))
	}
	l.add(5)
	seqs, floor = l.snapshot()
	l.add(6) // ended uncertain while settle was looking: settle did not see it end, so it stays
	l.forget(seqs, floor)
	if l.has(5) || !l.has(6) {
		t.Fatal("forget dropped an insert added after its snapshot, or kept one it saw end")
	}
}

// A replica that is down (nothing listens) runs nothing, so once it has refused connections for defaultDownGrace settle skips it instead
// of blocking every replay while it is down. A first refusal is not enough (a server shutting down finishes running queries after
// closing its listener), and a host that answers, even with an error, is never skipped.
func TestDownHostsSkip(t *testing.T) {
	dead, err := ch.Open(&ch.Options{Addr: []string{"127.0.0.1:1"}, DialTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	_, refused := (&Sink{ids: newQueryIDs("n")}).running(context.Background(), replica{addr: "127.0.0.1:1", conn: dead})
	if !hostDown(refused) {
		t.Fatalf("error from a closed port: %v, want one hostDown recognises", refused)
	}
	serverErr := &Error{Op: "x", Err: errors.New("code 241: memory limit")}
	var d downHosts
	now := time.Now()
	for _, c := range []struct {
		err   error
		after time.Duration
		skip  bool
	}{
		{refused, 0, false},                      // first refusal
		{refused, defaultDownGrace / 2, false},   // still within the grace
		{refused, defaultDownGrace, true},        // refused for the whole grace: down
		{serverErr, defaultDownGrace + 1, false}, // answers with an error: not down, and the clock restarts
		{refused, defaultDownGrace + 2, false},
		{nil, defaultDownGrace + 3, false},
	} {
		if got := d.skip("h", c.err, now.Add(c.after), defaultDownGrace); got != c.skip {
			t.Fatalf("skip(%v) after %v = %v, want %v", c.err, c.after, got, c.skip)
		}
	}
	if !d.skip("other", refused, now, 0) {
		t.Fatal("with no grace a refusing host is skipped at once")
	}
}
