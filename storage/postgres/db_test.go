package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/adtracker/adtracker/storage/postgres/pgtest"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// openTest opens a migrated private schema.
func openTest(t *testing.T) *DB {
	t.Helper()
	return openDSN(t, pgtest.DSN(t), true)
}

func openDSN(t *testing.T, dsn string, migrate bool) *DB {
	t.Helper()
	ctx := context.Background()
	db, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if migrate {
		if _, err := db.MigrateEmbedded(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

func TestOpenUnreachable(t *testing.T) {
	// Port 1 on loopback: nothing listens there, so the connection is refused at once.
	_, err := Open(context.Background(), "postgres://someone:s3cretpw@127.0.0.1:1/adtracker?sslmode=disable&connect_timeout=2")
	if err == nil {
		t.Fatal("Open succeeded against a dead port")
	}
	msg := err.Error()
	if !strings.Contains(msg, "127.0.0.1:1") || !strings.Contains(msg, "unreachable") {
		t.Fatalf("error does not name the host: %v", err)
	}
	if strings.Contains(msg, "s3cretpw") {
		t.Fatalf("error leaks the password: %v", err)
	}
	if !IsUnavailable(err) {
		t.Fatalf("IsUnavailable(%v) = false", err)
	}

	_, err = Open(context.Background(), "postgres://someone:s3cretpw@127.0.0.1:notaport/x")
	if err == nil || strings.Contains(err.Error(), "s3cretpw") {
		t.Fatalf("bad DSN: err = %v", err)
	}
}

func TestIsUnavailable(t *testing.T) {
	f := func(err error, want bool) {
		t.Helper()
		if got := IsUnavailable(err); got != want {
			t.Fatalf("IsUnavailable(%v) = %v, want %v", err, got, want)
		}
	}
	f(nil, false)
	f(errors.New("boom"), false)
	f(ErrNotFound, false)
	f(ErrConflict, false)
	f(&pgconn.PgError{Code: "23514"}, false) // check violation: the statement's fault
	f(&pgconn.PgError{Code: "42P01"}, false) // undefined table
	f(&pgconn.PgError{Code: "57P01"}, true)  // admin shutdown
	f(&pgconn.PgError{Code: "08006"}, true)  // connection failure
	f(fmt.Errorf("list ads: %w", io.ErrUnexpectedEOF), true)
	f(fmt.Errorf("get: %w", context.DeadlineExceeded), true)
	f(errors.New("closed pool"), true)
	f(fmt.Errorf("load: %w", errors.Join(errors.New("x"), errors.New("closed pool"))), true)
}
