package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func newAd(name string) Ad {
	return Ad{Name: name, TargetURL: "https://example.com/" + name, DurationSeconds: 20, Status: StatusActive}
}

func TestAdsCRUD(t *testing.T) {
	t.Parallel()
	db := openTest(t)
	ctx := context.Background()

	created, err := db.Create(ctx, Ad{Name: "first", TargetURL: "https://example.com/a"})
	if err != nil {
		t.Fatal(err)
	}
	if created.ID <= 0 || created.Version != 1 || created.Status != StatusActive || created.DurationSeconds != 30 {
		t.Fatalf("Create defaults: %+v", created)
	}
	if created.CreatedAt.Location() != time.UTC || created.CreatedAt.IsZero() {
		t.Fatalf("CreatedAt %v is not a UTC time", created.CreatedAt)
	}
	got, err := db.Get(ctx, created.ID)
	if err != nil || got != created {
		t.Fatalf("Get = %+v, %v; want %+v", got, err, created)
	}

	upd := created
	upd.Name, upd.Status, upd.ImageURL = "renamed", StatusPaused, "https://example.com/i.png"
	updated, err := db.Update(ctx, upd, 1)
	if err != nil {
		t.Fatal(err)
	}
	if updated.Version != 2 || updated.Name != "renamed" || updated.Status != StatusPaused || updated.ImageURL != upd.ImageURL ||
		!updated.CreatedAt.Equal(created.CreatedAt) || updated.UpdatedAt.Before(created.UpdatedAt) {
		t.Fatalf("Update = %+v", updated)
	}
	if _, err := db.Update(ctx, upd, 1); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale Update err = %v, want ErrConflict", err)
	}

	dur := 99
	patched, err := db.Patch(ctx, created.ID, AdPatch{DurationSeconds: &dur}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if patched.Version != 3 || patched.DurationSeconds != 99 || patched.Name != "renamed" || patched.ImageURL != upd.ImageURL {
		t.Fatalf("Patch = %+v", patched)
	}
	if _, err := db.Patch(ctx, created.ID, AdPatch{DurationSeconds: &dur}, 2); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale Patch err = %v", err)
	}
	same, err := db.Patch(ctx, created.ID, AdPatch{}, 3)
	if err != nil || same.Version != 3 {
		t.Fatalf("empty Patch = %+v, %v; want version 3 unchanged", same, err)
	}
	if _, err := db.Patch(ctx, created.ID, AdPatch{}, 2); !errors.Is(err, ErrConflict) {
		t.Fatalf("empty stale Patch err = %v", err)
	}

	if _, err := db.Archive(ctx, created.ID, 2); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale Archive err = %v", err)
	}
	archived, err := db.Archive(ctx, created.ID, 0)
	if err != nil || archived.Status != StatusArchived || archived.Version != 4 {
		t.Fatalf("Archive = %+v, %v", archived, err)
	}
	again, err := db.Archive(ctx, created.ID, 4)
	if err != nil || again != archived {
		t.Fatalf("second Archive = %+v, %v; want the unchanged %+v", again, err, archived)
	}

	for _, err := range []error{
		func() error { _, err := db.Get(ctx, 999999); return err }(),
		func() error { a := newAd("x"); a.ID = 999999; _, err := db.Update(ctx, a, 0); return err }(),
		func() error { _, err := db.Patch(ctx, 999999, AdPatch{DurationSeconds: &dur}, 0); return err }(),
		func() error { _, err := db.Archive(ctx, 999999, 0); return err }(),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing ad: err = %v, want ErrNotFound", err)
		}
	}
}

func TestAdsListPaging(t *testing.T) {
	t.Parallel()
	db := openTest(t)
	ctx := context.Background()
	var ids []int64
	for i := range 7 {
		a := newAd(fmt.Sprint("ad", i))
		if i%3 == 2 {
			a.Status = StatusPaused
		}
		c, err := db.Create(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	// Every page of 2 over status, following the cursor, until no more.
	walk := func(status string) []int64 {
		var got []int64
		after := int64(0)
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatal("paging does not end")
			}
			ads, more, err := db.List(ctx, status, after, 2)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range ads {
				if status != StatusAll && a.Status != status {
					t.Fatalf("List(%q) returned %+v", status, a)
				}
				got = append(got, a.ID)
			}
			if !more {
				return got
			}
			after = ads[len(ads)-1].ID
		}
	}
	f := func(status string, want ...int64) {
		t.Helper()
		got := walk(status)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("List(%q) pages = %v, want %v", status, got, want)
		}
	}
	f(StatusActive, ids[0], ids[1], ids[3], ids[4], ids[6])
	f(StatusPaused, ids[2], ids[5])
	f(StatusAll, ids...)
	f(StatusArchived)

	// Exactly a page's worth: more must be false, not a trailing empty page.
	ads, more, err := db.List(ctx, StatusPaused, 0, 2)
	if err != nil || len(ads) != 2 || more {
		t.Fatalf("List(paused, 0, 2) = %d ads, more %v, %v", len(ads), more, err)
	}
}

func TestAllForSnapshotAndSeed(t *testing.T) {
	t.Parallel()
	db := openTest(t)
	ctx := context.Background()
	n, err := db.Seed(ctx)
	if err != nil || n != len(DemoAds) {
		t.Fatalf("Seed = %d, %v; want %d", n, err, len(DemoAds))
	}
	n, err = db.Seed(ctx)
	if err != nil || n != 0 {
		t.Fatalf("second Seed = %d, %v; want 0", n, err)
	}
	ads, _, err := db.List(ctx, StatusAll, 0, 100)
	if err != nil || len(ads) != len(DemoAds) {
		t.Fatalf("after Seed: %d ads, %v", len(ads), err)
	}
	if _, err := db.Archive(ctx, ads[0].ID, 0); err != nil {
		t.Fatal(err)
	}
	rows, err := db.AllForSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[int64]SnapshotRow{}
	for _, r := range rows {
		byID[r.ID] = r
	}
	if len(byID) != len(DemoAds) {
		t.Fatalf("AllForSnapshot returned %d ads, want %d (archived included)", len(byID), len(DemoAds))
	}
	if r := byID[ads[0].ID]; r.Status != StatusArchived || r.TargetURL != ads[0].TargetURL {
		t.Fatalf("archived row %+v", r)
	}
	if r := byID[ads[1].ID]; r.Status != StatusActive || r.UpdatedAt.IsZero() {
		t.Fatalf("active row %+v", r)
	}
}

func TestSeedSkipsNonEmptyTable(t *testing.T) {
	t.Parallel()
	db := openTest(t)
	ctx := context.Background()
	if _, err := db.Create(ctx, newAd("mine")); err != nil {
		t.Fatal(err)
	}
	if n, err := db.Seed(ctx); err != nil || n != 0 {
		t.Fatalf("Seed on a non-empty table = %d, %v", n, err)
	}
}

func TestConstraintErrorsAreNotUnavailable(t *testing.T) {
	t.Parallel()
	db := openTest(t)
	// The table refuses what the API would refuse; such errors must not look like an outage.
	_, err := db.Create(context.Background(), Ad{Name: "x", TargetURL: "ftp://example.com"})
	if err == nil || IsUnavailable(err) {
		t.Fatalf("Create with an ftp URL: err = %v (unavailable %v)", err, IsUnavailable(err))
	}
}
