package main

// Shared by the VAST tests that drive adtracker with clients nobody here wrote (vast_client_test.go: the npm VAST client;
// vast_browser_test.go: chromium): the ad they are served, the event ids their pixels must be stored under, what ClickHouse and the
// analytics API then hold.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adtracker/adtracker/ingest/decode"
	"github.com/adtracker/adtracker/ingest/event"
)

const vastAdminToken = "vast-e2e-admin-token"

func vastUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// vastHTTP sends one request and decodes a 2xx JSON answer into out (when not nil); it returns the status and the body.
func vastHTTP(t *testing.T, method, url, token, body string, out any) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, url, err, b)
		}
	}
	return resp.StatusCode, string(b)
}

// vastSeededAds are the ids `adtracker seed` creates.
var vastSeededAds = []int64{1, 2, 3}

// createVASTAd makes the seeded ads ineligible for GET /vast (weight 0), adds an active ad through the admin API and returns its id
// once GET /vast/{id} serves it, so that GET /vast can only draw this ad. The catalogue applies changes in commit order, so once the
// new ad is served the weights are in place too.
func createVASTAd(t *testing.T, s *stack, body string) int64 {
	t.Helper()
	for _, id := range vastSeededAds {
		if code, b := vastHTTP(t, "PATCH", fmt.Sprintf("%s/ads/%d", s.url, id), vastAdminToken, `{"weight":0}`, nil); code != 200 {
			t.Fatalf("PATCH /ads/%d weight 0: %d %s", id, code, b)
		}
	}
	var ad struct {
		ID int64 `json:"id"`
	}
	if code, b := vastHTTP(t, "POST", s.url+"/ads", vastAdminToken, body, &ad); code != 201 || ad.ID == 0 {
		t.Fatalf("POST /ads %s: %d %s", body, code, b)
	}
	want := fmt.Sprintf(`<Ad id="%d">`, ad.ID)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, doc := vastHTTP(t, "GET", fmt.Sprintf("%s/vast/%d", s.url, ad.ID), "", "", nil)
		if code == 200 && strings.Contains(doc, want) {
			return ad.ID
		}
		if time.Now().After(deadline) {
			t.Fatalf("ad %d never reached the catalogue snapshot: GET /vast/%d answers %d %s", ad.ID, ad.ID, code, doc)
		}
	}
}

// servedEvent is what one fired URL must be stored as: its type and the event id adtracker derives from the serve id (sv), the
// type and, for progress, the offset (po) — decode.ServeEventID.
type servedEvent struct {
	Type  string
	Serve string
	ID    string
}

// servedEventOf reads a fired /t/{event} or /c/{id} URL.
func servedEventOf(t *testing.T, raw string) servedEvent {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("fired URL %q: %v", raw, err)
	}
	q := u.Query()
	sv := q.Get("sv")
	if sv == "" {
		t.Fatalf("fired URL %s has no serve id (sv)", raw)
	}
	dir, name := path.Split(u.Path)
	ty := event.TypeClick
	var offMs uint32
	switch dir {
	case "/c/":
	case "/t/":
		ty = event.ParseType([]byte(name))
		if !ty.Valid() {
			t.Fatalf("fired URL %s: /t/%s is not an event type", raw, name)
		}
		if ty == event.TypeProgress {
			sec, err := strconv.ParseFloat(q.Get("po"), 64)
			if err != nil {
				t.Fatalf("progress URL %s: po %q is not seconds", raw, q.Get("po"))
			}
			offMs = uint32(math.Round(sec * 1000))
		}
	default:
		t.Fatalf("fired URL %s is neither a pixel nor the click redirect", raw)
	}
	return servedEvent{Type: ty.String(), Serve: sv, ID: decode.ServeEventID([]byte(sv), ty, offMs).String()}
}

// vastRow is one events row as the VAST tests look at it.
type vastRow struct {
	ID         string
	Type       string
	PlaybackMs uint32
	EventTime  time.Time
	UserAgent  string
	IVT        string // the invalid-traffic reason, "none" for valid traffic (schema 0003)
}

// vastFlushed waits until a sentinel pixel for ad sentinelAd, sent now, is in ClickHouse. Events are stored in the order they were
// accepted (ring, then batches in order) while ClickHouse is up, so once the sentinel is there everything accepted before it has
// been stored or dropped as a duplicate: counts read afterwards are final, without guessing a delay. "There" means the events
// table and both rollups the tests read: an insert's events part is visible before its views have written theirs, so a test that
// saw the sentinel in events alone could read a rollup one insert short (it did, once, in a loaded make test).
func (s *stack) vastFlushed(t *testing.T, sentinelAd int64) {
	t.Helper()
	c := s.conn()
	// Every stored event of the ad as each rollup counts it (events_total counts invalid traffic too).
	rolled := func() (minute, hour uint64, err error) {
		const q = "SELECT sum(events_total) FROM %s WHERE ad_id = ?"
		if err = c.QueryRow(context.Background(), fmt.Sprintf(q, "ad_stats_minute"), uint64(sentinelAd)).Scan(&minute); err != nil {
			return
		}
		err = c.QueryRow(context.Background(), fmt.Sprintf(q, "ad_stats_hour"), uint64(sentinelAd)).Scan(&hour)
		return
	}
	m0, h0, err := rolled()
	if err != nil {
		t.Fatal(err)
	}
	vid := "sentinel-" + vastUUID()[:8]
	if code, b := vastHTTP(t, "GET", fmt.Sprintf("%s/t/pause?ad_id=%d&vid=%s", s.url, sentinelAd, vid), "", "", nil); code != 200 {
		t.Fatalf("sentinel pixel: %d %s", code, b)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var n uint64
		if err := c.QueryRow(context.Background(), "SELECT count() FROM events WHERE viewer_id = ?", vid).Scan(&n); err == nil && n == 1 {
			if m, h, err := rolled(); err == nil && m == m0+1 && h == h0+1 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the sentinel pixel never reached ClickHouse and both rollups")
		}
	}
}

// vastAdRows returns every event stored for the ad, by event id (several rows under one id are a duplicate).
func (s *stack) vastAdRows(t *testing.T, adID int64) map[string][]vastRow {
	t.Helper()
	rs, err := s.conn().Query(context.Background(),
		"SELECT toString(event_id), toString(type), playback_ms, event_time, user_agent, toString(ivt) FROM events WHERE ad_id = ?", uint64(adID))
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	out := map[string][]vastRow{}
	for rs.Next() {
		var r vastRow
		if err := rs.Scan(&r.ID, &r.Type, &r.PlaybackMs, &r.EventTime, &r.UserAgent, &r.IVT); err != nil {
			t.Fatal(err)
		}
		out[r.ID] = append(out[r.ID], r)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// vastAnalytics is GET /ads/analytics?ad_id=&fields=all over the default window (the current hour and the day before it): the
// numeric figures by name.
func vastAnalytics(t *testing.T, s *stack, adID int64) map[string]float64 {
	t.Helper()
	var raw map[string]any
	if code, b := vastHTTP(t, "GET", fmt.Sprintf("%s/ads/analytics?ad_id=%d&fields=all", s.url, adID), "", "", &raw); code != 200 {
		t.Fatalf("analytics for ad %d: %d %s", adID, code, b)
	}
	out := map[string]float64{}
	for k, v := range raw {
		if f, ok := v.(float64); ok {
			out[k] = f
		}
	}
	return out
}
