// Package chtest gives tests outside storage/clickhouse a private, fully migrated database on the test ClickHouse.
package chtest

import (
	"context"
	"testing"
	"time"

	"github.com/adtracker/adtracker/internal/testenv"
	"github.com/adtracker/adtracker/migrations"
	chstore "github.com/adtracker/adtracker/storage/clickhouse"
)

// Migrated returns a fresh database on the test ClickHouse (testenv.ClickHouseDB: skipped without one, dropped at the end) with
// every shipped ClickHouse migration applied, closed when the test ends, and the server's address (the name is db.Database).
func Migrated(t testing.TB) (db *chstore.DB, addr string) {
	t.Helper()
	addr, database := testenv.ClickHouseDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	db, err := chstore.Open(ctx, chstore.Config{Addr: addr, Database: database}, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	files, err := migrations.ClickHouse()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Migrate(ctx, files); err != nil {
		t.Fatal(err)
	}
	return db, addr
}
