package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/adtracker/adtracker/migrations"
	"github.com/jackc/pgx/v5"
)

// migrateLockKey is the pg_advisory_lock key that serialises migration runners of every
// adtracker process on one database ("adtr" in ASCII, so it is recognisable in pg_locks).
const migrateLockKey int64 = 0x61647472

const createSchemaMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INT         PRIMARY KEY,
    name       TEXT        NOT NULL,
    checksum   TEXT        NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)`

// Migrate applies the files not yet recorded in schema_migrations, in version order, and
// returns the names it applied. Each file runs in one transaction together with its
// schema_migrations row, so a failing file leaves nothing half-applied. A file already applied
// whose checksum changed is refused before anything runs: editing history would leave
// databases that applied the old text silently different from new ones.
// Pass migrations.Postgres() for the real files.
func (db *DB) Migrate(ctx context.Context, files []migrations.File) (applied []string, err error) {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	// The advisory lock belongs to this session, so every step below must use this conn.
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLockKey); err != nil {
		conn.Release()
		return nil, fmt.Errorf("migrate: taking the migration lock: %w", err)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, uerr := conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", migrateLockKey); uerr != nil {
			// Closing the session is the other way to release the lock; never hand a locked
			// connection back to the pool.
			_ = conn.Hijack().Close(uctx)
			return
		}
		conn.Release()
	}()

	if _, err := conn.Exec(ctx, createSchemaMigrations); err != nil {
		return nil, fmt.Errorf("migrate: creating schema_migrations: %w", err)
	}
	type row struct{ name, checksum string }
	done := map[int]row{}
	rows, err := conn.Query(ctx, "SELECT version, name, checksum FROM schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("migrate: reading schema_migrations: %w", err)
	}
	for rows.Next() {
		var v int
		var r row
		if err := rows.Scan(&v, &r.name, &r.checksum); err != nil {
			rows.Close()
			return nil, fmt.Errorf("migrate: reading schema_migrations: %w", err)
		}
		done[v] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("migrate: reading schema_migrations: %w", err)
	}

	var pending []migrations.File
	for _, f := range files {
		r, ok := done[f.Version]
		if !ok {
			pending = append(pending, f)
			continue
		}
		if r.checksum != f.Checksum {
			return nil, fmt.Errorf("migration %s was changed after it was applied (checksum %s, now %s): add a new migration instead",
				f.Name, short(r.checksum), short(f.Checksum))
		}
	}
	applied = []string{}
	for _, f := range pending {
		if err := applyFile(ctx, conn.Conn(), f); err != nil {
			return applied, err
		}
		applied = append(applied, f.Name)
	}
	return applied, nil
}

func applyFile(ctx context.Context, conn *pgx.Conn, f migrations.File) (err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migration %s: %w", f.Name, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	stmts := migrations.Statements(f.SQL)
	if len(stmts) == 0 {
		return fmt.Errorf("migration %s: no statements", f.Name)
	}
	for i, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("migration %s, statement %d: %w", f.Name, i+1, err)
		}
	}
	if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
		f.Version, f.Name, f.Checksum); err != nil {
		return fmt.Errorf("migration %s: recording it: %w", f.Name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migration %s: commit: %w", f.Name, err)
	}
	return nil
}

// short abbreviates a hex checksum for error messages; 12 hex digits tell files apart.
func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}

var errNoFiles = errors.New("no migrations")

// MigrateEmbedded applies the Postgres migrations embedded in the binary.
func (db *DB) MigrateEmbedded(ctx context.Context) ([]string, error) {
	files, err := migrations.Postgres()
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, errNoFiles
	}
	return db.Migrate(ctx, files)
}
