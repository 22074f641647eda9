//go:build chaos

package main

// Checks shared by the chaos scenarios of issue #15: the exact count on the whole table after the drain, and adtracker's own metrics.

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	ch "github.com/ClickHouse/clickhouse-go/v2"
)

// finishExact ends a scenario run by loadgen: its row and its check (lgRun.finish), the spill drained, then checks on the whole events
// table that loadgen cannot make. loadgen stops looking once the row count has been steady for a second, so a duplicate inserted
// later by the replayer (a late commit found too late) shows only here, once the spill is empty; and the rollups, which the same
// INSERT feeds, must count what the raw table holds, per ad.
func (s *stack) finishExact(lg *lgRun, name, note string) {
	t := s.t
	t.Helper()
	lg.finish(t, name, note)
	s.verifySpillEmpty()
	c := s.conn()
	ctx := context.Background()
	var rows, distinct uint64
	if err := c.QueryRow(ctx, "SELECT count(), uniqExact(toString(event_id)) FROM events").Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if late := int(rows-distinct) - int(lg.sum.Verify.Dups); late > 0 {
		t.Errorf("%s: %d events stored twice after loadgen's check ended (%d rows, %d distinct event_ids)", name, late, rows, distinct)
		amendRow(name, late)
	}
	// The rollups count valid events (ivt 'none') and invalid ones apart: loadgen's random viewers now and then click an ad twice
	// within the duplicate-click window, and that click is stored, flagged duplicate_click, and counted in invalid_clicks.
	raw := adCounts(t, c, "SELECT ad_id, countIf(type = 'impression' AND ivt = 'none'), countIf(type = 'click' AND ivt = 'none'), "+
		"countIf(type = 'impression' AND ivt != 'none'), countIf(type = 'click' AND ivt != 'none') FROM events GROUP BY ad_id")
	for _, rollup := range []string{"ad_stats_minute", "ad_stats_hour"} {
		got := adCounts(t, c, "SELECT ad_id, sum(impressions), sum(clicks), sum(invalid_impressions), sum(invalid_clicks) FROM "+rollup+" GROUP BY ad_id")
		if fmt.Sprint(got) != fmt.Sprint(raw) {
			t.Errorf("%s: %s counts {ad: [impressions clicks invalid_impressions invalid_clicks]} %v, the raw events %v", name, rollup, got, raw)
		}
	}
}

// adCounts runs a query of (ad_id, valid impressions, valid clicks, invalid impressions, invalid clicks) rows.
func adCounts(t *testing.T, c ch.Conn, q string) map[uint64][4]uint64 {
	t.Helper()
	rows, err := c.Query(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	out := map[uint64][4]uint64{}
	for rows.Next() {
		var ad uint64
		var n [4]uint64
		if err := rows.Scan(&ad, &n[0], &n[1], &n[2], &n[3]); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		out[ad] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

// amendRow adds late duplicates to a scenario's row in the report.
func amendRow(name string, dups int) {
	chaosMu.Lock()
	defer chaosMu.Unlock()
	for i := range chaosRows {
		if chaosRows[i].name == name {
			chaosRows[i].dup += dups
			chaosRows[i].note += fmt.Sprintf(" (%d duplicates after loadgen's check)", dups)
		}
	}
}

// metrics scrapes adtracker's /metrics: every series by its full name (`adtracker_pipeline_rows_total{outcome="spilled"}`), and each
// metric's bare name as the sum of its series. A series adtracker does not export reads 0.
func (s *stack) metrics() map[string]float64 {
	s.t.Helper()
	resp, err := http.Get(s.url + "/metrics")
	if err != nil {
		s.t.Fatalf("scrape /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		s.t.Fatalf("scrape /metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		sp := strings.LastIndexByte(line, ' ')
		if line == "" || line[0] == '#' || sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		series := line[:sp]
		out[series] = v
		if i := strings.IndexByte(series, '{'); i >= 0 {
			out[series[:i]] += v
		}
	}
	if err := sc.Err(); err != nil {
		s.t.Fatalf("scrape /metrics: %v", err)
	}
	return out
}

// insertFaults says how often adtracker's inserts failed and how many rows it spilled so far: the proof that a fault bit.
func (s *stack) insertFaults() string {
	m := s.metrics()
	return fmt.Sprintf("%.0f inserts failed, %.0f rows spilled", m["adtracker_clickhouse_insert_errors_total"], m[`adtracker_pipeline_rows_total{outcome="spilled"}`])
}
