package postgres

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/adtracker/adtracker/storage/postgres/pgtest"
)

func TestListenDeliversAndReconnects(t *testing.T) {
	t.Parallel()
	// A unique application_name lets the test find and kill the listener's backend.
	app := "adtracker_listen_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	dsn, err := pgtest.WithParam(pgtest.DSN(t), "application_name", app)
	if err != nil {
		t.Fatal(err)
	}
	db := openDSN(t, dsn, true)
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan string, 100)
	done := make(chan error, 1)
	go func() { done <- db.Listen(ctx, AdsChannel, func(p string) { got <- p }) }()

	next := func() string {
		t.Helper()
		select {
		case p := <-got:
			return p
		case <-time.After(10 * time.Second):
			t.Fatal("no notification")
			return ""
		}
	}
	if p := next(); p != "" {
		t.Fatalf("first call %q, want the empty resubscribe signal", p)
	}
	ad, err := db.Create(ctx, newAd("notified"))
	if err != nil {
		t.Fatal(err)
	}
	// Other tests share the database and the channel; skip their ids.
	want := strconv.FormatInt(ad.ID, 10)
	for p := next(); p != want; p = next() {
	}

	var killed bool
	if err := db.pool.QueryRow(ctx, "SELECT bool_or(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN%'", app).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminating the listener: %v, %v", killed, err)
	}
	for p := next(); p != ""; p = next() {
	}
	if _, err := db.Patch(ctx, ad.ID, AdPatch{Status: ptr(StatusPaused)}, 0); err != nil {
		t.Fatal(err)
	}
	for p := next(); p != want; p = next() {
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Listen returned %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Listen did not return after cancel")
	}
}

func TestListenStopsOnClose(t *testing.T) {
	t.Parallel()
	db := openTest(t)
	done := make(chan error, 1)
	subscribed := make(chan struct{}, 1)
	go func() {
		done <- db.Listen(context.Background(), AdsChannel, func(p string) {
			if p == "" {
				subscribed <- struct{}{}
			}
		})
	}()
	<-subscribed
	db.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Listen kept running after Close")
	}
}

func ptr[T any](v T) *T { return &v }
