package postgres

import (
	"context"
	"testing"

	"github.com/adtracker/adtracker/migrations"
	"github.com/adtracker/adtracker/storage/postgres/pgtest"
)

// Ads that exist before migration 0003 get the MediaFile defaults and weight 1, so they are servable as VAST at once.
func TestMigration0003DefaultsExistingAds(t *testing.T) {
	t.Parallel()
	db := openDSN(t, pgtest.DSN(t), false)
	ctx := context.Background()
	files, err := migrations.Postgres()
	if err != nil {
		t.Fatal(err)
	}
	var before []migrations.File
	for _, f := range files {
		if f.Version < 3 {
			before = append(before, f)
		}
	}
	if _, err := db.Migrate(ctx, before); err != nil {
		t.Fatal(err)
	}
	if _, err := db.pool.Exec(ctx, `INSERT INTO ads (name, target_url, video_url) VALUES ('old', 'https://example.com/', 'https://cdn.example.com/v.mp4')`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Migrate(ctx, files); err != nil {
		t.Fatal(err)
	}
	rows, err := db.AllForSnapshot(ctx)
	if err != nil || len(rows) != 1 {
		t.Fatalf("%d rows, %v", len(rows), err)
	}
	r := rows[0]
	if r.VideoMimeType != "video/mp4" || r.VideoWidth != 1280 || r.VideoHeight != 720 || r.VideoBitrateKbps != 0 ||
		r.VideoDelivery != "progressive" || r.Weight != 1 || r.Name != "old" || r.VideoURL != "https://cdn.example.com/v.mp4" ||
		r.DurationSeconds != 30 || r.Version != 1 {
		t.Fatalf("existing ad after 0003: %+v", r)
	}
}
