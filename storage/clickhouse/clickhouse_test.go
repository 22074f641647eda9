package clickhouse

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/internal/testenv"
	"github.com/adtracker/adtracker/migrations"
)

func openTest(t testing.TB) *DB {
	t.Helper()
	addr, database := testenv.ClickHouseDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	db, err := Open(ctx, Config{Addr: addr, Database: database}, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func migrated(t testing.TB) *DB {
	t.Helper()
	db := openTest(t)
	files, err := migrations.ClickHouse()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Migrate(context.Background(), files); err != nil {
		t.Fatal(err)
	}
	return db
}

func TestMigrateIdempotentAndRefusesChangedFile(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	files, err := migrations.ClickHouse()
	if err != nil {
		t.Fatal(err)
	}
	first, err := db.Migrate(ctx, files)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range first {
		if r.Status != "applied" && r.Status != "skipped" {
			t.Fatalf("first run: %+v", r)
		}
	}
	schema := func() string {
		var out []string
		rows, err := db.Conn.Query(ctx, "SELECT name, engine FROM system.tables WHERE database = ? ORDER BY name", db.Database)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var n, e string
			if err := rows.Scan(&n, &e); err != nil {
				t.Fatal(err)
			}
			out = append(out, n+":"+e)
		}
		var c uint64
		if err := db.Conn.QueryRow(ctx, "SELECT count() FROM schema_migrations").Scan(&c); err != nil {
			t.Fatal(err)
		}
		return strings.Join(out, ",") + " rows=" + string(rune('0'+c))
	}
	before := schema()
	second, err := db.Migrate(ctx, files)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range second {
		if r.Status != "unchanged" && r.Status != "skipped" {
			t.Fatalf("second run changed something: %+v", r)
		}
	}
	if after := schema(); after != before {
		t.Fatalf("second migrate changed the schema:\n%s\n%s", before, after)
	}
	changed := append([]migrations.File(nil), files...)
	changed[0].SQL += "\n-- edited"
	changed[0].Checksum = "0000" + changed[0].Checksum[4:]
	_, err = db.Migrate(ctx, changed)
	if err == nil || !strings.Contains(err.Error(), files[0].Name) {
		t.Fatalf("changed migration: err = %v, want one naming %s", err, files[0].Name)
	}
}

func TestMigrateSkipsTooNewThenAppliesAfterUpgrade(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	files := []migrations.File{
		{Version: 1, Name: "0001_t.sql", SQL: "CREATE TABLE IF NOT EXISTS t (x UInt8) ENGINE = Memory", Checksum: "a"},
		{Version: 2, Name: "0002_future.sql", SQL: "CREATE TABLE IF NOT EXISTS u (x UInt8) ENGINE = Memory", Checksum: "b", MinServer: "999.1"},
	}
	res, err := db.Migrate(ctx, files)
	if err != nil || res[1].Status != "skipped" {
		t.Fatalf("%+v %v", res, err)
	}
	var n uint64
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = 'u'", db.Database).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatal("a migration for a newer server ran")
	}
	db.version = "999.2" // pretend the server was upgraded
	res, err = db.Migrate(ctx, files)
	if err != nil || res[1].Status != "applied" || res[0].Status != "unchanged" {
		t.Fatalf("%+v %v", res, err)
	}
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = 'u'", db.Database).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatal("skipped migration not applied after upgrade")
	}
}

func testBatch(n int, ad uint64) *event.Batch {
	var b event.Batch
	var e event.Event
	for i := 0; i < n; i++ {
		e.Reset()
		e.ID[0], e.ID[1], e.ID[15] = byte(i>>8), byte(i), byte(ad)
		e.ID[6] = 0x40
		e.Type = event.Types()[i%13]
		e.AdID = ad
		e.EventTime = time.Date(2025, 4, 21, 15, 0, i%60, 0, time.UTC).Unix()
		e.ReceiveTime = e.EventTime + 1
		e.PlaybackMs = uint32(i * 10)
		e.SetIP(net.ParseIP("203.0.113.7"))
		e.SetViewerID([]byte("v"))
		e.SetUserAgent([]byte("ua"))
		b.Append(&e)
	}
	return &b
}

func TestSinkInsertAndStored(t *testing.T) {
	db := migrated(t)
	ctx := context.Background()
	s := NewSink(db)
	b := testBatch(500, 7)
	if err := s.Insert(ctx, b); err != nil {
		t.Fatal(err)
	}
	var n uint64
	var ip, typ string
	var pb uint32
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM events").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 500 {
		t.Fatalf("%d rows", n)
	}
	if err := db.Conn.QueryRow(ctx, "SELECT IPv6NumToString(ip), toString(type), playback_ms FROM events WHERE playback_ms = 30").Scan(&ip, &typ, &pb); err != nil {
		t.Fatal(err)
	}
	if ip != "::ffff:203.0.113.7" || typ != "first_quartile" || pb != 30 {
		t.Fatalf("row: ip %q type %q playback %d", ip, typ, pb)
	}
	stored, err := s.Stored(ctx, b)
	if err != nil || len(stored) != 500 {
		t.Fatalf("Stored = %d, %v", len(stored), err)
	}
	// A batch that may already be stored is filtered: the 500 stored rows are skipped, 100 new ones inserted.
	mixed := testBatch(600, 7)
	mixed.MaybeStored = true
	if err := s.Insert(ctx, mixed); err != nil {
		t.Fatal(err)
	}
	if err := db.Conn.QueryRow(ctx, "SELECT count(), uniqExact(event_id) FROM events").Scan(&n, new(uint64)); err != nil {
		t.Fatal(err)
	}
	if n != 600 {
		t.Fatalf("after MaybeStored insert: %d rows, want 600", n)
	}
}

func TestErrorClassification(t *testing.T) {
	db := migrated(t)
	ctx := context.Background()
	// A schema mismatch is permanent: retrying cannot help.
	if err := db.Conn.Exec(ctx, "ALTER TABLE events DROP COLUMN session_id"); err != nil {
		t.Fatal(err)
	}
	err := NewSink(db).Insert(ctx, testBatch(3, 1))
	var e *Error
	if !errors.As(err, &e) || !e.Permanent || e.Retryable() {
		t.Fatalf("schema mismatch: %#v", err)
	}
	// A server that is not there is retryable.
	dead, err := ch.Open(&ch.Options{Addr: []string{"127.0.0.1:1"}, DialTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	err = NewSink(&DB{Conn: dead, write: dead}).Insert(ctx, testBatch(3, 1))
	if !errors.As(err, &e) || e.Permanent || !e.Retryable() {
		t.Fatalf("dead server: %#v", err)
	}
}

// After the server restarts, the pool's idle connections are dead; the driver must notice before it reuses one (it peeks at the
// socket, through syscall.Conn, which our connection wrapper has to pass on), so the first query after the restart succeeds.
func TestFirstQueryAfterServerRestart(t *testing.T) {
	chp := testenv.StartClickHouse(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	db, err := Open(ctx, Config{Addr: chp.Addr, Database: "default"}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	chp.Kill()
	chp.Start()
	var one uint8
	if err := db.Conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("first query after a restart: %v (the pool reused a dead connection)", err)
	}
}

// auto compresses unless every address is loopback; an explicit choice wins.
func TestCompressionChoice(t *testing.T) {
	f := func(addr, setting string, lz4 bool) {
		t.Helper()
		got := compression(Config{Addr: addr, Compression: setting})
		if (got != nil) != lz4 || (got != nil && got.Method != ch.CompressionLZ4) {
			t.Fatalf("compression(%q, %q) = %v, want lz4 %v", addr, setting, got, lz4)
		}
	}
	f("127.0.0.1:9000", "", false)
	f("127.0.0.1:9000", CompressionAuto, false)
	f("localhost:9000", CompressionAuto, false)
	f("[::1]:9000", CompressionAuto, false)
	f("127.0.0.1:9000, 127.0.0.2:9100", CompressionAuto, false)
	f("clickhouse:9000", CompressionAuto, true)
	f("10.0.0.7:9000", CompressionAuto, true)
	f("127.0.0.1:9000,10.0.0.7:9000", CompressionAuto, true)
	f("127.0.0.1:9000", CompressionLZ4, true)
	f("clickhouse:9000", CompressionNone, false)
}

// Both wire forms store the same rows on 18.16: tests on loopback run uncompressed by default, so LZ4 gets its own insert.
func TestInsertWithEachCompression(t *testing.T) {
	for _, mode := range []string{CompressionLZ4, CompressionNone} {
		addr, database := testenv.ClickHouseDB(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		db, err := Open(ctx, Config{Addr: addr, Database: database, Compression: mode}, true)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		files, err := migrations.ClickHouse()
		if err == nil {
			_, err = db.Migrate(ctx, files)
		}
		if err == nil {
			err = NewSink(db).insert(ctx, randomBatch(5000), 2048)
		}
		var n, uas uint64
		if err == nil {
			err = db.Conn.QueryRow(ctx, "SELECT count(), uniqExact(user_agent) FROM events").Scan(&n, &uas)
		}
		db.Close()
		cancel()
		if err != nil || n != 5000 || uas != 5000 {
			t.Fatalf("%s: %d rows, %d distinct user agents, %v; want 5000 of each", mode, n, uas, err)
		}
	}
}
