package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/adtracker/adtracker/internal/geotest"
)

const (
	e2eIPhone  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
	e2eChrome  = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
	e2eGoogleb = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
)

// ivtSeed sends the seeded run of issue 18 to a stack: valid traffic, and a bot, a prefetch, a deny-listed address, a deny-listed
// user agent and repeated clicks, each through the real HTTP handlers. It returns the (type, ivt, device_type, os, browser,
// country) rows ClickHouse must hold for ad 1, as "type ivt device os browser country × count" lines.
func ivtSeed(t *testing.T, url string) []string {
	t.Helper()
	send := func(method, path, body string, hdr ...string) {
		t.Helper()
		req, err := http.NewRequest(method, url+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 && resp.StatusCode != http.StatusFound {
			t.Fatalf("%s %s %s: %d", method, path, body, resp.StatusCode)
		}
	}
	ua := func(s string) []string { return []string{"User-Agent", s, "Content-Type", "application/json"} }
	for i := 0; i < 3; i++ { // valid impressions from New Zealand
		send("POST", "/ads/impression", fmt.Sprintf(`{"ad_id":1,"ip":"203.0.113.%d","viewer_id":"nz-%d"}`, 10+i, i), ua(e2eIPhone)...)
	}
	send("POST", "/ads/impression", `{"ad_id":1,"ip":"192.0.2.44"}`, ua(e2eChrome)...)                                              // valid, US desktop
	send("POST", "/ads/impression", `{"ad_id":1,"ip":"203.0.113.50"}`, ua(e2eGoogleb)...)                                           // crawler
	send("GET", "/t/impression?ad_id=1&vid=pre-1", "", "User-Agent", e2eChrome, "Sec-Purpose", "prefetch;prerender")                // prefetch (peer 127.0.0.1)
	send("POST", "/ads/impression", `{"ad_id":1,"ip":"198.51.100.7"}`, ua(e2eIPhone)...)                                            // deny_ip
	send("POST", "/ads/impression", `{"ad_id":1,"ip":"203.0.113.51","user_agent":"BadPlayer/2.1 `+e2eChrome+`"}`, ua(e2eIPhone)...) // deny_user_agent
	// Clicks: viewer nz-0 clicks three times by three routes, nz-1 once; the first of each counts.
	send("POST", "/ads/click", `{"ad_id":1,"ip":"203.0.113.10","viewer_id":"nz-0"}`, ua(e2eIPhone)...)
	send("GET", "/c/1?vid=nz-0", "", "User-Agent", e2eIPhone)
	send("GET", "/t/click?ad_id=1&vid=nz-0", "", "User-Agent", e2eIPhone)
	send("POST", "/ads/click", `{"ad_id":1,"ip":"203.0.113.11","viewer_id":"nz-1"}`, ua(e2eIPhone)...)
	return []string{
		"click duplicate_click mobile iOS Safari  × 2", // /c/ and /t/ from 127.0.0.1: no country
		"click none mobile iOS Safari NZ × 2",
		"impression crawler other   NZ × 1",
		"impression deny_ip mobile iOS Safari DE × 1",
		"impression deny_user_agent other   NZ × 1", // the parser places no user agent that starts with an unknown product
		"impression none desktop Windows Chrome US × 1",
		"impression none mobile iOS Safari NZ × 3",
		"impression prefetch desktop Windows Chrome  × 1",
	}
}

// TestInvalidTrafficStored is the seeded run against the real binary, Postgres and ClickHouse: every flagged event is stored
// with its reason and its enrichment columns, beside the valid ones.
func TestInvalidTrafficStored(t *testing.T) {
	mmdb := geotest.Countries(t, map[string]string{"203.0.113.0/24": "NZ", "192.0.2.0/24": "US", "198.51.100.0/24": "DE"})
	s := newStack(t, "ADTRACKER_GEO_MMDB_PATH="+mmdb, "ADTRACKER_IVT_DENY_CIDRS=198.51.100.0/25",
		"ADTRACKER_IVT_DENY_USER_AGENTS=badplayer/", "ADTRACKER_IVT_CLICK_WINDOW=1h")
	s.start()
	want := ivtSeed(t, s.url)
	var got []string
	c := s.conn()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got = got[:0]
		rows, err := c.Query(context.Background(), `SELECT toString(type), toString(ivt), device_type, os, browser, country, count()
			FROM events WHERE ad_id = 1 GROUP BY type, ivt, device_type, os, browser, country
			ORDER BY toString(type), toString(ivt), device_type, country`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var typ, ivt, dev, os, br, country string
			var n uint64
			if err := rows.Scan(&typ, &ivt, &dev, &os, &br, &country, &n); err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%s %s %s %s %s %s × %d", typ, ivt, dev, os, br, country, n))
		}
		rows.Close()
		if strings.Join(got, "\n") == strings.Join(want, "\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stored rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The analytics leave them out of impressions, clicks and CTR and report them as invalid. Polled: a reader can see an insert's
	// events part before the views' parts of the same insert.
	type figures struct {
		Impressions        uint64  `json:"impressions"`
		Clicks             uint64  `json:"clicks"`
		CTR                float64 `json:"ctr"`
		InvalidImpressions uint64  `json:"invalid_impressions"`
		InvalidClicks      uint64  `json:"invalid_clicks"`
		IVTRate            float64 `json:"ivt_rate"`
	}
	wantFig := figures{Impressions: 4, Clicks: 2, CTR: 0.5, InvalidImpressions: 4, InvalidClicks: 2, IVTRate: 0.5}
	eventually(t, func() string {
		var a figures
		getJSON(t, s.url+"/ads/analytics?ad_id=1&fields=all", &a)
		if a == wantFig {
			return ""
		}
		return fmt.Sprintf("analytics %+v, want %+v", a, wantFig)
	})
	// Breakdowns: valid traffic by country and device, every event by reason; the values add up to the totals.
	type counts struct {
		Value       string `json:"value"`
		Impressions uint64 `json:"impressions"`
		Clicks      uint64 `json:"clicks"`
	}
	for by, want := range map[string]string{
		"country":     "NZ 3/2, US 1/0",
		"device_type": "desktop 1/0, mobile 3/2",
		"ivt":         "crawler 1/0, deny_ip 1/0, deny_user_agent 1/0, duplicate_click 0/2, none 4/2, prefetch 1/0",
	} {
		eventually(t, func() string {
			var bd struct {
				Totals counts   `json:"totals"`
				Values []counts `json:"values"`
			}
			getJSON(t, s.url+"/ads/1/breakdown?by="+by, &bd)
			var parts []string
			var impr, clicks uint64
			for _, v := range bd.Values {
				parts = append(parts, fmt.Sprintf("%s %d/%d", v.Value, v.Impressions, v.Clicks))
				impr, clicks = impr+v.Impressions, clicks+v.Clicks
			}
			sort.Strings(parts)
			if got := strings.Join(parts, ", "); got != want || impr != bd.Totals.Impressions || clicks != bd.Totals.Clicks {
				return fmt.Sprintf("breakdown by %s: %s (sums %d/%d, totals %d/%d); want %s", by, got, impr, clicks,
					bd.Totals.Impressions, bd.Totals.Clicks, want)
			}
			return ""
		})
	}
}

// eventually retries check (which returns "" when satisfied) for up to 30 s and fails with its last complaint.
func eventually(t *testing.T, check func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, body)
	}
}

// A bad deny list or country database stops serve before it opens anything, with one log line naming the setting.
func TestInvalidTrafficConfigStopsServe(t *testing.T) {
	bin := adtrackerBin(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.mmdb")
	if err := os.WriteFile(bad, []byte("not a database"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ env, want string }{
		{"ADTRACKER_IVT_DENY_CIDRS=10.0.0.0/8,not-a-net", `ivt.deny_cidrs: \"not-a-net\"`},
		{"ADTRACKER_GEO_MMDB_PATH=" + filepath.Join(dir, "missing.mmdb"), "geo.mmdb_path"},
		{"ADTRACKER_GEO_MMDB_PATH=" + bad, "geo.mmdb_path"},
		{"ADTRACKER_IVT_CLICK_WINDOW=-1m", "ivt.click_window"},
	} {
		cmd := exec.Command(bin, "serve")
		cmd.Env = append(os.Environ(), "ADTRACKER_HTTP_ADDR=127.0.0.1:0", "ADTRACKER_INGEST_DATA_DIR="+dir, c.env)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Fatalf("%s: exit %v, want non-zero\n%s", c.env, err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if last := lines[len(lines)-1]; !strings.Contains(last, c.want) {
			t.Fatalf("%s: last log line %q does not name %s", c.env, last, c.want)
		}
	}
}
