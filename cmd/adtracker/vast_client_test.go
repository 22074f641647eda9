package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adtracker/adtracker/internal/testenv"
)

// EnvRequireVASTClient makes a missing node or npm @dailymotion/vast-client a failure instead of a skip (make test sets it, after
// scripts/vast-client/install.sh has installed the client).
const EnvRequireVASTClient = "ADTRACKER_REQUIRE_VAST_CLIENT"

// vastClientRun is what scripts/vast-client/drive.js reports.
type vastClientRun struct {
	Scenarios []vastScenario `json:"scenarios"`
}

type vastScenario struct {
	Name          string          `json:"name"`
	Empty         bool            `json:"empty"`
	AdID          string          `json:"ad_id"`
	AdServingID   string          `json:"ad_serving_id"`
	Duration      float64         `json:"duration"`
	ClickThrough  string          `json:"click_through"`
	Tracking      []string        `json:"tracking_events"`
	Fired         []firedURL      `json:"fired"`
	Refired       []firedURL      `json:"refired"`
	TrackerErrors []string        `json:"tracker_errors"`
	Opened        *openedURL      `json:"clickthrough"`
	MediaFiles    []vastMediaFile `json:"media_files"`
	// The Content-Encoding of the VAST answers the library fetched (its fetch asks for gzip, as browsers do).
	VASTEncodings []string `json:"vast_content_encodings"`
}

type firedURL struct {
	Action string `json:"action"`
	URL    string `json:"url"`
	Status int    `json:"status"`
	Error  string `json:"error"`
}

type openedURL struct {
	URL      string `json:"url"`
	Status   int    `json:"status"`
	Location string `json:"location"`
}

type vastMediaFile struct {
	URL      string `json:"url"`
	MIMEType string `json:"mime_type"`
}

// driveVASTClient runs the real VAST client against vastURL through the given scenarios (scripts/vast-client/drive.js).
func driveVASTClient(t *testing.T, vastURL string, scenarios ...string) vastClientRun {
	t.Helper()
	root := testenv.RepoRoot(t)
	missing := ""
	node, err := exec.LookPath("node")
	if err != nil {
		missing = "node is not installed"
	} else if _, err := os.Stat(filepath.Join(root, ".tools", "vast-client", "node_modules", "@dailymotion", "vast-client", "package.json")); err != nil {
		missing = "npm @dailymotion/vast-client is not installed in .tools/vast-client"
	}
	if missing != "" {
		if os.Getenv(EnvRequireVASTClient) != "" {
			t.Fatalf("%s and %s is set: run scripts/vast-client/install.sh (make test runs it)", missing, EnvRequireVASTClient)
		}
		t.Skipf("%s: run scripts/vast-client/install.sh, or make test (it installs it); set %s to fail instead", missing, EnvRequireVASTClient)
	}
	cmd := exec.Command(node, append([]string{filepath.Join(root, "scripts", "vast-client", "drive.js"), vastURL}, scenarios...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("drive.js: %v\n%s", err, stderr.String())
	}
	var run vastClientRun
	if err := json.Unmarshal(out, &run); err != nil {
		t.Fatalf("drive.js output: %v\n%s", err, out)
	}
	// Every URL the library fired, for the log: what a reader of a failure needs first.
	for _, sc := range run.Scenarios {
		for _, f := range sc.Fired {
			t.Logf("%s %-18s %d %s", sc.Name, f.Action, f.Status, f.URL)
		}
	}
	return run
}

// vastClientTotals is how many serves fire each event type in the scenarios TestVASTClientDrivesPixels plays (full, closed, unused
// and error through GET /vast/{id}, skip through GET /vast): what the client must have fired, so an empty run cannot pass.
var vastClientTotals = map[string]int{
	"impression": 3, "creative_view": 3, "start": 3, "first_quartile": 2, "midpoint": 1, "third_quartile": 1, "complete": 1,
	"click": 1, "skip": 1, "pause": 1, "resume": 1, "mute": 1, "unmute": 1, "error": 1, "loaded": 1, "progress": 1,
	"viewable": 1, "not_viewable": 1, "view_undetermined": 1, "close_linear": 2, "rewind": 1, "fullscreen": 1,
	"exit_fullscreen": 1, "player_expand": 1, "player_collapse": 1, "other_ad_interaction": 1, "not_used": 1,
}

// The real web VAST client (npm @dailymotion/vast-client 6.4.x: VASTClient fetches and parses, VASTTracker fires) plays five
// serves of adtracker's own VAST — GET /vast/{id}: one watched to the end with every player interaction VASTTracker has, one closed,
// one not used, one failing with an error; GET /vast: one skipped — and then fires every pixel of each serve again. Every pixel is
// answered 2xx, each event is stored once per serve under the id derived from the serve id, firing again (by the library with new
// macros, by repeating the exact URLs as a network retry does, by a second click) stores nothing, and the analytics equal what was
// fired.
func TestVASTClientDrivesPixels(t *testing.T) {
	s := newStack(t, "ADTRACKER_ADMIN_TOKEN="+vastAdminToken)
	s.start()
	const target = "https://advertiser.example.com/landing?c=vast-client"
	const media = "https://cdn.example.com/spot.mp4"
	adID := createVASTAd(t, s, fmt.Sprintf(`{"name":"VAST client spot","target_url":%q,"video_url":%q,"duration_seconds":4}`, target, media))
	scenarios := driveVASTClient(t, fmt.Sprintf("%s/vast/%d", s.url, adID), "full", "closed", "unused", "error").Scenarios
	scenarios = append(scenarios, driveVASTClient(t, s.url+"/vast", "skip").Scenarios...)
	if len(scenarios) != 5 {
		t.Fatalf("%d scenarios reported, want 5", len(scenarios))
	}

	want := map[string]servedEvent{} // event id → what it is
	total := map[string]int{}        // type → serves that fired it
	var repeat []string              // every URL, to fire once more
	for _, sc := range scenarios {
		if sc.Empty || sc.AdID != strconv.FormatInt(adID, 10) || sc.AdServingID == "" {
			t.Fatalf("%s: the client read ad %q, serve %q (empty VAST: %v), want ad %d with an AdServingId", sc.Name, sc.AdID, sc.AdServingID, sc.Empty, adID)
		}
		if len(sc.TrackerErrors) > 0 {
			t.Errorf("%s: the tracker reported errors: %v", sc.Name, sc.TrackerErrors)
		}
		// http.compress (on by default): the tag travelled gzipped, and the library parsed it all the same.
		if len(sc.VASTEncodings) != 1 || sc.VASTEncodings[0] != "gzip" {
			t.Errorf("%s: the VAST answers came with Content-Encoding %v, want one gzip", sc.Name, sc.VASTEncodings)
		}
		if sc.Duration != 4 {
			t.Errorf("%s: the client read a duration of %v s, want 4", sc.Name, sc.Duration)
		}
		if len(sc.MediaFiles) != 1 || sc.MediaFiles[0].URL != media || sc.MediaFiles[0].MIMEType != "video/mp4" {
			t.Errorf("%s: the client read MediaFiles %+v, want %s as video/mp4", sc.Name, sc.MediaFiles, media)
		}
		for _, list := range [][]firedURL{sc.Fired, sc.Refired} {
			for _, f := range list {
				if f.Status/100 != 2 || f.Error != "" {
					t.Errorf("%s %s: %s answered %d %s", sc.Name, f.Action, f.URL, f.Status, f.Error)
				}
			}
		}
		fired := map[string]bool{}
		for _, f := range sc.Fired {
			ev := servedEventOf(t, f.URL)
			if ev.Serve != sc.AdServingID {
				t.Errorf("%s: %s carries serve id %s, the VAST's AdServingId is %s", sc.Name, f.URL, ev.Serve, sc.AdServingID)
			}
			if !fired[ev.ID] {
				fired[ev.ID] = true
				total[ev.Type]++
			}
			want[ev.ID] = ev
			repeat = append(repeat, f.URL)
		}
		for _, f := range sc.Refired {
			if ev := servedEventOf(t, f.URL); !fired[ev.ID] {
				t.Errorf("%s: the second play fired %s (%s), which the first did not", sc.Name, f.URL, ev.Type)
			}
		}
		if o := sc.Opened; o != nil {
			if o.Status != 302 || o.Location != target {
				t.Errorf("%s: opening the ClickThrough %s answered %d to %q, want 302 to the ad's target %q", sc.Name, o.URL, o.Status, o.Location, target)
			}
			ev := servedEventOf(t, o.URL)
			if ev.Type != "click" || ev.Serve != sc.AdServingID {
				t.Errorf("%s: the ClickThrough %s is not this serve's click redirect", sc.Name, o.URL)
			}
			want[ev.ID] = ev
			total[ev.Type]++
			repeat = append(repeat, o.URL) // the viewer clicks again
		}
	}
	if fmt.Sprint(total) != fmt.Sprint(vastClientTotals) {
		t.Errorf("serves per fired event type:\n got  %v\n want %v", total, vastClientTotals)
	}

	// A network retry repeats a URL exactly, and a viewer may click twice: fire every one once more.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, u := range repeat {
		resp, err := noRedirect.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 && resp.StatusCode != 302 {
			t.Errorf("repeating %s: %d", u, resp.StatusCode)
		}
	}
	s.vastFlushed(t, vastSeededAds[0])

	rows := s.vastAdRows(t, adID)
	for id, ev := range want {
		got := rows[id]
		if len(got) != 1 || got[0].Type != ev.Type {
			t.Errorf("serve %s %s (event id %s): stored %d rows %+v, want one", ev.Serve, ev.Type, id, len(got), got)
			continue
		}
		r := got[0]
		if r.Type != "click" && !strings.Contains(r.UserAgent, "adtracker-vast-client-check") {
			t.Errorf("serve %s %s: stored with user agent %q, not the client's", ev.Serve, r.Type, r.UserAgent)
		}
		if r.IVT != "none" {
			t.Errorf("serve %s %s: stored as invalid traffic (%s); the client is a browser's player", ev.Serve, r.Type, r.IVT)
		}
		if d := time.Since(r.EventTime); d < -time.Minute || d > 10*time.Minute {
			t.Errorf("serve %s %s: stored at %v, not the [TIMESTAMP] the client sent", ev.Serve, r.Type, r.EventTime)
		}
		if r.Type == "progress" && r.PlaybackMs != 2000 {
			t.Errorf("serve %s: progress stored at %d ms, want its offset, 2000", ev.Serve, r.PlaybackMs)
		}
	}
	for id, got := range rows {
		if _, ok := want[id]; !ok {
			t.Errorf("stored %+v, which no fired URL is", got)
		}
	}

	// The hourly rollup counts every stored event once (events_total) and the viewability the client measured (valid traffic).
	var all, viewables, notViewables, undetermined, invalid uint64
	if err := s.conn().QueryRow(context.Background(), `SELECT sum(events_total), sum(viewables), sum(not_viewables),
		sum(view_undetermined), sum(invalid_events) FROM ad_stats_hour WHERE ad_id = ?`, uint64(adID)).
		Scan(&all, &viewables, &notViewables, &undetermined, &invalid); err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(all, viewables, notViewables, undetermined, invalid), fmt.Sprint(len(want), total["viewable"],
		total["not_viewable"], total["view_undetermined"], 0); got != want {
		t.Errorf("ad_stats_hour events_total, viewables, not_viewables, view_undetermined, invalid_events = %s, want %s", got, want)
	}

	// The analytics count each serve's events once.
	got := vastAnalytics(t, s, adID)
	for field, ty := range map[string]string{"impressions": "impression", "clicks": "click", "starts": "start", "first_quartile": "first_quartile",
		"midpoint": "midpoint", "third_quartile": "third_quartile", "completes": "complete"} {
		if got[field] != float64(total[ty]) {
			t.Errorf("analytics %s = %v, the client fired %d", field, got[field], total[ty])
		}
	}
	measurable := total["viewable"] + total["not_viewable"]
	for field, v := range map[string]float64{"viewable_impressions": float64(total["viewable"]), "measurable_impressions": float64(measurable),
		"viewability_rate": float64(total["viewable"]) / float64(measurable), "invalid_impressions": 0, "invalid_clicks": 0, "ivt_rate": 0} {
		if g, ok := got[field]; !ok || g != v {
			t.Errorf("analytics %s = %v (present: %v), want %v from what the client fired", field, g, ok, v)
		}
	}
}
