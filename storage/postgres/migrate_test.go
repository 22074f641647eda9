package postgres

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/adtracker/adtracker/migrations"
	"github.com/adtracker/adtracker/storage/postgres/pgtest"
)

func loadFiles(t *testing.T, fsys fstest.MapFS) []migrations.File {
	t.Helper()
	files, err := migrations.Load(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestMigrateTwiceChangesNothing(t *testing.T) {
	t.Parallel()
	db := openDSN(t, pgtest.DSN(t), false)
	ctx := context.Background()
	files, err := migrations.Postgres()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
	}
	applied, err := db.Migrate(ctx, files)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(applied, names) {
		t.Fatalf("first Migrate applied %q, want %q", applied, names)
	}
	before := schemaState(t, db)
	applied, err = db.Migrate(ctx, files)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != 0 {
		t.Fatalf("second Migrate applied %q", applied)
	}
	if after := schemaState(t, db); after != before {
		t.Fatalf("second Migrate changed the schema:\nbefore %s\nafter  %s", before, after)
	}
}

// schemaState summarises what migrations touch: the recorded rows (with their applied_at)
// and the objects in the schema.
func schemaState(t *testing.T, db *DB) string {
	t.Helper()
	var s string
	err := db.pool.QueryRow(context.Background(), `SELECT
		(SELECT string_agg(version || ':' || name || ':' || checksum || ':' || applied_at, ',' ORDER BY version) FROM schema_migrations)
		|| ' | ' ||
		(SELECT string_agg(c.relname || ':' || c.relkind::text, ',' ORDER BY c.relname) FROM pg_class c
		 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema())
		|| ' | ' ||
		(SELECT string_agg(tgname, ',' ORDER BY tgname) FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
		 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT tg.tgisinternal AND n.nspname = current_schema())`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMigrateRefusesChangedFile(t *testing.T) {
	t.Parallel()
	db := openDSN(t, pgtest.DSN(t), false)
	ctx := context.Background()
	v1 := loadFiles(t, fstest.MapFS{
		"m/0001_a.sql": {Data: []byte("CREATE TABLE a (x int);")},
	})
	if _, err := db.Migrate(ctx, v1); err != nil {
		t.Fatal(err)
	}
	changed := loadFiles(t, fstest.MapFS{
		"m/0001_a.sql": {Data: []byte("CREATE TABLE a (x bigint);")},
		"m/0002_b.sql": {Data: []byte("CREATE TABLE b (x int);")},
	})
	applied, err := db.Migrate(ctx, changed)
	if err == nil {
		t.Fatal("Migrate accepted a changed applied migration")
	}
	msg := err.Error()
	for _, want := range []string{"migration 0001_a.sql was changed after it was applied", v1[0].Checksum[:12], "add a new migration instead"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("error %q does not contain %q", msg, want)
		}
	}
	if len(applied) != 0 {
		t.Fatalf("applied %q despite the refusal", applied)
	}
	// Refused before anything ran: 0002 must not exist.
	var b *string
	if err := db.pool.QueryRow(ctx, "SELECT to_regclass('b')::text").Scan(&b); err != nil || b != nil {
		t.Fatalf("table b = %v, %v; the pending file ran", b, err)
	}
}

func TestMigrateFailingFileLeavesNothing(t *testing.T) {
	t.Parallel()
	db := openDSN(t, pgtest.DSN(t), false)
	ctx := context.Background()
	files := loadFiles(t, fstest.MapFS{
		"m/0001_a.sql": {Data: []byte("CREATE TABLE a (x int);")},
		"m/0002_b.sql": {Data: []byte("CREATE TABLE b (x int);\nINSERT INTO nonexistent VALUES (1);")},
	})
	applied, err := db.Migrate(ctx, files)
	if err == nil || !strings.Contains(err.Error(), "migration 0002_b.sql, statement 2") {
		t.Fatalf("Migrate error = %v, want one naming 0002_b.sql statement 2", err)
	}
	if !slices.Equal(applied, []string{"0001_a.sql"}) {
		t.Fatalf("applied = %q", applied)
	}
	var b *string
	var n int
	if err := db.pool.QueryRow(ctx, "SELECT to_regclass('b')::text, (SELECT count(*) FROM schema_migrations)").Scan(&b, &n); err != nil {
		t.Fatal(err)
	}
	if b != nil || n != 1 {
		t.Fatalf("after a failed 0002: table b = %v, %d recorded; want no table and 1 row", b, n)
	}
}

func TestMigrateConcurrent(t *testing.T) {
	t.Parallel()
	dsn := pgtest.DSN(t)
	dbs := []*DB{openDSN(t, dsn, false), openDSN(t, dsn, false), openDSN(t, dsn, false)}
	files, err := migrations.Postgres()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([][]string, len(dbs))
	errs := make([]error, len(dbs))
	for i, db := range dbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = db.Migrate(context.Background(), files)
		}()
	}
	wg.Wait()
	total := 0
	for i := range dbs {
		if errs[i] != nil {
			t.Fatalf("runner %d: %v", i, errs[i])
		}
		total += len(results[i])
	}
	if total != len(files) {
		t.Fatalf("runners applied %v between them, want each of %d files exactly once", results, len(files))
	}
}
