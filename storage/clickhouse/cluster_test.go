package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/internal/testenv"
)

// These tests run against the loopback cluster of scripts/cluster.sh (2 shards x 2 replicas of 18.16 + ZooKeeper), which make test
// starts; they skip without ADTRACKER_TEST_CLUSTER_ADDRS.

func openCluster(t *testing.T, cl testenv.Cluster, database string, addrs ...string) *DB {
	t.Helper()
	if len(addrs) == 0 {
		addrs = cl.Addrs
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	db, err := Open(ctx, Config{Addr: strings.Join(addrs, ","), Database: database, Cluster: cl.Name}, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func migratedCluster(t *testing.T) (testenv.Cluster, *DB) {
	t.Helper()
	cl := testenv.ClusterEnv(t)
	db := openCluster(t, cl, cl.Database(t))
	files, err := db.MigrationFiles()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := db.Migrate(ctx, files)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Status != "applied" {
			t.Fatalf("first cluster migrate: %+v", r)
		}
	}
	return cl, db
}

func nodeConn(t *testing.T, addr, database string) ch.Conn {
	t.Helper()
	c, err := ch.Open(&ch.Options{Addr: []string{addr}, Auth: ch.Auth{Database: database}, DialTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func queryStrings(t *testing.T, c ch.Conn, q string) []string {
	t.Helper()
	rows, err := c.Query(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	cols := len(rows.Columns())
	for rows.Next() {
		vals := make([]string, cols)
		ptrs := make([]any, cols)
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.Join(vals, " | "))
	}
	return out
}

// replicatedArgs turns a replicated engine into its single-node form so the two schemas compare: the ZooKeeper path and replica
// name are the only intended difference.
var replicatedArgs = regexp.MustCompile(`Replicated(\w+)\('[^']*', '[^']*'(, )?`)

// The cluster schema is the single-node schema split into _local tables plus Distributed tables under the single-node names: same
// columns, types, keys and granularity. Checked on every node, so the ON CLUSTER DDL reached all of them; and the history is shared, so
// migrate through another node finds nothing to do.
func TestClusterMigrateMatchesSingleNode(t *testing.T) {
	cl, db := migratedCluster(t)
	single := migrated(t)
	ctx := context.Background()

	again := openCluster(t, cl, db.Database, cl.Nodes["s2r2"])
	files, _ := again.MigrationFiles()
	res, err := again.Migrate(ctx, files)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Status != "unchanged" {
			t.Fatalf("migrate through s2r2 after s1r1: %+v (history not shared)", r)
		}
	}

	singleConn := nodeConn(t, single.cfg.Addr, single.Database)
	for node, addr := range cl.Nodes {
		c := nodeConn(t, addr, db.Database)
		tables := queryStrings(t, c, "SELECT name, engine FROM system.tables WHERE database = currentDatabase() ORDER BY name")
		want := []string{
			"ad_breakdown_hour | Distributed", "ad_breakdown_hour_browser_mv | MaterializedView", "ad_breakdown_hour_country_mv | MaterializedView",
			"ad_breakdown_hour_device_type_mv | MaterializedView", "ad_breakdown_hour_ivt_mv | MaterializedView",
			"ad_breakdown_hour_local | ReplicatedSummingMergeTree", "ad_breakdown_hour_os_mv | MaterializedView",
			"ad_stats_hour | Distributed", "ad_stats_hour_invalid_mv | MaterializedView", "ad_stats_hour_local | ReplicatedSummingMergeTree",
			"ad_stats_hour_mv | MaterializedView",
			"ad_stats_minute | Distributed", "ad_stats_minute_invalid_mv | MaterializedView", "ad_stats_minute_local | ReplicatedSummingMergeTree",
			"ad_stats_minute_mv | MaterializedView",
			"events | Distributed", "events_local | ReplicatedMergeTree", "schema_migrations | ReplicatedMergeTree",
		}
		if fmt.Sprint(tables) != fmt.Sprint(want) {
			t.Fatalf("%s tables:\n%v\nwant\n%v", node, tables, want)
		}
		for _, name := range []string{"events", "ad_stats_minute", "ad_stats_hour", "ad_breakdown_hour"} {
			keys := "SELECT partition_key, sorting_key, primary_key, engine_full FROM system.tables WHERE database = currentDatabase() AND name = '%s'"
			got := queryStrings(t, c, fmt.Sprintf(keys, name+"_local"))
			exp := queryStrings(t, singleConn, fmt.Sprintf(keys, name))
			got[0] = replicatedArgs.ReplaceAllString(got[0], "$1(")
			if got[0] != exp[0] {
				t.Errorf("%s: %s_local keys/engine\n%s\nsingle-node\n%s", node, name, got[0], exp[0])
			}
		}
	}
	sameColumns(t, cl, single, db.Database, "events", "events_local", "ad_stats_minute", "ad_stats_minute_local", "ad_stats_hour",
		"ad_stats_hour_local", "ad_breakdown_hour", "ad_breakdown_hour_local")
}

func TestClusterConfigErrors(t *testing.T) {
	cl := testenv.ClusterEnv(t)
	f := func(cluster, database, want string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		db, err := Open(ctx, Config{Addr: cl.Addrs[0], Database: database, Cluster: cluster}, true)
		if err == nil {
			db.Close()
			t.Fatalf("cluster %q database %q: no error", cluster, database)
		}
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("cluster %q database %q: %v, want it to say %q", cluster, database, err, want)
		}
	}
	f("no_such_cluster", "adtracker", `clickhouse.cluster "no_such_cluster" is not in remote_servers`)
	f("adtracker; DROP", "adtracker", "not a valid cluster name")
	f(cl.Name, "my-db", `clickhouse.database "my-db"`)
}

func clusterBatches(n, ads int) []*event.Batch {
	var out []*event.Batch
	for ad := 1; ad <= ads; ad++ {
		out = append(out, testBatch(n, uint64(ad)))
	}
	return out
}

// The stored-event check must be exact while a replica lags: the Distributed table reads one replica per shard, and one that has
// not fetched a part would call acknowledged events missing. With fetches stopped on s1r2 its events_local lacks shard 01's rows,
// yet Stored finds every event. A replica that is down is tolerated when its peer has caught up, and refused (retryable) when the
// peer is behind, rather than guess.
func TestClusterStoredReadsEveryReplica(t *testing.T) {
	cl, db := migratedCluster(t)
	ctx := context.Background()
	lagging := nodeConn(t, cl.Nodes["s1r2"], db.Database)
	if err := lagging.Exec(ctx, "SYSTEM STOP FETCHES events_local"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lagging.Exec(ctx, "SYSTEM START FETCHES events_local") }) // also when the test fails early

	sink := NewSink(db)
	// The replicas this test stops refuse connections; the late-commit check would wait defaultDownGrace before it ignores them.
	sink.downGrace = 0
	batches := clusterBatches(300, 8)
	for _, b := range batches {
		ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := sink.Insert(ictx, b)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	var total, s1r1, s1r2 uint64
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM events").Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total != 8*300 {
		t.Fatalf("%d rows through the Distributed table right after synchronous inserts, want %d", total, 8*300)
	}
	if err := nodeConn(t, cl.Nodes["s1r1"], db.Database).QueryRow(ctx, "SELECT count() FROM events_local").Scan(&s1r1); err != nil {
		t.Fatal(err)
	}
	if err := lagging.QueryRow(ctx, "SELECT count() FROM events_local").Scan(&s1r2); err != nil {
		t.Fatal(err)
	}
	if s1r1 == 0 || s1r2 >= s1r1 {
		t.Fatalf("setup: s1r1 holds %d rows, the lagging s1r2 %d; the test needs s1r2 behind", s1r1, s1r2)
	}
	for _, b := range batches {
		stored, err := sink.Stored(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		if len(stored) != b.N {
			t.Fatalf("Stored found %d of %d acknowledged events while s1r2 lags", len(stored), b.N)
		}
	}

	// A replay of a batch with new events mixed in stores only the new ones.
	replay := testBatch(400, 1)
	replay.MaybeStored = true
	if err := sink.Insert(ctx, replay); err != nil {
		t.Fatal(err)
	}
	if err := lagging.Exec(ctx, "SYSTEM START FETCHES events_local"); err != nil {
		t.Fatal(err)
	}
	var n, distinct uint64
	if err := db.Conn.QueryRow(ctx, "SELECT count(), uniqExact(toString(event_id)) FROM events").Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != 8*300+100 || distinct != n {
		t.Fatalf("after the replay: %d rows, %d distinct, want %d once each", n, distinct, 8*300+100)
	}

	// s2r2 down, s2r1 caught up: s2r1 provably holds all of shard 02, so the check answers, and inserts keep working.
	cl.Stop(t, "s2r2")
	for _, b := range batches {
		stored, err := sink.Stored(ctx, b)
		if err != nil || len(stored) != b.N {
			t.Fatalf("Stored with s2r2 down: %d of %d, %v", len(stored), b.N, err)
		}
	}
	ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := sink.Insert(ictx, testBatch(50, 1000)); err != nil {
		t.Fatalf("insert with one replica of a shard down: %v", err)
	}
	cl.Start(t, "s2r2")

	// s1r2 lagging (fetches stopped) and s1r1, the only replica with the newest rows, down: the check must refuse, naming s1r1,
	// because s1r2's answer could miss acknowledged events.
	if err := lagging.Exec(ctx, "SYSTEM STOP FETCHES events_local"); err != nil {
		t.Fatal(err)
	}
	newest := testBatch(200, 3) // ad 3 is on shard 01
	if err := sink.Insert(ictx, newest); err != nil {
		t.Fatal(err)
	}
	cl.Stop(t, "s1r1")
	_, err := sink.Stored(ctx, newest)
	var e *Error
	if !errors.As(err, &e) || e.Permanent || !strings.Contains(err.Error(), cl.Nodes["s1r1"]) {
		t.Fatalf("Stored with s1r1 down and s1r2 behind: %v, want a retryable error naming %s", err, cl.Nodes["s1r1"])
	}
	db.replicas.mu.Lock()
	kept := len(db.replicas.conns)
	db.replicas.mu.Unlock()
	if kept != 0 {
		t.Fatalf("after a refused check %d replica pools are kept; the next check must list the replicas again", kept)
	}
	cl.Start(t, "s1r1")
	if err := lagging.Exec(ctx, "SYSTEM START FETCHES events_local"); err != nil {
		t.Fatal(err)
	}
	if stored, err := sink.Stored(ctx, newest); err != nil || len(stored) != newest.N {
		t.Fatalf("Stored after s1r1 is back: %d of %d, %v", len(stored), newest.N, err)
	}
}

// The seeded run of TestSinkScreenedEventsRollups on the cluster: through the Distributed events table, the views on each shard
// and the Distributed rollups, invalid traffic is left out of the valid counts and the breakdowns sum to the totals, for ads on
// both shards. Replicas are synced first, since a read through a Distributed table may pick either replica of a shard.
func TestClusterScreenedEventsRollups(t *testing.T) {
	cl, db := migratedCluster(t)
	ctx := context.Background()
	sink := NewSink(db)
	wants := map[uint64]seedFigures{}
	for _, ad := range []uint64{1, 2, 3, 4} {
		b, want := seeded(ad, 1500)
		ictx, cancel := context.WithTimeout(ctx, 60*time.Second)
		err := sink.Insert(ictx, b)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		wants[ad] = want
	}
	for node, addr := range cl.Nodes {
		c := nodeConn(t, addr, db.Database)
		for _, table := range []string{"events_local", "ad_stats_minute_local", "ad_stats_hour_local", "ad_breakdown_hour_local"} {
			if err := c.Exec(ctx, "SYSTEM SYNC REPLICA "+table); err != nil {
				t.Fatalf("%s: SYSTEM SYNC REPLICA %s: %v", node, table, err)
			}
		}
	}
	var shards uint64
	if err := db.Conn.QueryRow(ctx, "SELECT uniqExact(_shard_num) FROM ad_breakdown_hour").Scan(&shards); err != nil {
		t.Logf("_shard_num not readable (%v); the ads' shards are not checked", err)
	} else if shards != 2 {
		t.Fatalf("the seeded ads landed on %d shards; the test needs both", shards)
	}
	for ad, want := range wants {
		checkSeeded(t, db.Conn, ad, want, 0)
	}
}
