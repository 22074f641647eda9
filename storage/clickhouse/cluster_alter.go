package clickhouse

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Migrations write a column change of a replicated table as "ALTER TABLE db.t_local ON CLUSTER c ADD|DROP|MODIFY COLUMN …",
// which says what is meant on any server. The runner does not send it that way. On 18.16 the DDL worker runs such an ALTER on one
// replica per shard under a ZooKeeper lock and then creates the shard's "executed" marker; two replicas of a shard can both get
// past the check, and the second one fails on the marker ("Coordination::Exception: Node exists") and terminates — seen once in
// seven fresh `make test` runs, after which every later ON CLUSTER statement of the cluster timed out. Later ClickHouse reworked
// that path (ClickHouse#13450). So the runner does what the DDL worker was meant to do, without its lock:
//
//  1. it asks every replica for the table's ZooKeeper path and whether it is read-only, and picks one writable replica per path
//     (a path is one shard's copy of the table); a shard none of whose replicas can take the statement fails it before any
//     shard ran it;
//  2. it sends the ALTER without ON CLUSTER to the picked replicas; replication carries it to their peers;
//  3. it waits until every replica shows the columns of its path's picked replica, because the statements after it
//     (CREATE … AS db.events_local, the views) read each node's own table.

// alterColumnsOnCluster matches a column change sent ON CLUSTER, after any leading comments; the groups are everything before ON
// CLUSTER, the table, and everything after the cluster name. Other ALTERs (partitions, mutations) keep ON CLUSTER: waiting for
// columns would not say when they are done.
var alterColumnsOnCluster = regexp.MustCompile(`(?is)^(` + leadingComments + `\s*ALTER\s+TABLE\s+(\S+))\s+ON\s+CLUSTER\s+\S+(\s+(?:ADD|DROP|MODIFY)\s+COLUMN\s.*)$`)

// alterWait bounds how long a replicated ALTER waits for every replica to show the change: as long as an ON CLUSTER statement
// (a variable so that a test of a replica that never answers need not wait a minute).
var alterWait = ddlTimeout * time.Second

// alterReplicated runs stmt, a column change without ON CLUSTER, on one replica of each copy of database.table and waits for the
// others (see the steps above). Errors name the replica and say whether anything ran.
func (db *DB) alterReplicated(ctx context.Context, database, table, stmt string) error {
	replicas, err := db.replicaConns(ctx, db.ddl)
	if err != nil {
		return err
	}
	// 1. One writable replica per ZooKeeper path, and a path for every shard.
	pathOf := map[uint32]string{}   // shard → the table's path, from any replica of the shard that answered
	sources := map[string]replica{} // path → the replica the statement runs on
	var order []replica             // the same replicas in shard order, for a deterministic run and error
	problems := map[uint32][]string{}
	for _, r := range replicas {
		var path string
		var readonly uint8
		err := r.conn.QueryRow(ctx, "SELECT zookeeper_path, is_readonly FROM system.replicas WHERE database = ? AND table = ?",
			database, table).Scan(&path, &readonly)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case err != nil:
			problems[r.shard] = append(problems[r.shard], fmt.Sprintf("%s: %v", r.addr, err))
			continue
		case readonly != 0:
			problems[r.shard] = append(problems[r.shard], r.addr+": read-only (no ZooKeeper session)")
		}
		pathOf[r.shard] = path
		if _, ok := sources[path]; !ok && readonly == 0 {
			sources[path] = r
			order = append(order, r)
		}
	}
	for _, r := range replicas {
		if _, ok := sources[pathOf[r.shard]]; !ok {
			return fmt.Errorf("no replica of shard %d can take the change of %s.%s (%s): no shard ran it; run migrate again once one of them is up",
				r.shard, database, table, strings.Join(problems[r.shard], "; "))
		}
	}
	// 2. The statement, on each picked replica.
	for _, src := range order {
		s, run, err := addColumnIfMissing(ctx, src.conn, database, stmt)
		if err == nil && run {
			err = src.conn.Exec(ctx, s)
		}
		if err != nil {
			return fmt.Errorf("on %s (shard %d): %w (if the connection broke, the statement may have run there; migrate again checks every shard before it adds a column)",
				src.addr, src.shard, err)
		}
	}
	// 3. Every replica shows its path's columns.
	return waitColumns(ctx, replicas, pathOf, sources, database, table)
}

// waitColumns polls every replica until its columns of database.table (names, types and defaults, in table order) are those of the
// replica that ran the statement for its shard's path.
func waitColumns(ctx context.Context, replicas []replica, pathOf map[uint32]string, sources map[string]replica, database, table string) error {
	q := "SELECT name, type, default_kind, default_expression FROM system.columns WHERE database = " + quoteString(database) +
		" AND table = " + quoteString(table)
	want := map[string]string{} // path → its source's columns
	for path, src := range sources {
		cols, err := columnList(ctx, src.conn, q)
		if err != nil {
			return fmt.Errorf("columns of %s.%s on %s: %w", database, table, src.addr, err)
		}
		want[path] = cols
	}
	deadline := time.Now().Add(alterWait)
	for _, r := range replicas {
		for {
			cols, err := columnList(ctx, r.conn, q)
			if err == nil && cols == want[pathOf[r.shard]] {
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

// columnList runs q (name, type, default kind and expression per column) and returns the rows as one comparable string.
func columnList(ctx context.Context, conn driver.Conn, q string) (string, error) {
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var name, typ, kind, expr string
		if err := rows.Scan(&name, &typ, &kind, &expr); err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%s %s %s %s, ", name, typ, kind, expr)
	}
	return b.String(), rows.Err()
}
