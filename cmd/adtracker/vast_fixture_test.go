package main

// Shared by the VAST tests that drive adtracker with clients nobody here wrote (vast_client_test.go: the npm VAST client;
// vast_browser_test.go: chromium): a VAST source, the ad they play, and what ClickHouse and the analytics API then hold.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const vastAdminToken = "vast-e2e-admin-token"

// vastFixture serves a VAST 4 InLine document built by the test, standing in for GET /vast/{id} until that endpoint exists: every
// GET is a new serve with a fresh serve id, carried as vid on every URL (so a serve's rows are found by viewer_id) and a fresh eid
// per tracking URL (so a re-fired pixel of one serve is stored once, as the eid contract in docs/vast.md promises). The tracking
// URLs are adtracker's own /t/{event} pixels and the ClickThrough is its /c/{id} redirect. Browsers may fetch it cross-origin with
// credentials, as /vast must allow.
type vastFixture struct {
	srv      *httptest.Server
	tracker  string // adtracker's base URL
	adID     int64
	mediaURL string
	mu       sync.Mutex
	serves   []string
}

// vastCoreEvents are the Linear TrackingEvents the fixture writes: the VAST names of the core event types ClickHouse stores today
// (impression, error and click have their own elements).
var vastCoreEvents = []string{"start", "firstQuartile", "midpoint", "thirdQuartile", "complete", "skip", "pause", "resume", "mute", "unmute"}

func newVASTFixture(t *testing.T, tracker string, adID int64, mediaURL string) *vastFixture {
	t.Helper()
	f := &vastFixture{tracker: tracker, adID: adID, mediaURL: mediaURL}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *vastFixture) url() string { return f.srv.URL + "/vast.xml" }

func (f *vastFixture) serve(w http.ResponseWriter, r *http.Request) {
	if origin := r.Header.Get("Origin"); origin != "" {
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Set("Access-Control-Allow-Credentials", "true")
		w.Header().Set("Vary", "Origin")
	}
	w.Header().Set("Cache-Control", "no-store")
	serve := newUUID()
	f.mu.Lock()
	f.serves = append(f.serves, serve)
	f.mu.Unlock()
	pixel := func(event string, playhead bool) string {
		u := fmt.Sprintf("%s/t/%s?ad_id=%d&vid=%s&eid=%s&t=[TIMESTAMP]", f.tracker, event, f.adID, serve, newUUID())
		if playhead {
			u += "&pt=[ADPLAYHEAD]"
		}
		return u + "&cb=[CACHEBUSTING]"
	}
	var tracking strings.Builder
	for _, ev := range vastCoreEvents {
		fmt.Fprintf(&tracking, "\n            <Tracking event=%q><![CDATA[%s]]></Tracking>", ev, pixel(ev, true))
	}
	w.Header().Set("Content-Type", "application/xml")
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<VAST version="4.2">
  <Ad id="%d">
    <InLine>
      <AdSystem>adtracker-test-fixture</AdSystem>
      <AdTitle>fixture</AdTitle>
      <AdServingId>%s</AdServingId>
      <Impression id="adtracker"><![CDATA[%s]]></Impression>
      <Error><![CDATA[%s&code=[ERRORCODE]]]></Error>
      <Creatives>
        <Creative id="%d">
          <Linear>
            <Duration>00:00:04.000</Duration>
            <TrackingEvents>%s
            </TrackingEvents>
            <VideoClicks>
              <ClickThrough><![CDATA[%s/c/%d?vid=%s]]></ClickThrough>
            </VideoClicks>
            <MediaFiles>
              <MediaFile delivery="progressive" type="video/webm" width="320" height="240"><![CDATA[%s]]></MediaFile>
            </MediaFiles>
          </Linear>
        </Creative>
      </Creatives>
    </InLine>
  </Ad>
</VAST>
`, f.adID, serve, pixel("impression", false), pixel("error", false), f.adID, tracking.String(), f.tracker, f.adID, serve, f.mediaURL)
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// httpDo sends one request to adtracker and decodes a JSON answer into out (when not nil); it returns the status.
func httpDo(t *testing.T, method, url, token, body string, out any) int {
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
	return resp.StatusCode
}

// createAd adds an active ad through the admin API and returns its id once the catalogue snapshot knows it. Knowing it is seen
// through the click redirect of a probe viewer (the only read of the snapshot without a side effect elsewhere is the serve itself,
// which does not exist yet): that stores one click with viewer_id 'catalogue-probe', which the callers leave out of their counts.
func createAd(t *testing.T, s *stack, body string) int64 {
	t.Helper()
	var ad struct {
		ID int64 `json:"id"`
	}
	if code := httpDo(t, "POST", s.url+"/ads", vastAdminToken, body, &ad); code != 201 || ad.ID == 0 {
		t.Fatalf("POST /ads %s: %d", body, code)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := client.Get(fmt.Sprintf("%s/c/%d?vid=catalogue-probe", s.url, ad.ID))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusFound {
			return ad.ID
		}
		if time.Now().After(deadline) {
			t.Fatalf("ad %d never reached the catalogue snapshot: /c/%d answers %d", ad.ID, ad.ID, resp.StatusCode)
		}
	}
}

// storedRow is one events row as the VAST tests look at it.
type storedRow struct {
	Type       string
	ViewerID   string
	PlaybackMs uint32
	EventTime  time.Time
	UserAgent  string
}

// flushed waits until a sentinel pixel sent now is in ClickHouse. Events are stored in the order they were accepted (ring, then
// batches in order) while ClickHouse is up, so once the sentinel is there, everything accepted before it has been stored or
// dropped as a duplicate: counts read afterwards are final, without guessing a delay.
func (s *stack) flushed(t *testing.T, adID int64) {
	t.Helper()
	vid := "sentinel-" + newUUID()[:8]
	if code := httpDo(t, "GET", fmt.Sprintf("%s/t/pause?ad_id=%d&vid=%s", s.url, adID, vid), "", "", nil); code != 200 {
		t.Fatalf("sentinel pixel: %d", code)
	}
	c := s.conn()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var n uint64
		if err := c.QueryRow(context.Background(), "SELECT count() FROM events WHERE viewer_id = ?", vid).Scan(&n); err == nil && n == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the sentinel pixel never reached ClickHouse")
		}
	}
}

// rows returns the events stored for one viewer id (a serve, for the fixture), in stored time and playback order.
func (s *stack) rows(t *testing.T, viewer string) []storedRow {
	t.Helper()
	rs, err := s.conn().Query(context.Background(),
		"SELECT toString(type), viewer_id, playback_ms, event_time, user_agent FROM events WHERE viewer_id = ? ORDER BY event_time, playback_ms, type", viewer)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []storedRow
	for rs.Next() {
		var r storedRow
		if err := rs.Scan(&r.Type, &r.ViewerID, &r.PlaybackMs, &r.EventTime, &r.UserAgent); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// typeCounts counts rows by type.
func typeCounts(rows []storedRow) map[string]int {
	m := map[string]int{}
	for _, r := range rows {
		m[r.Type]++
	}
	return m
}

// adAnalytics is GET /ads/analytics?ad_id= over the default window (the current hour and the day before it).
func adAnalytics(t *testing.T, s *stack, adID int64) map[string]float64 {
	t.Helper()
	var out map[string]float64
	var raw map[string]any
	if code := httpDo(t, "GET", fmt.Sprintf("%s/ads/analytics?ad_id=%d&fields=all", s.url, adID), "", "", &raw); code != 200 {
		t.Fatalf("analytics for ad %d: %d", adID, code)
	}
	out = map[string]float64{}
	for k, v := range raw {
		if f, ok := v.(float64); ok {
			out[k] = f
		}
	}
	return out
}
