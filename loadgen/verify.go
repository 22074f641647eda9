package loadgen

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/adtracker/adtracker/ingest"
	chstore "github.com/adtracker/adtracker/storage/clickhouse"
)

// VerifyConfig says where the events should have landed and how long to wait for them.
type VerifyConfig struct {
	Addr     string // ClickHouse native address
	Database string
	Username string
	Password string
	Timeout  time.Duration // longest wait for the pipeline to drain (default 2 min)
	Stall    time.Duration // give up when the count has not grown for this long while short (default 30 s)
	Settle   time.Duration // after the count is reached, how long it must stay unchanged (late duplicates) (default 1 s)
	Poll     time.Duration // default 200 ms
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

// inChunk keeps each IN list well under ClickHouse's default max_query_size (256 KiB): 40 bytes per id.
const inChunk = 4000

// Verify waits for the run's events to reach ClickHouse, then checks that every event answered 2xx is stored exactly once. Rows are
// found by the run's id prefix; receive_time bounds the scan to this run's parts of the table.
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
		vc.Poll = 200 * time.Millisecond
	}
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	db, err := chstore.Open(octx, chstore.Config{Addr: vc.Addr, Database: vc.Database, Username: vc.Username, Password: vc.Password, MaxOpenConns: 2}, false)
	cancel()
	if err != nil {
		return nil, err
	}
	defer db.Close()

	// A minute of slack covers a server clock behind ours; receive_time only narrows the scan, the prefix decides.
	where := fmt.Sprintf("PREWHERE receive_time >= toDateTime(%d) WHERE startsWith(toString(event_id), '%s')",
		r.Start.Add(-time.Minute).Unix(), r.Prefix)
	count := func() (rows, distinct uint64, err error) {
		err = db.Conn.QueryRow(ctx, "SELECT count(), uniqExact(event_id) FROM events "+where).Scan(&rows, &distinct)
		return rows, distinct, err
	}

	v := &VerifyResult{Acked: r.Acked}
	runEnd := r.Start.Add(r.Elapsed)
	began := time.Now()
	lastChange := began
	var lastRows, lastDistinct uint64
	first := true
	for {
		rows, distinct, err := count()
		if err != nil {
			return nil, fmt.Errorf("counting stored events: %w", err)
		}
		now := time.Now()
		if first || rows != lastRows || distinct != lastDistinct {
			lastChange = now
			lastRows, lastDistinct, first = rows, distinct, false
		}
		if vc.Progress != nil {
			fmt.Fprintf(vc.Progress, "verify: %d of %d acked events stored (%d rows)\n", distinct, r.Acked, rows)
		}
		quiet := now.Sub(lastChange)
		if distinct >= r.Acked && quiet >= vc.Settle {
			break
		}
		if quiet >= vc.Stall || now.Sub(began) >= vc.Timeout {
			v.Problems = append(v.Problems, fmt.Sprintf("gave up waiting after %.0f s: the count stopped at %d of %d",
				now.Sub(began).Seconds(), distinct, r.Acked))
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(vc.Poll):
		}
	}
	v.Rows, v.Distinct = lastRows, lastDistinct
	v.Duplicates = v.Rows - v.Distinct
	v.DrainSeconds = max(lastChange.Sub(runEnd).Seconds(), 0)

	// Events without a 2xx may be stored (unknown) or must not be (refused); count them so they are not taken for acked ones.
	inSet := func(ids []ingest.UUID) (uint64, error) {
		var total uint64
		var sb strings.Builder
		for len(ids) > 0 {
			n := min(len(ids), inChunk)
			sb.Reset()
			sb.WriteString("SELECT uniqExact(event_id) FROM events ")
			sb.WriteString(where)
			sb.WriteString(" AND toString(event_id) IN (")
			for i, id := range ids[:n] {
				if i > 0 {
					sb.WriteByte(',')
				}
				sb.WriteByte('\'')
				sb.WriteString(id.String())
				sb.WriteByte('\'')
			}
			sb.WriteByte(')')
			var c uint64
			if err := db.Conn.QueryRow(ctx, sb.String()).Scan(&c); err != nil {
				return 0, err
			}
			total += c
			ids = ids[n:]
		}
		return total, nil
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
		v.Problems = append(v.Problems, fmt.Sprintf("more than %d events failed; only the first were checked one by one", TrackedIDsMax))
	}
	v.OK = len(v.Problems) == 0
	return v, nil
}
