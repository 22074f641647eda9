package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/adtracker/adtracker/internal/testenv"
	"github.com/adtracker/adtracker/migrations"
	"github.com/adtracker/adtracker/query"
	chstore "github.com/adtracker/adtracker/storage/clickhouse"
	"github.com/adtracker/adtracker/storage/postgres/pgtest"
)

// clusterNode is one adtracker serve process against the loopback cluster. It reuses stack's start/kill; the ClickHouse side
// belongs to scripts/cluster.sh, not to the node.
func clusterNode(t *testing.T, env []string, chAddrs []string) *stack {
	t.Helper()
	s := &stack{t: t, dataDir: t.TempDir()}
	port := testenv.FreePort(t)
	s.url = "http://127.0.0.1:" + strconv.Itoa(port)
	s.env = append(append([]string{}, env...),
		"ADTRACKER_HTTP_ADDR=127.0.0.1:"+strconv.Itoa(port),
		"ADTRACKER_CLICKHOUSE_ADDR="+strings.Join(chAddrs, ","),
		"ADTRACKER_INGEST_DATA_DIR="+s.dataDir,
	)
	t.Cleanup(s.cleanup)
	return s
}

// Issue 9's test: two stateless ingest nodes (own spill directories, nothing shared) load the 2 x 2 cluster through the Distributed
// table while a replica is stopped and restarted and one node is SIGKILLed and restarted. Every event either node answered is stored
// exactly once, the restarted replica catches up, and the analytics API read through the Distributed rollups equals a single
// server holding the same events.
func TestClusterTwoIngestNodes(t *testing.T) {
	cl := testenv.ClusterEnv(t)
	singleAddr, singleDB := testenv.ClickHouseDB(t)
	database := cl.Database(t)
	env := append(os.Environ(),
		"ADTRACKER_POSTGRES_DSN="+pgtest.DSN(t),
		"ADTRACKER_CLICKHOUSE_DATABASE="+database,
		"ADTRACKER_CLICKHOUSE_CLUSTER="+cl.Name,
		"ADTRACKER_MIGRATE_ON_START=false", // one migrate per deployment, as in docker-compose.cluster.yml
		"ADTRACKER_INGEST_FLUSH_INTERVAL=100ms",
		"ADTRACKER_INGEST_INSERT_TIMEOUT=5s",
		"ADTRACKER_INGEST_RING_CAPACITY=65536",
	)
	// Each node prefers a different ClickHouse server, as two nodes behind a balancer would.
	a := clusterNode(t, env, []string{cl.Nodes["s1r1"], cl.Nodes["s2r1"]})
	b := clusterNode(t, env, []string{cl.Nodes["s2r2"], cl.Nodes["s1r2"]})
	for _, cmd := range []string{"migrate", "seed"} {
		c := exec.Command(adtrackerBin(t), cmd)
		c.Env = a.env
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("adtracker %s: %v\n%s", cmd, err, out)
		}
	}
	a.start()
	b.start()

	// Ads 1 and 3 hash to shard 01, ad 2 to shard 02 (cityHash64(ad_id) % 2), so both shards take load.
	const run = 24 * time.Second
	load := func(s *stack) *lgRun {
		return runLoadgen(t, s.env, loadgenArgs(s.url, run, strings.Join(cl.Addrs, ","), database, "--mode", "single", "--conns", "8",
			"--rate", "800")...)
	}
	started := time.Now()
	la, lb := load(a), load(b)
	at := func(d time.Duration) { time.Sleep(time.Until(started.Add(d))) }

	at(4 * time.Second)
	cl.Stop(t, "s1r2") // a replica of shard 01 down mid-load
	t.Log("s1r2 stopped")
	at(9 * time.Second)
	b.kill() // node b dies with answered events in its ring; its restart replays them against the cluster
	t.Log("node b SIGKILLed")
	b.start()
	at(15 * time.Second)
	cl.Start(t, "s1r2")
	t.Log("s1r2 restarted")

	for name, r := range map[string]*lgRun{"node a": la, "node b": lb} {
		<-r.done
		v := r.sum.Verify
		if v == nil || r.err != nil || !v.OK {
			t.Fatalf("%s: loadgen --verify failed: %v\n%s", name, r.err, r.out)
		}
		if r.sum.Acked < 1000 {
			t.Fatalf("%s: only %d events answered", name, r.sum.Acked)
		}
		t.Logf("%s: %d events answered, %d stored once, drained in %.1f s", name, r.sum.Acked, v.Distinct, v.Drain)
	}

	ctx := context.Background()
	conn := func(addr, db string) ch.Conn {
		c, err := ch.Open(&ch.Options{Addr: []string{addr}, Auth: ch.Auth{Database: db}, DialTimeout: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	count := func(c ch.Conn, q string) uint64 {
		t.Helper()
		var n uint64
		if err := c.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	s1r1, s1r2 := conn(cl.Nodes["s1r1"], database), conn(cl.Nodes["s1r2"], database)
	total := count(s1r1, "SELECT count() FROM events")
	if distinct := count(s1r1, "SELECT uniqExact(toString(event_id)) FROM events"); distinct != total {
		t.Fatalf("%d rows through the Distributed table, %d distinct event_ids", total, distinct)
	}
	if want := la.sum.Acked + lb.sum.Acked; total < want {
		t.Fatalf("%d rows stored, %d answered", total, want)
	}

	// The replica that was down has caught up: same rows and the same rollup sums as its peer.
	for _, tbl := range []string{"events_local", "ad_stats_minute_local", "ad_stats_hour_local"} {
		if err := s1r2.Exec(ctx, "SYSTEM SYNC REPLICA "+tbl); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{
		"SELECT count() FROM events_local",
		"SELECT sum(impressions) + sum(clicks) FROM ad_stats_minute_local",
		"SELECT sum(impressions) + sum(clicks) FROM ad_stats_hour_local",
	} {
		if x, y := count(s1r1, q), count(s1r2, q); x != y || x == 0 {
			t.Fatalf("%s: s1r1 %d, s1r2 %d after SYSTEM SYNC REPLICA", q, x, y)
		}
	}

	// The same events on one server, through the single-node schema and its views: the analytics answers must match.
	single := conn(singleAddr, singleDB)
	files, err := migrations.ClickHouse()
	if err != nil {
		t.Fatal(err)
	}
	// Through the runner: 0003's ADD COLUMN IF NOT EXISTS does not parse on 18.16 as written, and the runner makes it idempotent.
	singleStore, err := chstore.Open(ctx, chstore.Config{Addr: singleAddr, Database: singleDB}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer singleStore.Close()
	if _, err := singleStore.Migrate(ctx, files); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(cl.Nodes["s2r1"], ":")
	copyQ := fmt.Sprintf("INSERT INTO events SELECT * FROM remote('%s:%s', %s, events)", host, port, database)
	if err := single.Exec(ctx, copyQ); err != nil {
		t.Fatal(err)
	}
	if n := count(single, "SELECT count() FROM events"); n != total {
		t.Fatalf("copied %d of %d events to the single server", n, total)
	}

	from := started.Add(-time.Hour).UTC().Truncate(time.Hour)
	to := time.Now().Add(time.Hour).UTC().Truncate(time.Hour)
	resp, err := http.Get(fmt.Sprintf("%s/ads/analytics?start=%s&end=%s&limit=1000&fields=all", a.url, from.Format(time.RFC3339), to.Format(time.RFC3339)))
	if err != nil {
		t.Fatal(err)
	}
	var got []query.Stats
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /ads/analytics on node a: %d %v", resp.StatusCode, err)
	}
	want, err := query.New(single, singleDB).Top(ctx, query.Range{From: from, To: to}, query.DefaultSort, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(got) < 3 {
		t.Fatalf("cluster answered %d ads, single server %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		// t-digest quantiles depend on how rows were split into blocks and merged, so they differ between any two layouts of the
		// same data; everything else is exact.
		if math.Abs(g.P50PlaybackSeconds-w.P50PlaybackSeconds) > 0.05*w.P50PlaybackSeconds+0.5 ||
			math.Abs(g.P95PlaybackSeconds-w.P95PlaybackSeconds) > 0.05*w.P95PlaybackSeconds+0.5 {
			t.Errorf("ad %d quantiles: cluster %.2f/%.2f, single %.2f/%.2f", w.AdID, g.P50PlaybackSeconds, g.P95PlaybackSeconds, w.P50PlaybackSeconds, w.P95PlaybackSeconds)
		}
		g.P50PlaybackSeconds, g.P95PlaybackSeconds = w.P50PlaybackSeconds, w.P95PlaybackSeconds
		g.From, g.To = w.From, w.To
		if g != viaJSON(t, w) {
			t.Errorf("ad %d:\ncluster %+v\nsingle  %+v", w.AdID, g, w)
		}
	}
	// One ad's per-minute series through the Distributed minute rollup: the same points.
	resp, err = http.Get(fmt.Sprintf("%s/ads/%d/timeseries?start=%s&end=%s&interval=minute&fields=all", a.url, want[0].AdID, from.Format(time.RFC3339), to.Format(time.RFC3339)))
	if err != nil {
		t.Fatal(err)
	}
	var gotSeries query.Series
	err = json.NewDecoder(resp.Body).Decode(&gotSeries)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /ads/%d/timeseries on node a: %d %v", want[0].AdID, resp.StatusCode, err)
	}
	wantSeries, err := query.New(single, singleDB).Timeseries(ctx, want[0].AdID, query.Range{From: from, To: to}, query.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(gotSeries.Points) != len(wantSeries.Points) {
		t.Fatalf("series: cluster %d points, single %d", len(gotSeries.Points), len(wantSeries.Points))
	}
	nonzero := 0
	for i, w := range wantSeries.Points {
		g := gotSeries.Points[i]
		g.P50PlaybackSeconds, g.P95PlaybackSeconds = w.P50PlaybackSeconds, w.P95PlaybackSeconds
		// Through JSON like the cluster's answer: Metrics keeps whether its rates had a denominator in unexported fields, which
		// the API says as null and a decoded answer cannot carry.
		if !g.T.Equal(w.T) || g.Metrics != viaJSON(t, w.Metrics) {
			t.Errorf("series point %d:\ncluster %+v\nsingle  %+v", i, gotSeries.Points[i], w)
		}
		if w.Impressions > 0 {
			nonzero++
		}
	}
	if nonzero == 0 {
		t.Fatal("the series compared holds no events")
	}
	t.Logf("%d events in the cluster; per-ad analytics of %d ads and a %d-point series equal a single server's", total, len(want), len(wantSeries.Points))
}

// viaJSON returns v after a JSON round trip, as a client of the API would see it.
func viaJSON[T any](t *testing.T, v T) T {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
