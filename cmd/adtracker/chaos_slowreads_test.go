//go:build chaos

package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// Scenario 13: slow reads beside the inserts. The hour rollup is first loaded with a year of heavy uniq and t-digest states (no
// counts, so the raw-versus-rollup check still holds), which makes each fields=all analytics request seconds of ClickHouse work;
// then, under ingest load, 16 clients call the analytics API in a loop and 8 more run SELECT sleep(3) on ClickHouse directly. No
// insert may fail for it: adtracker's own counters must show no failed insert and no spilled row, and every answered event must be
// stored once. Nothing is timed: a read that is slow or refused (503) is the read's business, an insert that waits for a connection
// behind reads until it fails is the bug.
func TestChaos13SlowReads(t *testing.T) {
	const apiClients, sleepers = 16, 8
	s := newStack(t)
	c := s.conn()
	// 9M rows grouped into 27,000 hour rows (3 ads × 9,000 hours, from 2 days back): ~1 s of CPU per fields=all question here.
	preload := `INSERT INTO ad_stats_hour (ad_id, hour, viewers, playback_ms_quantiles)
		SELECT ad, h, uniqState(toString(number)), quantilesTDigestIfState(0.5, 0.95)(toUInt32(number % 100000), toUInt8(1))
		FROM (SELECT number % 3 + 1 AS ad, toDateTime(toUInt32(toStartOfHour(now())) - 3600 * (48 + intDiv(number, 3) % 9000)) AS h, number
		      FROM numbers(9000000))
		GROUP BY ad, h`
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := c.Exec(ctx, preload); err != nil {
		t.Fatalf("preload the hour rollup: %v", err)
	}
	s.start()
	lg := s.loadgen(30*time.Second, 2000)
	time.Sleep(3 * time.Second)
	end := time.Now().UTC()
	start := end.Add(-380 * 24 * time.Hour)
	window := fmt.Sprintf("start=%s&end=%s&fields=all", start.Format(time.RFC3339), end.Format(time.RFC3339))
	paths := []string{"/ads/analytics?limit=10&" + window, "/ads/1/timeseries?interval=day&" + window}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	answers := map[string]int{} // "200", "503", "sleep ok", "sleep error", ...
	count := func(k string) { mu.Lock(); answers[k]++; mu.Unlock() }
	loop := func(fn func(i int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				fn(i)
			}
		}()
	}
	client := &http.Client{Timeout: 30 * time.Second}
	for w := 0; w < apiClients; w++ {
		loop(func(i int) {
			resp, err := client.Get(s.url + paths[(w+i)%len(paths)])
			if err != nil {
				count("api error")
				time.Sleep(100 * time.Millisecond)
				return
			}
			resp.Body.Close()
			count(fmt.Sprintf("api %d", resp.StatusCode))
		})
	}
	for w := 0; w < sleepers; w++ {
		loop(func(int) {
			if err := c.Exec(context.Background(), "SELECT sleep(3)"); err != nil {
				count("sleep error")
				time.Sleep(100 * time.Millisecond)
				return
			}
			count("sleep(3) done")
		})
	}
	time.Sleep(25 * time.Second) // the reads last until the load ends
	close(stop)
	wg.Wait()
	<-lg.done // the note reads adtracker's counts
	m := s.metrics()
	failed, spilled := m["adtracker_clickhouse_insert_errors_total"], m[`adtracker_pipeline_rows_total{outcome="spilled"}`]
	s.finishExact(lg, "13 slow reads beside inserts", fmt.Sprintf("%d API clients + %d sleep(3): %v; %.0f inserts failed, %.0f rows spilled",
		apiClients, sleepers, answers, failed, spilled))
	if failed > 0 || spilled > 0 {
		t.Errorf("slow reads made inserts fail: %.0f failed inserts, %.0f rows spilled", failed, spilled)
	}
	if answers["api 200"] == 0 {
		t.Errorf("no analytics request was answered 200 (%v): the reads did not run", answers)
	}
}
