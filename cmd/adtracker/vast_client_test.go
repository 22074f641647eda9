package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adtracker/adtracker/ingest/event"
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
	Name          string      `json:"name"`
	Empty         bool        `json:"empty"`
	AdID          string      `json:"ad_id"`
	AdServingID   string      `json:"ad_serving_id"`
	Duration      float64     `json:"duration"`
	ClickThrough  string      `json:"click_through"`
	Tracking      []string    `json:"tracking_events"`
	Fired         []firedURL  `json:"fired"`
	Refired       []firedURL  `json:"refired"`
	TrackerErrors []string    `json:"tracker_errors"`
	Opened        *openedURL  `json:"clickthrough"`
	MediaFiles    []mediaFile `json:"media_files"`
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

type mediaFile struct {
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

// pixelType is the stored type name a fired URL /t/{event} means ("" for other URLs).
func pixelType(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("fired URL %q: %v", raw, err)
	}
	dir, name := path.Split(u.Path)
	if dir != "/t/" {
		return ""
	}
	ty := event.ParseType([]byte(name))
	if !ty.Valid() {
		t.Fatalf("fired URL %q: /t/%s is not an event type", raw, name)
	}
	return ty.String()
}

// The real web VAST client (npm @dailymotion/vast-client 6.4.x: VASTClient parses, VASTTracker fires) plays three serves — one
// watched to the end with pause/resume, mute/unmute and a click, one skipped, one that fails with an error — and fires every
// pixel again on the same serves. Every pixel is answered 2xx, each is stored once per serve, re-firing (by the library again,
// and by repeating the exact URLs as a network retry does) stores nothing, and the analytics equal what was fired.
func TestVASTClientDrivesPixels(t *testing.T) {
	s := newStack(t, "ADTRACKER_ADMIN_TOKEN="+vastAdminToken)
	s.start()
	const adID = 1 // a seeded ad: nothing else sends it events here
	var ad struct {
		TargetURL string `json:"target_url"`
	}
	if code := httpDo(t, "GET", fmt.Sprintf("%s/ads/%d", s.url, adID), "", "", &ad); code != 200 || ad.TargetURL == "" {
		t.Fatalf("GET /ads/%d: %d %+v", adID, code, ad)
	}
	fx := newVASTFixture(t, s.url, adID, "http://127.0.0.1:1/ad.webm")
	run := driveVASTClient(t, fx.url(), "full", "skip", "error")
	if len(run.Scenarios) != 3 {
		t.Fatalf("%d scenarios reported, want 3", len(run.Scenarios))
	}

	// What was fired, per serve and in all; everything answered 2xx.
	want := map[string]map[string]int{} // serve → stored type → count
	total := map[string]int{}
	serves := map[string]bool{}
	for _, sc := range run.Scenarios {
		if sc.Empty || sc.AdServingID == "" {
			t.Fatalf("%s: the client found no ad or no AdServingId in the VAST", sc.Name)
		}
		if serves[sc.AdServingID] {
			t.Fatalf("%s: serve id %s was already used by another serve", sc.Name, sc.AdServingID)
		}
		serves[sc.AdServingID] = true
		if len(sc.TrackerErrors) > 0 {
			t.Errorf("%s: the tracker reported errors: %v", sc.Name, sc.TrackerErrors)
		}
		if sc.Duration != 4 {
			t.Errorf("%s: the client read a duration of %v s, want 4", sc.Name, sc.Duration)
		}
		want[sc.AdServingID] = map[string]int{}
		for _, list := range [][]firedURL{sc.Fired, sc.Refired} {
			for _, f := range list {
				if f.Status/100 != 2 || f.Error != "" {
					t.Errorf("%s %s: %s answered %d %s", sc.Name, f.Action, f.URL, f.Status, f.Error)
				}
			}
		}
		for _, f := range sc.Fired {
			ty := pixelType(t, f.URL)
			if ty == "" {
				t.Errorf("%s %s fired %s, which is not one of adtracker's pixels", sc.Name, f.Action, f.URL)
				continue
			}
			if want[sc.AdServingID][ty] == 0 {
				total[ty]++
			}
			want[sc.AdServingID][ty] = 1 // once per serve, however often it fired
		}
		if len(sc.Refired) != len(sc.Fired) {
			t.Errorf("%s: the second play fired %d URLs, the first %d", sc.Name, len(sc.Refired), len(sc.Fired))
		}
		if sc.Opened != nil {
			if sc.Opened.Status != 302 || sc.Opened.Location != ad.TargetURL {
				t.Errorf("%s: opening the ClickThrough %s answered %d to %q, want 302 to the ad's target %q", sc.Name, sc.Opened.URL, sc.Opened.Status, sc.Opened.Location, ad.TargetURL)
			}
			want[sc.AdServingID]["click"]++
			total["click"]++
		}
	}
	// The scenarios must have fired what they are about, or an empty run would pass.
	for ty, n := range map[string]int{"impression": 2, "start": 2, "first_quartile": 2, "midpoint": 1, "third_quartile": 1, "complete": 1,
		"pause": 1, "resume": 1, "mute": 1, "unmute": 1, "skip": 1, "error": 1, "click": 1} {
		if total[ty] != n {
			t.Errorf("the client fired %s on %d serves, want %d (fired: %v)", ty, total[ty], n, total)
		}
	}

	// A network retry repeats a URL exactly: fire every one once more.
	for _, sc := range run.Scenarios {
		for _, f := range sc.Fired {
			if code := httpDo(t, "GET", f.URL, "", "", nil); code/100 != 2 {
				t.Errorf("repeating %s: %d", f.URL, code)
			}
		}
	}
	s.flushed(t, 2)

	for serve, types := range want {
		rows := s.rows(t, serve)
		got := typeCounts(rows)
		if fmt.Sprint(got) != fmt.Sprint(types) {
			t.Errorf("serve %s: stored %v, want each fired event once: %v", serve, got, types)
		}
		for _, r := range rows {
			if !strings.Contains(r.UserAgent, "adtracker-vast-client-check") {
				t.Errorf("serve %s: %s stored with user agent %q, not the client's", serve, r.Type, r.UserAgent)
			}
			if d := time.Since(r.EventTime); d < -time.Minute || d > 10*time.Minute {
				t.Errorf("serve %s: %s stored at %v, not the [TIMESTAMP] the client sent", serve, r.Type, r.EventTime)
			}
		}
	}

	// The analytics count every serve's events once.
	got := adAnalytics(t, s, adID)
	for field, ty := range map[string]string{"impressions": "impression", "clicks": "click", "starts": "start", "first_quartile": "first_quartile",
		"midpoint": "midpoint", "third_quartile": "third_quartile", "completes": "complete"} {
		if got[field] != float64(total[ty]) {
			t.Errorf("analytics %s = %v, the client fired %d", field, got[field], total[ty])
		}
	}
}
