package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/adtracker/adtracker/storage/postgres/pgtest"
)

// The MediaFile fields and weight are validated like every other field: 422 naming the field, nothing written.
func TestValidationVASTFields(t *testing.T) {
	a := newAPI(t, &memRepo{}, token)
	body := func(key string, v any) string {
		m := map[string]any{"name": "n", "target_url": "https://example.com/", key: v}
		b, _ := json.Marshal(m)
		return string(b)
	}
	bad := func(key string, v any) {
		t.Helper()
		wantError(t, a.do("POST", "/ads", body(key, v)), 422, key, key)
	}
	good := func(key string, v any) {
		t.Helper()
		if r := a.do("POST", "/ads", body(key, v)); r.status != 201 {
			t.Fatalf("%s = %v: %d %s", key, v, r.status, r.body)
		}
	}
	for _, v := range []any{"", "video", "video/", "/mp4", "video/mp4; codecs=avc1", "video/mp 4", "vid<eo/mp4", "video/.mp4", nil, 5,
		"video/" + strings.Repeat("x", 95)} {
		bad("video_mime_type", v)
	}
	for _, v := range []string{"video/mp4", "video/webm", "application/x-mpegURL", "application/dash+xml", "video/3gpp"} {
		good("video_mime_type", v)
	}
	for _, k := range []string{"video_width", "video_height"} {
		for _, v := range []any{0, -1, 10001, 1.5, "720", nil} {
			bad(k, v)
		}
		good(k, 1)
		good(k, 10000)
	}
	for _, v := range []any{-1, 1000001, "2000", nil} {
		bad("video_bitrate_kbps", v)
	}
	good("video_bitrate_kbps", 0)
	for _, v := range []any{"", "Progressive", "download", nil, 1} {
		bad("video_delivery", v)
	}
	good("video_delivery", "streaming")
	for _, v := range []any{-1, 1000001, "1", nil} {
		bad("weight", v)
	}
	good("weight", 0)
	// PATCH validates the same way.
	wantError(t, a.do("PATCH", "/ads/1", `{"weight":-3}`), 422, "weight", "weight")
}

// Against Postgres: defaults for ads created without the new fields (and for rows from before migration 0003), the fields round-trip
// through POST, PATCH and the snapshot, and the table's CHECKs refuse what the API refuses.
func TestVASTFieldsPostgres(t *testing.T) {
	t.Parallel()
	dsn := pgtest.DSN(t)
	db := openPG(t, dsn)
	a := newAPI(t, db, token)
	plain := a.ad(a.do("POST", "/ads", `{"name":"Plain","target_url":"https://example.com/"}`), 201)
	if plain.VideoMimeType != "video/mp4" || plain.VideoWidth != 1280 || plain.VideoHeight != 720 || plain.VideoBitrateKbps != 0 ||
		plain.VideoDelivery != "progressive" || plain.Weight != 1 {
		t.Fatalf("defaults %+v", plain)
	}
	full := a.ad(a.do("POST", "/ads", `{"name":"HLS","target_url":"https://example.com/","video_url":"https://cdn.example.com/a.m3u8",
		"video_mime_type":"application/x-mpegURL","video_width":1920,"video_height":1080,"video_bitrate_kbps":4500,
		"video_delivery":"streaming","weight":0}`), 201)
	if full.VideoMimeType != "application/x-mpegURL" || full.VideoWidth != 1920 || full.VideoHeight != 1080 ||
		full.VideoBitrateKbps != 4500 || full.VideoDelivery != "streaming" || full.Weight != 0 {
		t.Fatalf("created %+v", full)
	}
	patched := a.ad(a.do("PATCH", fmt.Sprintf("/ads/%d", full.ID), `{"weight":7,"video_width":640}`), 200)
	if patched.Weight != 7 || patched.VideoWidth != 640 || patched.VideoHeight != 1080 || patched.VideoDelivery != "streaming" {
		t.Fatalf("patched %+v", patched)
	}
	rows, err := db.AllForSnapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	snap := NewSnapshot(rows, patched.UpdatedAt)
	e, ok := snap.Lookup(uint64(full.ID))
	if !ok || e.Creative == nil {
		t.Fatal("ad missing from the snapshot")
	}
	c := *e.Creative
	if c.Version != patched.Version || c.Name != "HLS" || c.VideoURL != "https://cdn.example.com/a.m3u8" || c.MimeType != "application/x-mpegURL" ||
		c.Width != 640 || c.Height != 1080 || c.BitrateKbps != 4500 || c.Delivery != "streaming" || c.Weight != 7 || c.DurationSeconds != 30 {
		t.Fatalf("snapshot creative %+v", c)
	}
	// Direct writers meet the same rules.
	for _, stmt := range []string{
		"UPDATE ads SET video_mime_type = 'mp4' WHERE id = $1",
		"UPDATE ads SET video_width = 0 WHERE id = $1",
		"UPDATE ads SET video_height = 10001 WHERE id = $1",
		"UPDATE ads SET video_bitrate_kbps = -1 WHERE id = $1",
		"UPDATE ads SET video_delivery = 'download' WHERE id = $1",
		"UPDATE ads SET weight = -1 WHERE id = $1",
	} {
		if _, err := db.Pool().Exec(context.Background(), stmt, full.ID); err == nil || !strings.Contains(err.Error(), "23514") {
			t.Errorf("%s: %v, want a CHECK violation", stmt, err)
		}
	}
}
