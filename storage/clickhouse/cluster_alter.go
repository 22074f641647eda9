package clickhouse

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Migrations write a column change of a replicated table as "ALTER TABLE db.t_local ON CLUSTER c …", which says what it does on
// any server. The runner does not send it that way. On 18.16 the DDL worker runs such an ALTER on one replica per shard under a
// ZooKeeper lock and then creates the shard's "executed" marker; two replicas of a shard can both get past the check, and the
// second one fails on the marker ("Coordination::Exception: Node exists") and terminates its DDL worker — seen once in seven
// fresh `make test` runs, after which every later ON CLUSTER statement of the cluster timed out. Later ClickHouse reworked that
// path (ClickHouse#13450). The runner therefore does what the DDL worker was meant to do without its lock: it sends the ALTER
// without ON CLUSTER to one replica of each shard, replication carries it to the shard's other replicas, and the statement is
// done when every replica shows the same columns.

// alterOnCluster matches "ALTER TABLE [db.]table ON CLUSTER c …" after any leading comment lines; the groups are everything before
// ON CLUSTER, the table, and everything after the cluster name.
var alterOnCluster = regexp.MustCompile(`(?is)^((?:\s*--[^\n]*\n)*\s*ALTER\s+TABLE\s+(\S+))\s+ON\s+CLUSTER\s+\S+(\s.*)$`)

// alterWait bounds how long a replicated ALTER waits for every replica to show the change: as long as an ON CLUSTER statement
// (a variable so that a test of a replica that never answers need not wait a minute).
var alterWait = ddlTimeout * time.Second

// execDDL runs one migration statement: a replicated table's ALTER on one replica per shard, anything else as written (ON CLUSTER
// statements through the DDL queue). ADD COLUMN IF NOT EXISTS is made idempotent on the server that runs it (addColumnIfMissing).
func (db *DB) execDDL(ctx context.Context, stmt string) error {
	if db.cfg.Cluster != "" {
		if m := alterOnCluster.FindStringSubmatch(stmt); m != nil {
			database, table := db.splitTable(m[2])
			replicated, err := db.replicated(ctx, database, table)
			if err != nil {
				return err
			}
			if replicated {
				return db.alterPerShard(ctx, database, table, m[1]+m[3])
			}
		}
	}
	stmt, run, err := addColumnIfMissing(ctx, db.Conn, db.Database, stmt)
	if err != nil || !run {
		return err
	}
	return ddlError(db.Conn.Exec(ddlContext(ctx, db.cfg.Cluster), stmt))
}

// splitTable splits "[db.]table" (identifiers possibly quoted) into the database, db.Database when absent, and the table.
func (db *DB) splitTable(name string) (database, table string) {
	database, table = db.Database, name
	if d, t, ok := strings.Cut(name, "."); ok {
		database, table = d, t
	}
	unquote := func(s string) string { return strings.Trim(s, "`\"") }
	return unquote(database), unquote(table)
}

// replicated reports whether the connected node's table has a Replicated* engine. The cluster schema creates every table ON
// CLUSTER, so one node's engine stands for all of them.
func (db *DB) replicated(ctx context.Context, database, table string) (bool, error) {
	var engine string
	err := db.Conn.QueryRow(ctx, "SELECT engine FROM system.tables WHERE database = ? AND name = ?", database, table).Scan(&engine)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("engine of %s.%s: %w", database, table, err)
	}
	return strings.HasPrefix(engine, "Replicated"), nil
}

// alterPerShard runs stmt (the ALTER without ON CLUSTER) on the first replica of each shard that answers, then waits until every
// replica of the cluster shows the columns the shard's replica has. A shard none of whose replicas answers fails the statement;
// so does a replica that does not show the change within alterWait (it applies it from ZooKeeper when it is back, and the next
// migrate, finding the column on the other replica, only waits for it again).
func (db *DB) alterPerShard(ctx context.Context, database, table, stmt string) error {
	replicas, err := db.replicaConns(ctx)
	if err != nil {
		return err
	}
	// Waiting for the other replicas is this runner's job (below); the setting only spares it polling on servers that wait
	// for the shard's replicas when asked to (18.16 waits regardless).
	actx := ch.Context(ctx, ch.WithSettings(ch.Settings{"replication_alter_partitions_sync": 2}))
	ran := map[uint32]replica{}
	unreachable := map[uint32][]string{}
	for _, r := range replicas {
		if _, ok := ran[r.shard]; ok {
			continue
		}
		s, run, err := addColumnIfMissing(ctx, r.conn, database, stmt)
		if err == nil && run {
			err = r.conn.Exec(actx, s)
		}
		var ex *ch.Exception
		if errors.As(err, &ex) { // the server refused the statement: another replica would too
			return fmt.Errorf("on %s (shard %d): %w", r.addr, r.shard, err)
		}
		if err != nil {
			unreachable[r.shard] = append(unreachable[r.shard], fmt.Sprintf("%s: %v", r.addr, err))
			continue
		}
		ran[r.shard] = r
	}
	for shard, errs := range unreachable {
		if _, ok := ran[shard]; !ok {
			db.replicas.closeAll()
			return fmt.Errorf("no replica of shard %d answered (%s): run migrate again once one of them is up", shard, strings.Join(errs, "; "))
		}
	}
	return db.waitColumns(ctx, replicas, ran, database, table)
}

// waitColumns polls every replica until its columns of database.table equal those of the replica that ran the ALTER for its shard.
func (db *DB) waitColumns(ctx context.Context, replicas []replica, ran map[uint32]replica, database, table string) error {
	q := "SELECT name, type FROM system.columns WHERE database = " + quoteString(database) + " AND table = " + quoteString(table)
	want := map[uint32]string{}
	for shard, r := range ran {
		cols, err := columnList(ctx, r.conn, q)
		if err != nil {
			return fmt.Errorf("columns of %s.%s on %s: %w", database, table, r.addr, err)
		}
		want[shard] = cols
	}
	deadline := time.Now().Add(alterWait)
	for _, r := range replicas {
		for {
			cols, err := columnList(ctx, r.conn, q)
			if err == nil && cols == want[r.shard] {
				break
			}
			if time.Now().After(deadline) {
				if err == nil {
					err = fmt.Errorf("its columns are still %s", cols)
				}
				return fmt.Errorf("replica %s (shard %d) did not show the change of %s.%s within %v (%w): it applies it from ZooKeeper when it is up; run migrate again then",
					r.addr, r.shard, database, table, alterWait, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

func columnList(ctx context.Context, conn driver.Conn, q string) (string, error) {
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return "", err
		}
		b.WriteString(name + " " + typ + ", ")
	}
	return b.String(), rows.Err()
}
