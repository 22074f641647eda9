package clickhouse

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/adtracker/adtracker/internal/testenv"
	"github.com/adtracker/adtracker/migrations"
)

// ddlQueue is the distributed_ddl path scripts/cluster.sh configures: every ON CLUSTER statement leaves an entry there.
const ddlQueue = "/clickhouse/task_queue/ddl"

// The migrations' ALTERs of replicated tables go to one replica per shard, not through the DDL queue whose 18.16 worker can crash on
// them (cluster_alter.go): the queue holds the database's CREATE statements and none of its ALTERs, and every node has the columns.
func TestClusterReplicatedAltersBypassTheDDLQueue(t *testing.T) {
	cl, db := migratedCluster(t)
	c := nodeConn(t, cl.Addrs[0], db.Database)
	queued := func(verb string) uint64 {
		var n uint64
		q := "SELECT count() FROM system.zookeeper WHERE path = '" + ddlQueue + "' AND position(value, 'query: " + verb + " ') > 0 AND position(value, ' " + db.Database + ".') > 0"
		if err := c.QueryRow(context.Background(), q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := queued("CREATE"); n == 0 {
		t.Fatalf("no CREATE of %s in %s: the test does not see the DDL queue", db.Database, ddlQueue)
	}
	if n := queued("ALTER"); n != 0 {
		t.Fatalf("%d ALTER statements of %s went through the DDL queue", n, db.Database)
	}
	sameColumns(t, cl, migrated(t), db.Database, "events_local", "ad_stats_minute_local", "ad_stats_hour_local")
}

// Which statements skip the DDL queue: column changes of a table ON CLUSTER, after any comments; nothing else.
func TestAlterColumnsOnClusterStatements(t *testing.T) {
	for _, tc := range []struct{ stmt, table, sent string }{
		{"ALTER TABLE db.t ON CLUSTER c ADD COLUMN IF NOT EXISTS x UInt8", "db.t", "ALTER TABLE db.t ADD COLUMN IF NOT EXISTS x UInt8"},
		{"-- why\n-- more\nalter table `db`.`t` on cluster c\n  modify column x String", "`db`.`t`", "-- why\n-- more\nalter table `db`.`t`\n  modify column x String"},
		{"/* a\nb */ ALTER TABLE t ON CLUSTER c DROP COLUMN x", "t", "/* a\nb */ ALTER TABLE t DROP COLUMN x"},
		{"ALTER TABLE db.t ON CLUSTER c DELETE WHERE x = 1", "", ""},
		{"ALTER TABLE db.t ON CLUSTER c FREEZE", "", ""},
		{"ALTER TABLE db.t ADD COLUMN x UInt8", "", ""},
		{"CREATE TABLE db.t ON CLUSTER c AS db.u", "", ""},
	} {
		m := alterColumnsOnCluster.FindStringSubmatch(tc.stmt)
		switch {
		case m == nil && tc.table != "":
			t.Errorf("%q: not recognised as a column change ON CLUSTER", tc.stmt)
		case m != nil && tc.table == "":
			t.Errorf("%q: taken for a column change ON CLUSTER of %s", tc.stmt, m[2])
		case len(m) == 4 && (m[2] != tc.table || m[1]+m[3] != tc.sent):
			t.Errorf("%q: table %q, sent as %q; want %q, %q", tc.stmt, m[2], m[1]+m[3], tc.table, tc.sent)
		}
	}
}

// A run interrupted between the shards of an ADD COLUMN leaves shard 1 with the column and shard 2 without; the next migrate checks
// each shard's own replica, so it skips shard 1 and still adds the column on shard 2.
func TestClusterAlterChecksEachShardsReplica(t *testing.T) {
	cl := testenv.ClusterEnv(t)
	db := openCluster(t, cl, cl.Database(t))
	files := clusterFiles(t, db)
	migrateCluster(t, db, files[:2])
	var addIVT string
	for _, stmt := range migrations.Statements(migrations.Expand(files[2].SQL, cl.Name, db.Database)) {
		if strings.Contains(stmt, "ADD COLUMN IF NOT EXISTS ivt ") {
			addIVT = stmt
		}
	}
	m := alterColumnsOnCluster.FindStringSubmatch(addIVT)
	if m == nil {
		t.Fatalf("no ALTER … ON CLUSTER adds ivt in %s", files[2].Name)
	}
	s1 := nodeConn(t, cl.Nodes["s1r1"], db.Database)
	stmt, run, err := addColumnIfMissing(context.Background(), s1, db.Database, m[1]+m[3])
	if err != nil || !run {
		t.Fatalf("ivt on s1r1 before the migration: run %v, %v", run, err)
	}
	if err := s1.Exec(context.Background(), stmt); err != nil {
		t.Fatal(err)
	}
	migrateCluster(t, db, files)
	sameColumns(t, cl, migrated(t), db.Database, "events_local")
}

// A replica that does not answer. With no other replica of its shard, the statement fails before any shard ran it. With one, the
// ALTER goes to the next replica, and migrate fails naming the replica it could not see take the change; a later migrate finishes
// the file and records it once.
func TestClusterAlterWithUnreachableReplicas(t *testing.T) {
	cl := testenv.ClusterEnv(t)
	db := openCluster(t, cl, cl.Database(t))
	files := clusterFiles(t, db)
	migrateCluster(t, db, files[:2])
	saved := alterWait
	alterWait = 2 * time.Second
	t.Cleanup(func() { alterWait = saved })

	changed := func(node string) bool { return hasVASTTypes(t, cl, db, node) }
	if changed("s1r1") {
		t.Fatal("events_local.type has the VAST types before the migration that adds them")
	}

	// Shard 1 has only the dead replica: nothing can take the change there, so no shard runs it.
	dead := deadReplica(t, 1)
	useDDLReplicas(db, append([]replica{dead}, shardReplicas(listReplicas(t, db), 2)...))
	_, err := db.Migrate(context.Background(), files)
	if err == nil || !strings.Contains(err.Error(), "no replica of shard 1 can take the change") || !strings.Contains(err.Error(), dead.addr) {
		t.Fatalf("shard 1 unreachable: migrate returned %v", err)
	}
	for _, node := range []string{"s1r1", "s1r2", "s2r1", "s2r2"} {
		if changed(node) {
			t.Fatalf("%s got the change although shard 1 could not take it", node)
		}
	}

	// The dead replica first in shard 1: the change goes to s1r1 (and on to s1r2) and to shard 2, and migrate fails waiting for the
	// dead one.
	dead = deadReplica(t, 1)
	useDDLReplicas(db, append([]replica{dead}, listReplicas(t, db)...))
	_, err = db.Migrate(context.Background(), files)
	if err == nil || !strings.Contains(err.Error(), "replica "+dead.addr+" (shard 1) did not show the change") || !strings.Contains(err.Error(), "run migrate again") {
		t.Fatalf("one replica unreachable: migrate returned %v", err)
	}
	for _, node := range []string{"s1r1", "s1r2", "s2r1", "s2r2"} {
		if !changed(node) {
			t.Fatalf("%s lacks the change the answering replicas took", node)
		}
	}

	// Every replica back (migrate lists them again): migrate finishes the file, and the history records it once.
	res := migrateCluster(t, db, files)
	if res[2].Status != "applied" {
		t.Fatalf("migrate after the replica came back: %+v", res)
	}
	var n uint64
	if err := db.Conn.QueryRow(context.Background(), "SELECT count() FROM schema_migrations WHERE version = ?", uint32(files[2].Version)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%s recorded %d times, want once", files[2].Name, n)
	}
	sameColumns(t, cl, migrated(t), db.Database, "events_local", "ad_stats_minute_local", "ad_stats_hour_local")
}

// A replica without a ZooKeeper session is read-only and cannot take an ALTER. With no writable replica in its shard, the statement
// fails before any shard ran it, naming the read-only replica. With a writable peer, the peer takes the statement, none is sent to
// the read-only replica, and it gets the change by replication. The replica says it is read-only through a wrapped connection
// (readOnlyConn): one node of the loopback cluster cannot lose its ZooKeeper session alone. Everything else is the real cluster.
func TestClusterAlterSkipsReadOnlyReplicas(t *testing.T) {
	cl := testenv.ClusterEnv(t)
	db := openCluster(t, cl, cl.Database(t))
	files := clusterFiles(t, db)
	migrateCluster(t, db, files[:2])
	nodes := []string{"s1r1", "s1r2", "s2r1", "s2r2"}

	// Shard 1 has only a read-only replica.
	all := listReplicas(t, db)
	roReplica, ro := readOnly(shardReplicas(all, 1)[0])
	useDDLReplicas(db, append([]replica{roReplica}, shardReplicas(all, 2)...))
	_, err := db.Migrate(context.Background(), files)
	if err == nil || !strings.Contains(err.Error(), "no replica of shard 1 can take the change") ||
		!strings.Contains(err.Error(), roReplica.addr+": read-only") {
		t.Fatalf("shard 1 read-only: migrate returned %v", err)
	}
	for _, node := range nodes {
		if hasVASTTypes(t, cl, db, node) {
			t.Fatalf("%s got the change although shard 1 could not take it", node)
		}
	}
	if n := ro.alters.Load(); n != 0 {
		t.Fatalf("%d ALTERs sent to the read-only replica", n)
	}

	// The read-only replica first in shard 1, its writable peer after it: the peer takes the change.
	all = listReplicas(t, db) // the Migrate above closed the last ones
	shard1 := shardReplicas(all, 1)
	roReplica, ro = readOnly(shard1[0])
	useDDLReplicas(db, append(append([]replica{roReplica}, shard1[1:]...), shardReplicas(all, 2)...))
	if res := migrateCluster(t, db, files); res[2].Status != "applied" {
		t.Fatalf("migrate with a read-only replica beside a writable one: %+v", res)
	}
	if n := ro.alters.Load(); n != 0 {
		t.Fatalf("%d ALTERs sent to the read-only replica %s", n, roReplica.addr)
	}
	for _, node := range nodes {
		if !hasVASTTypes(t, cl, db, node) {
			t.Fatalf("%s lacks the change", node)
		}
	}
}

// readOnly returns r with its connection wrapped in a readOnlyConn, and that connection.
func readOnly(r replica) (replica, *readOnlyConn) {
	c := &readOnlyConn{Conn: r.conn}
	r.conn = c
	return r, c
}

// readOnlyConn is a replica's connection that reports the replica read-only (system.replicas.is_readonly) and counts the ALTERs
// sent through it.
type readOnlyConn struct {
	driver.Conn
	alters atomic.Int32
}

func (c *readOnlyConn) QueryRow(ctx context.Context, query string, args ...any) driver.Row {
	row := c.Conn.QueryRow(ctx, query, args...)
	if !strings.Contains(query, "FROM system.replicas") {
		return row
	}
	return readOnlyRow{row}
}

func (c *readOnlyConn) Exec(ctx context.Context, query string, args ...any) error {
	if strings.HasPrefix(strings.TrimSpace(strings.ToUpper(query)), "ALTER") {
		c.alters.Add(1)
	}
	return c.Conn.Exec(ctx, query, args...)
}

// readOnlyRow is the answer to "SELECT zookeeper_path, is_readonly FROM system.replicas …" with is_readonly set.
type readOnlyRow struct{ driver.Row }

func (r readOnlyRow) Scan(dest ...any) error {
	if err := r.Row.Scan(dest...); err != nil {
		return err
	}
	if len(dest) == 2 {
		if ro, ok := dest[1].(*uint8); ok {
			*ro = 1
		}
	}
	return nil
}

// hasVASTTypes reports whether node's events_local.type has the VAST event types: the first statement of the third cluster migration
// is a replicated ALTER (MODIFY COLUMN type) that adds them.
func hasVASTTypes(t *testing.T, cl testenv.Cluster, db *DB, node string) bool {
	t.Helper()
	return len(queryStrings(t, nodeConn(t, cl.Nodes[node], db.Database),
		"SELECT name FROM system.columns WHERE database = currentDatabase() AND table = 'events_local' AND name = 'type' AND position(type, 'verification_not_executed') > 0")) == 1
}

// listReplicas opens a pool per replica of the cluster; the Migrate they are handed to closes them.
func listReplicas(t *testing.T, db *DB) []replica {
	t.Helper()
	r, err := db.replicaConns(context.Background(), &replicaSet{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// useDDLReplicas makes the next Migrate send replicated ALTERs through rs instead of the replicas system.clusters lists.
func useDDLReplicas(db *DB, rs []replica) {
	db.ddl.mu.Lock()
	defer db.ddl.mu.Unlock()
	db.ddl.conns = rs
}

func clusterFiles(t *testing.T, db *DB) []migrations.File {
	t.Helper()
	files, err := db.MigrationFiles()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("%d cluster migrations, want at least 3", len(files))
	}
	return files
}

func migrateCluster(t *testing.T, db *DB, files []migrations.File) []MigrationResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := db.Migrate(ctx, files)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// sameColumns fails unless every node's tables have the columns of single's table of the same name (without "_local").
func sameColumns(t *testing.T, cl testenv.Cluster, single *DB, database string, tables ...string) {
	t.Helper()
	singleConn := nodeConn(t, single.cfg.Addr, single.Database)
	for _, table := range tables {
		want := queryStrings(t, singleConn, "DESCRIBE TABLE "+strings.TrimSuffix(table, "_local"))
		for node, addr := range cl.Nodes {
			if got := queryStrings(t, nodeConn(t, addr, database), "DESCRIBE TABLE "+table); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s: DESCRIBE %s\n%v\nsingle-node\n%v", node, table, got, want)
			}
		}
	}
}

// deadReplica is a replica of shard whose address refuses connections.
func deadReplica(t *testing.T, shard uint32) replica {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	conn, err := ch.Open(&ch.Options{Addr: []string{addr}, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return replica{addr: addr, shard: shard, conn: conn}
}

func shardReplicas(all []replica, shard uint32) []replica {
	var out []replica
	for _, r := range all {
		if r.shard == shard {
			out = append(out, r)
		}
	}
	return out
}
