package loadgen

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"

	"github.com/adtracker/adtracker/ingest/event"
	chstore "github.com/adtracker/adtracker/storage/clickhouse"
)

// VerifyConfig says where the events should have landed and how long to wait for them.
type VerifyConfig struct {
	Addr      string // ClickHouse native address
	Database  string
	Username  string
	Password  string
	Timeout   time.Duration // longest wait for the pipeline to drain (default 2 min)
	Stall     time.Duration // give up when the count has not grown for this long while short (default 30 s)
	Settle    time.Duration // after the count is reached, how long it must stay unchanged (late duplicates) (default 1 s)
	Poll      time.Duration // default 100 ms: the drain is timed to the poll that saw the last rows, so this is its resolution
	ClockSkew time.Duration // how far the server's clock may be behind ours (default 5 s)
	// BaseRows is the events table's row count before the run (BaseRows), so the drain can be followed in system.parts alone
	// until the table has grown by the acked count. 0 is always safe: the run's rows are then counted at every poll where the
	// table has grown at all.
	BaseRows uint64
	Progress io.Writer
}

// VerifyResult is the check of one run against ClickHouse.
type VerifyResult struct {
	OK            bool     `json:"ok"`
	Acked         uint64   `json:"acked"`
	Rows          uint64   `json:"stored_rows"`
	Distinct      uint64   `json:"stored_distinct"`
	Duplicates    uint64   `json:"duplicates"`
	StoredAcked   uint64   `json:"stored_acked"`
	Missing       uint64   `json:"missing"`
	RefusedStored uint64   `json:"refused_but_stored"`
	UnknownStored uint64   `json:"unknown_stored"`
	DrainSeconds  float64  `json:"drain_seconds"`
	Polls         int      `json:"polls"`      // polls while draining
	RunCounts     int      `json:"run_counts"` // of which counted the run's rows (each a scan of their ids)
	E2ERate       float64  `json:"end_to_end_events_per_sec"`
	Problems      []string `json:"problems,omitempty"`
}

// WriteText prints the verdict.
func (v *VerifyResult) WriteText(w io.Writer) {
	verdict := "OK"
	if !v.OK {
		verdict = "MISMATCH"
	}
	fmt.Fprintf(w, "  verify %s: %d acked, %d stored (%d rows, %d duplicates), %d missing, drained %.2f s after the run\n",
		verdict, v.Acked, v.StoredAcked, v.Rows, v.Duplicates, v.Missing, v.DrainSeconds)
	fmt.Fprintf(w, "  end to end: %.0f events/s stored (over run + drain)\n", v.E2ERate)
	if v.UnknownStored > 0 || v.RefusedStored > 0 {
		fmt.Fprintf(w, "  of the events without a 2xx: %d unanswered ones stored, %d refused ones stored\n", v.UnknownStored, v.RefusedStored)
	}
	for _, p := range v.Problems {
		fmt.Fprintf(w, "  problem: %s\n", p)
	}
}

// ExtIDsMax bounds the failed ids sent to ClickHouse (as an external table, 16 bytes each) for the one-by-one check.
const ExtIDsMax = 32 << 20

// partsRows is the events table's row count from its active parts: metadata, no data read.
func partsRows(ctx context.Context, db *chstore.DB) (uint64, error) {
	var n uint64
	err := db.Conn.QueryRow(ctx, "SELECT toUInt64(sum(rows)) FROM system.parts "+
		"WHERE database = currentDatabase() AND table = 'events' AND active").Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("reading the events table's parts: %w", err)
	}
	return n, nil
}

// BaseRows reads the events table's row count for VerifyConfig.BaseRows; call it before the run.
func BaseRows(ctx context.Context, vc VerifyConfig) (uint64, error) {
	db, err := openDB(ctx, vc, 1)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	return partsRows(ctx, db)
}

// openDB connects to the ClickHouse of vc with conns connections, giving up after 10 s.
func openDB(ctx context.Context, vc VerifyConfig, conns int) (*chstore.DB, error) {
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return chstore.Open(octx, chstore.Config{Addr: vc.Addr, Database: vc.Database, Username: vc.Username, Password: vc.Password, MaxOpenConns: conns}, false)
}

// Verify waits for the run's events to reach ClickHouse, then checks that every event answered 2xx is stored exactly once. Rows are
// found by the run's id prefix; receive_time bounds the scan to the rows received since the run began.
func Verify(ctx context.Context, vc VerifyConfig, r *Result) (*VerifyResult, error) {
	if vc.Timeout <= 0 {
		vc.Timeout = 2 * time.Minute
	}
	if vc.Stall <= 0 {
		vc.Stall = 30 * time.Second
	}
	if vc.Settle <= 0 {
		vc.Settle = time.Second
	}
	if vc.Poll <= 0 {
		vc.Poll = 100 * time.Millisecond
	}
	if vc.ClockSkew <= 0 {
		vc.ClockSkew = 5 * time.Second
	}
	db, err := openDB(ctx, vc, 2)
	if err != nil {
		return nil, err
	}
	defer db.Close()

	// receive_time only narrows the scan (PREWHERE reads a 4-byte column first); the id prefix decides.
	where := fmt.Sprintf("PREWHERE receive_time >= toDateTime(%d) WHERE startsWith(toString(event_id), '%s')",
		r.Start.Add(-vc.ClockSkew).Unix(), r.Prefix)

	// Drain. Counting the run's rows scans the id of every row received since the run began (tens of ms of ClickHouse's CPU for a
	// million rows), and at one count per poll that load landed on the ClickHouse of the server under test while it drained, and
	// in its CPU figures. So the drain is followed through the table's row count in system.parts, which reads no data, and the
	// run's rows are counted only at a poll where that count moved and has grown by at least the acked events since BaseRows (or
	// has stood still for Settle, in case rows went away meanwhile). Rows cannot change without the parts' sum changing (a merge
	// keeps it), so the settle below still sees late duplicates. A table without parts of its own (a Distributed one in cluster
	// mode) is counted at every poll, as before. (The paired runs in BENCHMARKS.md, "Issue 20 after session 20", found the counts
	// too small a part of ClickHouse's work to show in the bench's figures.)
	var engine string
	if err := db.Conn.QueryRow(ctx, "SELECT engine FROM system.tables WHERE database = currentDatabase() AND name = 'events'").
		Scan(&engine); err != nil {
		return nil, fmt.Errorf("reading the events table's engine: %w", err)
	}
	byParts := strings.Contains(engine, "MergeTree")
	v := &VerifyResult{Acked: r.Acked}
	runEnd := r.Start.Add(r.Elapsed)
	began := time.Now()
	lastChange, lastGrowth := began, began // the run's count last changed; the table's (system.parts) last changed
	var last, parts, partsCounted uint64
	counted := false
	for first := true; ; first = false {
		v.Polls++
		count := true
		if byParts {
			p, err := partsRows(ctx, db)
			if err != nil {
				return nil, err
			}
			if first || p != parts {
				parts, lastGrowth = p, time.Now()
			}
			count = (p >= vc.BaseRows+r.Acked || time.Since(lastGrowth) >= vc.Settle) && (!counted || p != partsCounted)
		}
		rows := last
		if count {
			if err := db.Conn.QueryRow(ctx, "SELECT count() FROM events "+where).Scan(&rows); err != nil {
				return nil, fmt.Errorf("counting stored events: %w", err)
			}
			v.RunCounts++
			counted, partsCounted = true, parts
		}
		now := time.Now()
		if first || rows != last {
			last, lastChange = rows, now
		}
		if vc.Progress != nil {
			fmt.Fprintf(vc.Progress, "verify: %d rows for %d acked events\n", rows, r.Acked)
		}
		if counted && rows >= r.Acked && now.Sub(lastChange) >= vc.Settle {
			break
		}
		// Stalled: once the run's rows are counted, they are what must keep growing; before, the table.
		progress := lastChange
		if byParts && !counted {
			progress = lastGrowth
		}
		if quiet := now.Sub(progress); quiet >= vc.Stall || now.Sub(began) >= vc.Timeout {
			v.Problems = append(v.Problems, fmt.Sprintf("gave up waiting after %.0f s: %d rows of %d stopped growing",
				now.Sub(began).Seconds(), rows, r.Acked))
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(vc.Poll):
		}
	}
	v.DrainSeconds = max(lastChange.Sub(runEnd).Seconds(), 0)
	// Distinct ids are counted as text: 18.16 hashes a UUID by one 64-bit half, and within a run that half is the same for all of a
	// worker's ids, so uniqExact(event_id) degrades to chained collisions (BENCHMARKS.md, "Design measurements").
	if err := db.Conn.QueryRow(ctx, "SELECT count(), uniqExact(toString(event_id)) FROM events "+where).Scan(&v.Rows, &v.Distinct); err != nil {
		return nil, fmt.Errorf("counting stored events: %w", err)
	}
	v.Duplicates = v.Rows - v.Distinct

	// Events without a 2xx may be stored (unknown) or must not be (refused); count them so they are not taken for acked ones.
	inSet := func(rs []IDRange) (uint64, error) {
		n := CountIDs(rs)
		if n == 0 {
			return 0, nil
		}
		if n > ExtIDsMax {
			return 0, fmt.Errorf("%d failed events are too many to check one by one", n)
		}
		// Sent as text for the same reason as above: a set of these UUIDs would hash by their shared half.
		t, err := ext.NewTable("loadgen_ids", ext.Column("id", "String"))
		if err != nil {
			return 0, err
		}
		for _, rg := range rs {
			rg.Each(func(u event.UUID) {
				if err == nil {
					err = t.Append(u.String())
				}
			})
		}
		if err != nil {
			return 0, err
		}
		var c uint64
		qctx := ch.Context(ctx, ch.WithExternalTable(t))
		err = db.Conn.QueryRow(qctx, "SELECT uniqExact(toString(event_id)) FROM events "+where+" AND toString(event_id) IN loadgen_ids").Scan(&c)
		return c, err
	}
	if v.RefusedStored, err = inSet(r.RefusedIDs); err != nil {
		return nil, fmt.Errorf("checking refused events: %w", err)
	}
	if v.UnknownStored, err = inSet(r.UnknownIDs); err != nil {
		return nil, fmt.Errorf("checking unanswered events: %w", err)
	}
	v.StoredAcked = v.Distinct - v.RefusedStored - v.UnknownStored
	if v.StoredAcked < r.Acked {
		v.Missing = r.Acked - v.StoredAcked
	}
	if sec := (r.Elapsed.Seconds() + v.DrainSeconds); sec > 0 {
		v.E2ERate = float64(v.Distinct) / sec
	}
	if v.Missing > 0 {
		v.Problems = append(v.Problems, fmt.Sprintf("%d events answered 2xx are not in ClickHouse", v.Missing))
	}
	if v.StoredAcked > r.Acked {
		v.Problems = append(v.Problems, fmt.Sprintf("%d more events stored than answered 2xx", v.StoredAcked-r.Acked))
	}
	if v.Duplicates > 0 {
		v.Problems = append(v.Problems, fmt.Sprintf("%d events stored more than once", v.Duplicates))
	}
	if v.RefusedStored > 0 {
		v.Problems = append(v.Problems, fmt.Sprintf("%d events answered non-2xx were stored anyway", v.RefusedStored))
	}
	if r.IDsTruncated {
		v.Problems = append(v.Problems, fmt.Sprintf("failed events in more than %d id ranges; the rest could not be checked", TrackedRangesMax))
	}
	v.OK = len(v.Problems) == 0
	return v, nil
}
