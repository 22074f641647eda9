package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// webPageScript is what a web player or page SDK does to report events from the viewer's browser, cross-origin: fetch with a JSON
// body (preflighted), navigator.sendBeacon with a string (text/plain, no preflight: what pages use on pagehide) for one event
// and for an NDJSON batch, and an NDJSON batch with keepalive. A batch over http.max_body_bytes gets an answer the page can read (413), not a network error a player would
// retry. Then it tries to read the analytics, which a page of another origin must not be able to do.
const webPageScript = `(async () => {
  const base = %q, ad = %d, ids = %s;
  const out = {};
  const r = await fetch(base + '/ads/impression', {method: 'POST', headers: {'Content-Type': 'application/json'},
    body: JSON.stringify({ad_id: ad, event_id: ids.fetch, video_playback_time: 0})});
  out.fetchStatus = r.status;
  out.fetchBody = await r.text();
  out.beacon = navigator.sendBeacon(base + '/ads/click', JSON.stringify({ad_id: ad, event_id: ids.beacon}));
  out.beaconBatch = navigator.sendBeacon(base + '/events', JSON.stringify({type: 'midpoint', ad_id: ad, event_id: ids.beaconMid}) +
    '\n' + JSON.stringify({type: 'third_quartile', ad_id: ad, event_id: ids.beaconThird}) + '\n');
  const b = await fetch(base + '/events', {method: 'POST', keepalive: true, headers: {'Content-Type': 'application/x-ndjson'},
    body: JSON.stringify({type: 'start', ad_id: ad, event_id: ids.start}) + '\n' +
      JSON.stringify({type: 'complete', ad_id: ad, event_id: ids.complete, video_playback_time: 15}) + '\n'});
  out.batchStatus = b.status;
  out.batchBody = await b.text();
  const big = await fetch(base + '/events', {method: 'POST', headers: {'Content-Type': 'application/x-ndjson'},
    body: 'x'.repeat(%d)});
  out.bigStatus = big.status;
  out.bigBody = await big.text();
  try {
    const a = await fetch(base + '/ads/analytics?ad_id=' + ad);
    out.analytics = 'read: ' + a.status;
  } catch (e) {
    out.analytics = 'blocked';
  }
  return out;
})()`

type webPageResult struct {
	FetchStatus int
	FetchBody   string
	Beacon      bool
	BeaconBatch bool
	BatchStatus int
	BatchBody   string
	BigStatus   int
	BigBody     string
	Analytics   string
}

// A web page of another origin (the one http.cors_origins names) reports events from a real browser the ways pages do — fetch
// with a JSON body after a preflight, sendBeacon with one event and with an NDJSON batch (text/plain: a beacon cannot send
// application/x-ndjson cross-origin), an NDJSON batch with keepalive — and reads the 202 answers, and the 413
// of a batch over the limit; each event is
// stored once under the page's event id, with the browser's user agent, as valid traffic. The same page cannot read the analytics:
// the read routes send no CORS headers to it (http.read_cors_origins is empty), though the request comes from this host.
func TestJSONEventsFromWebPage(t *testing.T) {
	b := newVASTBrowser(t) // first: skips before the databases are touched when chromium is missing and not required
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>page</title>` +
			`<link rel="icon" href="data:,"></head><body>player</body></html>`))
	}))
	t.Cleanup(page.Close)
	s := newStack(t, "ADTRACKER_HTTP_CORS_ORIGINS="+page.URL)
	s.start()
	const ad = 2            // seeded, active; 1 is the sentinel's
	const maxBody = 1 << 20 // http.max_body_bytes' default
	ids := map[string]string{"fetch": vastUUID(), "beacon": vastUUID(), "beaconMid": vastUUID(), "beaconThird": vastUUID(),
		"start": vastUUID(), "complete": vastUUID()}
	idsJS := fmt.Sprintf(`{fetch: %q, beacon: %q, beaconMid: %q, beaconThird: %q, start: %q, complete: %q}`, ids["fetch"], ids["beacon"],
		ids["beaconMid"], ids["beaconThird"], ids["start"], ids["complete"])

	b.do(t, "opening the page", chromedp.Navigate(page.URL+"/"))
	res, err := chromedp.Run(b.ctx, chromedp.Evaluate[webPageResult](fmt.Sprintf(webPageScript, s.url, ad, idsJS, maxBody+1), chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("the page's script: %v (browser problems %v)", err, b.seen())
	}
	t.Logf("page saw: %+v", res)
	if res.FetchStatus != 202 || !strings.Contains(res.FetchBody, `"event_id":"`+ids["fetch"]+`"`) {
		t.Errorf("fetch POST /ads/impression: %d %s", res.FetchStatus, res.FetchBody)
	}
	if !res.Beacon || !res.BeaconBatch {
		t.Errorf("sendBeacon refused to queue the click (%v) or the batch (%v)", res.Beacon, res.BeaconBatch)
	}
	if res.BatchStatus != 202 || !strings.Contains(res.BatchBody, `"accepted":2`) {
		t.Errorf("fetch POST /events: %d %s", res.BatchStatus, res.BatchBody)
	}
	if res.BigStatus != 413 || res.BigBody != `{"error":"request body too large","field":"body"}` {
		t.Errorf("a batch of max_body_bytes+1: %d %s, want the 413 readable by the page", res.BigStatus, res.BigBody)
	}
	if res.Analytics != "blocked" {
		t.Errorf("a page of another origin could read the analytics (%s)", res.Analytics)
	}
	// The only problems the browser may report are the 413 and the blocked analytics read.
	for _, p := range b.seen() {
		if !strings.Contains(p, "request failed") && !strings.HasPrefix(p, "HTTP 413 for "+s.url+"/events") {
			t.Errorf("the browser reported: %s", p)
		}
	}

	// The beacons are sent after the page's script went on: wait for them, and for everything before the sentinel to be stored.
	want := map[string]string{ids["fetch"]: "impression", ids["beacon"]: "click", ids["beaconMid"]: "midpoint",
		ids["beaconThird"]: "third_quartile", ids["start"]: "start", ids["complete"]: "complete"}
	var rows map[string][]vastRow
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		s.vastFlushed(t, vastSeededAds[0])
		rows = s.vastAdRows(t, ad)
		if len(rows[ids["beacon"]]) > 0 && len(rows[ids["beaconThird"]]) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(rows) != len(want) {
		t.Errorf("stored %d event ids for ad %d, want %d: %v", len(rows), ad, len(want), rows)
	}
	for id, ty := range want {
		got := rows[id]
		if len(got) != 1 || got[0].Type != ty || got[0].UserAgent != vastBrowserUA || got[0].IVT != "none" {
			t.Errorf("%s %s: stored %+v, want one valid row with the browser's user agent", ty, id, got)
		}
	}
}
