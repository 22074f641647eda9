package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Ad statuses, as the ads.status CHECK constraint spells them.
const (
	StatusActive   = "active"
	StatusPaused   = "paused"
	StatusArchived = "archived"
	// StatusAll is a List filter only: every status, archived included.
	StatusAll = "all"
)

// Ad is one row of the ads table, in the JSON shape of the /ads API (times are UTC).
type Ad struct {
	ID              int64  `json:"id"`
	Name            string `json:"name"`
	ImageURL        string `json:"image_url"`
	VideoURL        string `json:"video_url"`
	TargetURL       string `json:"target_url"`
	DurationSeconds int    `json:"duration_seconds"`
	// The VAST MediaFile of video_url (migrations/postgres/0003_ads_vast.sql): MIME type, pixel size, bitrate in kbit/s (0 = not
	// stated) and delivery ("progressive" or "streaming").
	VideoMimeType    string `json:"video_mime_type"`
	VideoWidth       int    `json:"video_width"`
	VideoHeight      int    `json:"video_height"`
	VideoBitrateKbps int    `json:"video_bitrate_kbps"`
	VideoDelivery    string `json:"video_delivery"`
	// Weight is the ad's share of GET /vast answers among active ads (0 = never chosen there; /vast/{id} still serves it).
	Weight    int       `json:"weight"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Version   int64     `json:"version"`
}

// AdPatch is a partial update: nil fields keep their value.
type AdPatch struct {
	Name             *string
	ImageURL         *string
	VideoURL         *string
	TargetURL        *string
	DurationSeconds  *int
	VideoMimeType    *string
	VideoWidth       *int
	VideoHeight      *int
	VideoBitrateKbps *int
	VideoDelivery    *string
	Weight           *int
	Status           *string
}

// Empty reports whether the patch changes nothing.
func (p AdPatch) Empty() bool {
	return p.Name == nil && p.ImageURL == nil && p.VideoURL == nil && p.TargetURL == nil &&
		p.DurationSeconds == nil && p.VideoMimeType == nil && p.VideoWidth == nil && p.VideoHeight == nil &&
		p.VideoBitrateKbps == nil && p.VideoDelivery == nil && p.Weight == nil && p.Status == nil
}

// SnapshotRow is what the in-memory catalogue needs of an ad: ingest checks status and redirects to target_url; the VAST renderer
// uses the rest, re-rendering an ad when its version changes.
type SnapshotRow struct {
	ID               int64
	Status           string
	TargetURL        string
	UpdatedAt        time.Time
	Version          int64
	Name             string
	VideoURL         string
	DurationSeconds  int
	VideoMimeType    string
	VideoWidth       int
	VideoHeight      int
	VideoBitrateKbps int
	VideoDelivery    string
	Weight           int
}

const adColumns = "id, name, image_url, video_url, target_url, duration_seconds, video_mime_type, video_width, video_height, " +
	"video_bitrate_kbps, video_delivery, weight, status, created_at, updated_at, version"

func scanAd(row pgx.Row) (Ad, error) {
	var a Ad
	err := row.Scan(&a.ID, &a.Name, &a.ImageURL, &a.VideoURL, &a.TargetURL, &a.DurationSeconds, &a.VideoMimeType, &a.VideoWidth,
		&a.VideoHeight, &a.VideoBitrateKbps, &a.VideoDelivery, &a.Weight, &a.Status, &a.CreatedAt, &a.UpdatedAt, &a.Version)
	a.CreatedAt, a.UpdatedAt = a.CreatedAt.UTC(), a.UpdatedAt.UTC()
	return a, err
}

// List returns up to limit ads with id > after in id order, and whether more follow.
// status "" or StatusAll lists every status.
func (db *DB) List(ctx context.Context, status string, after int64, limit int) ([]Ad, bool, error) {
	if limit <= 0 {
		return nil, false, fmt.Errorf("list ads: limit %d must be positive", limit)
	}
	var rows pgx.Rows
	var err error
	// Two statements rather than "($1 = 'all' OR status = $1)": a generic plan for the OR
	// form cannot use the (status, id) index.
	if status == "" || status == StatusAll {
		rows, err = db.pool.Query(ctx, "SELECT "+adColumns+" FROM ads WHERE id > $1 ORDER BY id LIMIT $2", after, limit+1)
	} else {
		rows, err = db.pool.Query(ctx, "SELECT "+adColumns+" FROM ads WHERE status = $1 AND id > $2 ORDER BY id LIMIT $3",
			status, after, limit+1)
	}
	if err != nil {
		return nil, false, fmt.Errorf("list ads: %w", err)
	}
	ads, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Ad, error) { return scanAd(r) })
	if err != nil {
		return nil, false, fmt.Errorf("list ads: %w", err)
	}
	more := len(ads) > limit
	if more {
		ads = ads[:limit]
	}
	return ads, more, nil
}

// Get returns the ad with id, or ErrNotFound.
func (db *DB) Get(ctx context.Context, id int64) (Ad, error) {
	a, err := scanAd(db.pool.QueryRow(ctx, "SELECT "+adColumns+" FROM ads WHERE id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Ad{}, ErrNotFound
	}
	if err != nil {
		return Ad{}, fmt.Errorf("get ad %d: %w", id, err)
	}
	return a, nil
}

// Create inserts ad (ID, Version and times are assigned by the database) and returns the row.
// An empty Status means active; a zero DurationSeconds, VideoWidth or VideoHeight and an empty VideoMimeType or VideoDelivery mean
// the table default. Weight and VideoBitrateKbps are taken as given (0 is a valid value of both): callers set the defaults.
func (db *DB) Create(ctx context.Context, ad Ad) (Ad, error) {
	a, err := scanAd(db.pool.QueryRow(ctx, `INSERT INTO ads (name, image_url, video_url, target_url, duration_seconds, status,
		video_mime_type, video_width, video_height, video_bitrate_kbps, video_delivery, weight)
		VALUES ($1, $2, $3, $4, COALESCE(NULLIF($5, 0), 30), COALESCE(NULLIF($6, ''), 'active'),
		COALESCE(NULLIF($7, ''), 'video/mp4'), COALESCE(NULLIF($8, 0), 1280), COALESCE(NULLIF($9, 0), 720), $10,
		COALESCE(NULLIF($11, ''), 'progressive'), $12)
		RETURNING `+adColumns,
		ad.Name, ad.ImageURL, ad.VideoURL, ad.TargetURL, ad.DurationSeconds, ad.Status,
		ad.VideoMimeType, ad.VideoWidth, ad.VideoHeight, ad.VideoBitrateKbps, ad.VideoDelivery, ad.Weight))
	if err != nil {
		return Ad{}, fmt.Errorf("create ad: %w", err)
	}
	return a, nil
}

// Update replaces every editable field of ad.ID. expectedVersion 0 writes unconditionally;
// otherwise a row whose version differs yields ErrConflict.
func (db *DB) Update(ctx context.Context, ad Ad, expectedVersion int64) (Ad, error) {
	a, err := scanAd(db.pool.QueryRow(ctx, `UPDATE ads SET name = $2, image_url = $3, video_url = $4, target_url = $5,
		duration_seconds = $6, status = $7, video_mime_type = $9, video_width = $10, video_height = $11,
		video_bitrate_kbps = $12, video_delivery = $13, weight = $14, version = version + 1, updated_at = now()
		WHERE id = $1 AND ($8::bigint = 0 OR version = $8)
		RETURNING `+adColumns,
		ad.ID, ad.Name, ad.ImageURL, ad.VideoURL, ad.TargetURL, ad.DurationSeconds, ad.Status, expectedVersion,
		ad.VideoMimeType, ad.VideoWidth, ad.VideoHeight, ad.VideoBitrateKbps, ad.VideoDelivery, ad.Weight))
	if errors.Is(err, pgx.ErrNoRows) {
		return db.missed(ctx, ad.ID, expectedVersion, nil)
	}
	if err != nil {
		return Ad{}, fmt.Errorf("update ad %d: %w", ad.ID, err)
	}
	return a, nil
}

// Patch changes the non-nil fields of p, with the same version rule as Update. An empty
// patch changes nothing and does not bump the version.
func (db *DB) Patch(ctx context.Context, id int64, p AdPatch, expectedVersion int64) (Ad, error) {
	if p.Empty() {
		return db.missed(ctx, id, expectedVersion, func(Ad) bool { return true })
	}
	a, err := scanAd(db.pool.QueryRow(ctx, `UPDATE ads SET name = COALESCE($2, name), image_url = COALESCE($3, image_url),
		video_url = COALESCE($4, video_url), target_url = COALESCE($5, target_url),
		duration_seconds = COALESCE($6, duration_seconds), status = COALESCE($7, status),
		video_mime_type = COALESCE($9, video_mime_type), video_width = COALESCE($10, video_width),
		video_height = COALESCE($11, video_height), video_bitrate_kbps = COALESCE($12, video_bitrate_kbps),
		video_delivery = COALESCE($13, video_delivery), weight = COALESCE($14, weight),
		version = version + 1, updated_at = now()
		WHERE id = $1 AND ($8::bigint = 0 OR version = $8)
		RETURNING `+adColumns,
		id, p.Name, p.ImageURL, p.VideoURL, p.TargetURL, p.DurationSeconds, p.Status, expectedVersion,
		p.VideoMimeType, p.VideoWidth, p.VideoHeight, p.VideoBitrateKbps, p.VideoDelivery, p.Weight))
	if errors.Is(err, pgx.ErrNoRows) {
		return db.missed(ctx, id, expectedVersion, nil)
	}
	if err != nil {
		return Ad{}, fmt.Errorf("patch ad %d: %w", id, err)
	}
	return a, nil
}

// Archive sets the ad's status to archived; rows are never deleted so events keep their ad.
// Archiving an archived ad returns it unchanged (DELETE is idempotent).
func (db *DB) Archive(ctx context.Context, id int64, expectedVersion int64) (Ad, error) {
	a, err := scanAd(db.pool.QueryRow(ctx, `UPDATE ads SET status = 'archived', version = version + 1, updated_at = now()
		WHERE id = $1 AND ($2::bigint = 0 OR version = $2) AND status <> 'archived'
		RETURNING `+adColumns, id, expectedVersion))
	if errors.Is(err, pgx.ErrNoRows) {
		return db.missed(ctx, id, expectedVersion, func(a Ad) bool { return a.Status == StatusArchived })
	}
	if err != nil {
		return Ad{}, fmt.Errorf("archive ad %d: %w", id, err)
	}
	return a, nil
}

// missed explains a conditional UPDATE that matched no row: the ad is gone (ErrNotFound),
// its version moved on (ErrConflict), or — when unchanged says so — there was nothing to do
// and the current row is the answer.
func (db *DB) missed(ctx context.Context, id, expectedVersion int64, unchanged func(Ad) bool) (Ad, error) {
	cur, err := db.Get(ctx, id)
	if err != nil {
		return Ad{}, err
	}
	if expectedVersion != 0 && cur.Version != expectedVersion {
		return Ad{}, ErrConflict
	}
	if unchanged != nil && unchanged(cur) {
		return cur, nil
	}
	// The row matched a moment ago but not when the UPDATE ran: someone else wrote in between.
	return Ad{}, ErrConflict
}

// AllForSnapshot returns every ad, archived included, with the fields the catalogue keeps.
func (db *DB) AllForSnapshot(ctx context.Context) ([]SnapshotRow, error) {
	rows, err := db.pool.Query(ctx, `SELECT id, status, target_url, updated_at, version, name, video_url, duration_seconds,
		video_mime_type, video_width, video_height, video_bitrate_kbps, video_delivery, weight FROM ads`)
	if err != nil {
		return nil, fmt.Errorf("load ad snapshot: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SnapshotRow, error) {
		var s SnapshotRow
		err := r.Scan(&s.ID, &s.Status, &s.TargetURL, &s.UpdatedAt, &s.Version, &s.Name, &s.VideoURL, &s.DurationSeconds,
			&s.VideoMimeType, &s.VideoWidth, &s.VideoHeight, &s.VideoBitrateKbps, &s.VideoDelivery, &s.Weight)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("load ad snapshot: %w", err)
	}
	return out, nil
}

// seedLockKey serialises Seed across processes so two `make run`s cannot both see an empty
// table and insert the demo ads twice.
const seedLockKey int64 = 0x61647473

// DemoAds are the ads Seed inserts into an empty table.
var DemoAds = []Ad{
	{Name: "Demo: Mountain bike launch", ImageURL: "https://example.com/ads/bike.jpg", VideoURL: "https://example.com/ads/bike.mp4",
		TargetURL: "https://example.com/bikes?utm_source=adtracker", DurationSeconds: 30, Status: StatusActive},
	{Name: "Demo: Coffee subscription", ImageURL: "https://example.com/ads/coffee.jpg", VideoURL: "https://example.com/ads/coffee.mp4",
		TargetURL: "https://example.com/coffee?utm_source=adtracker", DurationSeconds: 15, Status: StatusActive},
	{Name: "Demo: City break sale", ImageURL: "https://example.com/ads/travel.jpg", VideoURL: "https://example.com/ads/travel.mp4",
		TargetURL: "https://example.com/travel?utm_source=adtracker", DurationSeconds: 45, Status: StatusActive},
}

// Seed inserts DemoAds when the ads table is empty and returns how many it inserted.
func (db *DB) Seed(ctx context.Context) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", seedLockKey); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM ads)").Scan(&exists); err != nil {
			return err
		}
		if exists {
			return nil
		}
		for _, a := range DemoAds {
			if _, err := tx.Exec(ctx, `INSERT INTO ads (name, image_url, video_url, target_url, duration_seconds, status)
				VALUES ($1, $2, $3, $4, $5, $6)`, a.Name, a.ImageURL, a.VideoURL, a.TargetURL, a.DurationSeconds, a.Status); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("seed demo ads: %w", err)
	}
	return n, nil
}
