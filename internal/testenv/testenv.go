// Package testenv finds the real servers integration tests run against and gives each test its own database on them.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
)

// ClickHouseAddr returns the native address of the test ClickHouse, or skips the test with how to get one.
func ClickHouseAddr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("ADTRACKER_TEST_CH_ADDR")
	if addr == "" {
		t.Skip("set ADTRACKER_TEST_CH_ADDR (make test does, after scripts/services.sh up) to run against a real ClickHouse")
	}
	return addr
}

// Name returns a fresh database name with the given prefix.
func Name(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + "_" + hex.EncodeToString(b[:])
}

// ClickHouseDB creates an empty database on the test ClickHouse, drops it when the test ends (unless ADTRACKER_TEST_KEEP is set),
// and returns its address and name.
func ClickHouseDB(t testing.TB) (addr, database string) {
	t.Helper()
	addr = ClickHouseAddr(t)
	database = Name("adtracker_test")
	conn, err := ch.Open(&ch.Options{Addr: []string{addr}, DialTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := conn.Exec(ctx, "CREATE DATABASE "+database); err != nil {
		t.Fatalf("create test database on %s: %v", addr, err)
	}
	t.Cleanup(func() {
		defer conn.Close()
		if os.Getenv("ADTRACKER_TEST_KEEP") != "" {
			t.Logf("kept ClickHouse database %s", database)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+database); err != nil {
			t.Logf("drop %s: %v", database, err)
		}
	})
	return addr, database
}
