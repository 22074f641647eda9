package catalog

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/adtracker/adtracker/storage/postgres"
	"github.com/adtracker/adtracker/storage/postgres/pgtest"
)

func TestNotifyReachesLookupWithinASecond(t *testing.T) {
	t.Parallel()
	db := openPG(t, pgtest.DSN(t))
	// An hour-long refresh, so only NOTIFY can bring the new ad in.
	c := New(db, Config{RefreshInterval: time.Hour})
	start(t, c)
	waitFor(t, "first load and LISTEN", 10*time.Second, func() bool { return c.Ready() && c.Listening() })

	a := newAPI(t, db, token)
	ad := a.ad(a.do("POST", "/ads", `{"name":"fresh","target_url":"https://example.com/fresh"}`), 201)
	waitFor(t, "the new ad in the catalogue", time.Second, func() bool {
		e, ok := c.Lookup(uint64(ad.ID))
		return ok && e.Accepts() && e.TargetURL == "https://example.com/fresh"
	})

	a.ad(a.do("DELETE", "/ads/"+itoa(ad.ID), ""), 200)
	waitFor(t, "the archive in the catalogue", time.Second, func() bool {
		e, ok := c.Lookup(uint64(ad.ID))
		return ok && e.Status == StatusArchived && !e.Accepts()
	})
}

func TestPostgresDownKeepsSnapshot(t *testing.T) {
	t.Parallel()
	proxy, dsn := pgtest.NewProxy(t, pgtest.DSN(t))
	db := openPG(t, dsn)
	seed, err := db.Create(context.Background(), postgres.Ad{Name: "kept", TargetURL: "https://example.com/kept"})
	if err != nil {
		t.Fatal(err)
	}
	const refresh = 20 * time.Millisecond
	c := New(db, Config{RefreshInterval: refresh, RetryMin: time.Millisecond, LoadTimeout: 2 * time.Second})
	start(t, c)
	waitFor(t, "first load", 10*time.Second, func() bool { return c.Ready() && c.Listening() })
	a := newAPI(t, db, token)

	proxy.Kill() // Postgres is gone: sessions dropped, the port refuses connections

	err = c.Reload(context.Background())
	if err == nil || !postgres.IsUnavailable(err) {
		t.Fatalf("Reload with Postgres gone: %v (unavailable %v)", err, postgres.IsUnavailable(err))
	}
	// Reloads every 20 ms fail; once the snapshot is many intervals old, they have been tried.
	waitFor(t, "reloads to fail", 10*time.Second, func() bool { return c.Age() > 10*refresh })
	if e, ok := c.Lookup(uint64(seed.ID)); !ok || !e.Accepts() || e.TargetURL != seed.TargetURL || !c.Ready() || c.Size() != 1 {
		t.Fatalf("with Postgres down: Lookup = %+v, %v; ready %v, size %d", e, ok, c.Ready(), c.Size())
	}
	if _, ok := c.Lookup(uint64(seed.ID + 1)); ok {
		t.Fatal("unknown ids must stay unknown")
	}

	r := a.do("GET", "/ads/"+itoa(seed.ID), "")
	if r.status != 503 || r.body != "{\"error\":\"catalogue database unavailable\"}\n" {
		t.Fatalf("GET with Postgres down: %d %q", r.status, r.body)
	}
	wantError(t, a.do("POST", "/ads", `{"name":"n","target_url":"https://example.com/"}`), 503, "", "catalogue database unavailable")
}

func TestReloadOnClosedPool(t *testing.T) {
	t.Parallel()
	db := openPG(t, pgtest.DSN(t))
	if _, err := db.Seed(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := New(db, Config{})
	if err := c.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	db.Close()
	err := c.Reload(context.Background())
	if err == nil || !postgres.IsUnavailable(err) {
		t.Fatalf("Reload on a closed pool: %v", err)
	}
	if c.Size() != len(postgres.DemoAds) {
		t.Fatalf("Size = %d after a failed reload", c.Size())
	}
	if _, err := db.Get(context.Background(), 1); !postgres.IsUnavailable(err) || errors.Is(err, postgres.ErrNotFound) {
		t.Fatalf("Get on a closed pool: %v", err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
