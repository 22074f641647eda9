package clickhouse

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/adtracker/adtracker/migrations"
)

// ClickHouse has no transactions, so a file is applied statement by statement and recorded afterwards; every shipped statement is
// written to be safe to run twice (IF NOT EXISTS), so a run interrupted half-way is finished by the next one.
const migrationColumns = `
(
    version    UInt32,
    name       String,
    checksum   String,
    status     String,
    server     String,
    applied_at DateTime('UTC'),
    seq        UInt64
)
`

const createMigrations = "CREATE TABLE IF NOT EXISTS schema_migrations" + migrationColumns + "ENGINE = MergeTree()\nORDER BY (version, seq)"

// In a cluster the history is one replicated table with a shard-independent path: every node holds all of it, so migrate may run
// against any node and see what was applied through another.
const createClusterMigrations = "CREATE TABLE IF NOT EXISTS ${DATABASE}.schema_migrations ON CLUSTER ${CLUSTER}" + migrationColumns +
	"ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/${DATABASE}/schema_migrations', '{replica}')\nORDER BY (version, seq)"

// MigrationFiles returns the schema files for this connection: the cluster form (migrations/clickhouse/cluster) when a cluster is
// configured, else the single-server files.
func (db *DB) MigrationFiles() ([]migrations.File, error) {
	if db.cfg.Cluster != "" {
		return migrations.ClickHouseCluster()
	}
	return migrations.ClickHouse()
}

// MigrationResult says what Migrate did with one file.
type MigrationResult struct {
	Name   string
	Status string // "applied", "skipped" (server too old for it), "unchanged"
}

type recorded struct {
	name, checksum, status string
}

// Migrate applies files in version order. A file already applied with another checksum is refused with an error naming it: the schema
// in the database no longer matches the file, and only a new migration can change it. A file whose "-- adtracker:min-server" is newer
// than the server is recorded as skipped and applied by the first Migrate after the server is upgraded.
func (db *DB) Migrate(ctx context.Context, files []migrations.File) ([]MigrationResult, error) {
	cluster := db.cfg.Cluster
	create := createMigrations
	if cluster != "" {
		create = migrations.Expand(createClusterMigrations, cluster, db.Database)
		defer db.ddl.closeAll() // the next Migrate lists the replicas again
	}
	if err := db.Conn.Exec(ddlContext(ctx, cluster), create); err != nil {
		return nil, classify("create schema_migrations", ddlError(err), false)
	}
	version, err := db.Version(ctx)
	if err != nil {
		return nil, classify("read version", err, false)
	}
	done := map[uint32]recorded{}
	rows, err := db.Conn.Query(ctx, "SELECT version, name, checksum, status FROM schema_migrations ORDER BY version, seq")
	if err != nil {
		return nil, classify("read schema_migrations", err, false)
	}
	for rows.Next() {
		var v uint32
		var r recorded
		if err := rows.Scan(&v, &r.name, &r.checksum, &r.status); err != nil {
			rows.Close()
			return nil, err
		}
		done[v] = r // later rows win: a skipped file that was applied later has two rows
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []MigrationResult
	for _, f := range files {
		prev, seen := done[uint32(f.Version)]
		if seen && prev.status == "applied" {
			if prev.checksum != f.Checksum {
				return out, fmt.Errorf("clickhouse migration %s was changed after it was applied (checksum %.12s, file now %.12s): add a new migration instead of editing an applied one",
					f.Name, prev.checksum, f.Checksum)
			}
			out = append(out, MigrationResult{Name: f.Name, Status: "unchanged"})
			continue
		}
		status := "applied"
		if !migrations.ServerAtLeast(version, f.MinServer) {
			status = "skipped"
			if seen && prev.status == "skipped" && prev.checksum == f.Checksum {
				out = append(out, MigrationResult{Name: f.Name, Status: "skipped"})
				continue
			}
		} else {
			sql := f.SQL
			if cluster != "" {
				sql = migrations.Expand(sql, cluster, db.Database)
			}
			for i, stmt := range migrations.Statements(sql) {
				if err := db.execDDL(ctx, stmt); err != nil {
					return out, fmt.Errorf("clickhouse migration %s, statement %d: %w", f.Name, i+1, err)
				}
			}
		}
		if err := db.record(ctx, f, status, version); err != nil {
			return out, fmt.Errorf("clickhouse migration %s: record: %w", f.Name, err)
		}
		out = append(out, MigrationResult{Name: f.Name, Status: status})
	}
	return out, nil
}

// record appends one schema_migrations row. It goes through a batch: a parameterised INSERT ... VALUES through Exec hangs on 18.16.
func (db *DB) record(ctx context.Context, f migrations.File, status, version string) error {
	b, err := db.Conn.PrepareBatch(ctx, "INSERT INTO schema_migrations (version, name, checksum, status, server, applied_at, seq)")
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	if err := b.Append(uint32(f.Version), f.Name, f.Checksum, status, version, now, uint64(now.UnixNano())); err != nil {
		b.Abort()
		return err
	}
	return b.Send()
}

// execDDL runs one migration statement. In a cluster, a column change of a Replicated* table goes to one replica per shard
// (cluster_alter.go); everything else is sent as written, ON CLUSTER statements through the DDL queue. ADD COLUMN IF NOT EXISTS is
// made idempotent on the server that runs it (addColumnIfMissing).
func (db *DB) execDDL(ctx context.Context, stmt string) error {
	if db.cfg.Cluster != "" {
		if m := alterColumnsOnCluster.FindStringSubmatch(stmt); m != nil {
			database, table := splitTable(m[2], db.Database)
			var engine string
			err := db.Conn.QueryRow(ctx, "SELECT engine FROM system.tables WHERE database = ? AND name = ?", database, table).Scan(&engine)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("engine of %s.%s: %w", database, table, err)
			}
			// The cluster schema creates every table ON CLUSTER, so the connected node's engine stands for every node's.
			if strings.HasPrefix(engine, "Replicated") {
				return db.alterReplicated(ctx, database, table, m[1]+m[3])
			}
		}
	}
	stmt, run, err := addColumnIfMissing(ctx, db.Conn, db.Database, stmt)
	if err != nil || !run {
		return err
	}
	return ddlError(db.Conn.Exec(ddlContext(ctx, db.cfg.Cluster), stmt))
}

// splitTable splits "[db.]table", either part possibly quoted, into the database (database when the name has none) and the table.
func splitTable(name, database string) (string, string) {
	table := name
	if d, t, ok := strings.Cut(name, "."); ok {
		database, table = d, t
	}
	return unquote(database), unquote(table)
}

// unquote strips the backquotes or double quotes around an identifier.
func unquote(s string) string { return strings.Trim(s, "`\"") }

// leadingComments matches the comments a statement may start with (-- lines, /* blocks */). addColumnIf and
// alterColumnsOnCluster start with it, so a comment above a statement never changes how it is run.
const leadingComments = `(?:\s*(?:--[^\n]*\n|/\*.*?\*/))*`

// addColumnIf matches "ALTER TABLE [db.]table [ON CLUSTER c] ADD COLUMN IF NOT EXISTS name ..." after any leading comments;
// the groups are the table, IF NOT EXISTS and the column. A statement adds one column only (TestShippedAddColumnStatementsAddOneColumn).
var addColumnIf = regexp.MustCompile(`(?is)^` + leadingComments + `\s*ALTER\s+TABLE\s+(\S+)(?:\s+ON\s+CLUSTER\s+\S+)?\s+ADD\s+COLUMN\s+(IF\s+NOT\s+EXISTS\s+)(\S+)\s`)

// addColumnIfMissing makes "ADD COLUMN IF NOT EXISTS" idempotent on servers that cannot parse it (18.16 cannot): it reports
// run = false when the table already has the column, and otherwise returns the statement without IF NOT EXISTS, which every
// server accepts. Other statements are returned as they are. The check reads system.columns of conn, the server that runs the
// statement: the one migrate connects to, or in a cluster the replica a replicated table's ALTER goes to (cluster_alter.go);
// other ON CLUSTER DDL reaches every node through the DDL queue, so the connected node's table stands for all of them.
// database names the table's database when the statement does not.
func addColumnIfMissing(ctx context.Context, conn driver.Conn, database, stmt string) (string, bool, error) {
	m := addColumnIf.FindStringSubmatchIndex(stmt)
	if m == nil {
		return stmt, true, nil
	}
	database, table := splitTable(stmt[m[2]:m[3]], database)
	column := unquote(stmt[m[6]:m[7]])
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?",
		database, table, column).Scan(&n); err != nil {
		return "", false, fmt.Errorf("check column %s.%s: %w", table, column, err)
	}
	if n > 0 {
		return "", false, nil
	}
	return stmt[:m[4]] + stmt[m[5]:], true, nil
}
