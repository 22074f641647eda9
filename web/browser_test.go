package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/adtracker/adtracker/internal/testenv"
	"github.com/adtracker/adtracker/internal/testenv/chromium"
)

// EnvUpdateScreenshot rewrites docs/dashboard.png from the overview screenshot.
const EnvUpdateScreenshot = "ADTRACKER_UPDATE_DASHBOARD_PNG"

// browser is one headless chromium tab, recording every console error, uncaught exception and failed request.
type browser struct {
	ctx  context.Context
	mu   sync.Mutex
	errs []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	actx := chromium.Allocator(t, chromedp.WindowSize(1280, 900))
	// One bound for the whole browser: a hung page fails the test instead of the package's timeout.
	tctx, cancelTimeout := context.WithTimeout(actx, 120*time.Second)
	b := &browser{}
	ctx, cancelCtx := chromedp.NewContext(tctx, chromedp.WithListener(b.listen))
	b.ctx = ctx
	t.Cleanup(func() { cancelCtx(); cancelTimeout() })
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, log.Enable, cdp.Empty{})
		return err
	})); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return b
}

// listen records problems; it runs on the tab's reading goroutine, so it only appends (and answers dialogs from another goroutine).
func (b *browser) listen(ev any) {
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			var parts []string
			for _, a := range ev.Args {
				parts = append(parts, string(a.Value)+a.Description)
			}
			b.fail("console.%s: %s", ev.Type, strings.Join(parts, " "))
		}
	case *runtime.EventExceptionThrown:
		msg := ev.ExceptionDetails.Text
		if ev.ExceptionDetails.Exception != nil {
			msg += " " + ev.ExceptionDetails.Exception.Description
		}
		b.fail("uncaught exception: %s", msg)
	case *log.EventEntryAdded:
		if ev.Entry.Level == log.EntryLevelError {
			b.fail("browser log: %s %s", ev.Entry.Text, ev.Entry.URL)
		}
	case *network.EventLoadingFailed:
		b.fail("request failed: %s %s", ev.ErrorText, ev.BlockedReason)
	case *network.EventResponseReceived:
		if ev.Response.Status >= 400 {
			b.fail("HTTP %d for %s", ev.Response.Status, ev.Response.URL)
		}
	case *page.EventJavascriptDialogOpening:
		go func() { // the archive confirmation: accept it, as a user would
			_, _ = chromedp.Call(b.ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}()
	}
}

func (b *browser) fail(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.errs = append(b.errs, fmt.Sprintf(format, args...))
}

func (b *browser) problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errs...)
}

func (b *browser) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		t.Fatalf("%s: %v (browser problems so far: %v)", what, err, b.problems())
	}
}

// eval runs js (an expression) and returns its value decoded as T.
func eval[T any](t *testing.T, b *browser, js string) T {
	t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluating %s: %v (browser problems so far: %v)", js, err, b.problems())
	}
	return v
}

// render returns the number of the page's last finished render.
func (b *browser) render(t *testing.T) int {
	t.Helper()
	n, _ := strconv.Atoi(eval[string](t, b, `document.body.dataset.render || "0"`))
	return n
}

// rendered waits for a render after the one numbered after, and fails unless it ended ready (not in an error).
func (b *browser) rendered(t *testing.T, after int) {
	t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[bool](fmt.Sprintf(`Number(document.body.dataset.render || 0) > %d`, after),
		chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		t.Fatalf("waiting for the page: %v (browser problems so far: %v)", err, b.problems())
	}
	if state := eval[string](t, b, `document.body.dataset.state`); state != "ready" {
		t.Fatalf("page state %q, alert %q", state, eval[string](t, b, `document.getElementById('alert').textContent`))
	}
	text := eval[string](t, b, `document.getElementById('view').textContent`)
	for _, bad := range []string{"NaN", "undefined", "null", "Infinity", "[object"} {
		if i := strings.Index(text, bad); i >= 0 {
			t.Errorf("the page shows %q: …%s…", bad, text[max(0, i-80):min(len(text), i+80)])
		}
	}
}

// screenshot saves the whole page under .data/dashboard/ (git-ignored) and returns the PNG.
func (b *browser) screenshot(t *testing.T, name string) []byte {
	t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := filepath.Join(testenv.RepoRoot(t), ".data", "dashboard")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	return png
}

// media emulates prefers-color-scheme (empty: the default).
func (b *browser) media(t *testing.T, scheme string) {
	t.Helper()
	var features []*emulation.MediaFeature
	if scheme != "" {
		features = []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}
	}
	if _, err := chromedp.Call(b.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: features}); err != nil {
		t.Fatalf("emulating %q: %v", scheme, err)
	}
}

// pick chooses a window in the picker (setting the value and firing change, as a keyboard user's choice does) and waits for the
// page to redraw.
func (b *browser) pick(t *testing.T, value string) {
	t.Helper()
	n := b.render(t)
	b.do(t, "picking window "+value, chromedp.SetValue(chromedp.CSS(`#window`), value))
	eval[bool](t, b, `document.getElementById('window').dispatchEvent(new Event('change'))`)
	b.rendered(t, n)
}

func (b *browser) navigate(t *testing.T, url string) {
	t.Helper()
	b.do(t, "navigating to "+url, chromedp.Navigate(url))
	b.rendered(t, 0)
}

func (b *browser) hash(t *testing.T, h string) {
	t.Helper()
	n := b.render(t)
	eval[string](t, b, `location.hash = `+strconv.Quote(h))
	b.rendered(t, n)
}

// pageWindow is the window the page asked the API for.
func (b *browser) pageWindow(t *testing.T) string {
	t.Helper()
	w := eval[struct{ Start, End, Interval string }](t, b, `({start: document.getElementById('view').dataset.start, end: document.getElementById('view').dataset.end, interval: document.getElementById('view').dataset.interval})`)
	if w.Start == "" || w.End == "" {
		t.Fatal("the page does not say which window it shows")
	}
	return "start=" + w.Start + "&end=" + w.End + "&interval=" + w.Interval
}

// totalsWindow is pageWindow for /ads/analytics, which has no buckets and refuses an interval parameter.
func totalsWindow(w string) string {
	window, _, _ := strings.Cut(w, "&interval=")
	return window
}

func (b *browser) tiles(t *testing.T) map[string]float64 {
	t.Helper()
	return floats(t, eval[map[string]string](t, b, `Object.fromEntries([...document.querySelectorAll('[data-tile]')].map(e => [e.dataset.tile, e.dataset.value]))`))
}

func floats(t *testing.T, raw map[string]string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for k, v := range raw {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("figure %s = %q is not a number", k, v)
		}
		out[k] = f
	}
	return out
}

type stats map[string]any

func (s stats) num(k string) float64 { f, _ := s[k].(float64); return f }

func same(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// checkOverview compares the overview with the API's answers for the page's own window and returns the table's ad order.
func checkOverview(t *testing.T, st *stack, b *browser, want map[string]float64) []int64 {
	t.Helper()
	w := b.pageWindow(t)
	var top []stats
	st.get(t, "/ads/analytics?limit=1000&"+totalsWindow(w), &top)
	api := map[string]float64{}
	for _, r := range top {
		for _, k := range []string{"impressions", "clicks", "starts", "completes"} {
			api[k] += r.num(k)
		}
	}
	api["ctr"] = api["clicks"] / api["impressions"]
	api["completion_rate"] = 0
	if api["starts"] > 0 {
		api["completion_rate"] = api["completes"] / api["starts"]
	}
	got := b.tiles(t)
	if len(got) != 4 {
		t.Errorf("tiles %v: want impressions, clicks, CTR and completion rate only (the API has no viewability or IVT yet)", got)
	}
	for k, v := range got {
		if !same(v, api[k]) {
			t.Errorf("%s: tile %v, API %v", k, v, api[k])
		}
	}
	for k, v := range want { // and the seed, so that a wrong window on both sides cannot pass
		if !same(got[k], v) {
			t.Errorf("%s: tile %v, seeded %v", k, got[k], v)
		}
	}

	// Table rows: the same ads and figures as the API's top list.
	rows := eval[[]struct {
		Ad     string
		Values map[string]string
	}](t, b, `[...document.querySelectorAll('#top-ads tbody tr')].map(r => ({ad: r.dataset.ad, values: Object.fromEntries([...r.querySelectorAll('[data-col]')].map(c => [c.dataset.col, c.dataset.value]))}))`)
	byAd := map[string]stats{}
	for _, r := range top {
		byAd[strconv.FormatFloat(r.num("ad_id"), 'f', -1, 64)] = r
	}
	if len(rows) != len(top) {
		t.Errorf("table has %d rows, the API %d", len(rows), len(top))
	}
	var order []int64
	for _, r := range rows {
		id, _ := strconv.ParseInt(r.Ad, 10, 64)
		order = append(order, id)
		a, ok := byAd[r.Ad]
		if !ok {
			t.Errorf("table row for ad %s that the API does not list", r.Ad)
			continue
		}
		for k, v := range floats(t, r.Values) {
			if !same(v, a.num(k)) {
				t.Errorf("ad %s %s: table %v, API %v", r.Ad, k, v, a.num(k))
			}
		}
	}

	// Chart data: per bucket, the sum of the ads' series.
	chart := eval[[]struct {
		T      string
		Values map[string]string
	}](t, b, `[...document.querySelectorAll('#events-chart-data tbody tr')].map(r => ({t: r.dataset.t, values: Object.fromEntries([...r.querySelectorAll('[data-series]')].map(c => [c.dataset.series, c.dataset.value]))}))`)
	sums := map[string]map[string]float64{}
	var buckets []string
	for _, r := range top {
		var s struct{ Points []stats }
		st.get(t, fmt.Sprintf("/ads/%v/timeseries?fields=impressions,clicks,starts,completes&%s", r["ad_id"], w), &s)
		for _, p := range s.Points {
			ts := p["t"].(string)
			if sums[ts] == nil {
				sums[ts] = map[string]float64{}
				buckets = append(buckets, ts)
			}
			sums[ts]["Impressions"] += p.num("impressions")
			sums[ts]["Clicks"] += p.num("clicks")
			sums[ts]["Starts"] += p.num("starts")
			sums[ts]["Completes"] += p.num("completes")
		}
	}
	if len(chart) != len(buckets) {
		t.Fatalf("chart has %d buckets, the API series %d", len(chart), len(buckets))
	}
	var total float64
	for i, r := range chart {
		if r.T != buckets[i] {
			t.Fatalf("chart bucket %d is %s, the API's %s", i, r.T, buckets[i])
		}
		got := floats(t, r.Values)
		if len(got) != 4 || !reflect.DeepEqual(got, sums[r.T]) {
			t.Errorf("bucket %s: chart %v, API %v", r.T, got, sums[r.T])
		}
		total += got["Impressions"]
	}
	if total != want["impressions"] {
		t.Errorf("the chart's impressions add up to %v, seeded %v", total, want["impressions"])
	}
	return order
}

func TestDashboardInBrowser(t *testing.T) {
	b := newBrowser(t) // first: skips before the databases are touched when chromium is missing and not required
	st := newStack(t)
	a, bb, c := st.ads[0].ID, st.ads[1].ID, st.ads[2].ID

	// Overview, last 24 hours (the default).
	b.navigate(t, st.base+"/")
	order := checkOverview(t, st, b, map[string]float64{"impressions": 75, "clicks": 8, "ctr": 8.0 / 75, "completion_rate": 0.3})
	if want := []int64{bb, a, c}; !reflect.DeepEqual(order, want) {
		t.Errorf("top ads by clicks: %v, want %v", order, want)
	}
	png := b.screenshot(t, "overview")
	if os.Getenv(EnvUpdateScreenshot) != "" {
		if err := os.WriteFile(filepath.Join(testenv.RepoRoot(t), "docs", "dashboard.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Dark (prefers-color-scheme) and narrow: screenshots to look at, and the same page must still render without problems.
	b.media(t, "dark")
	b.screenshot(t, "overview-dark")
	b.media(t, "")
	b.do(t, "narrow viewport", chromedp.EmulateViewport(390, 844))
	b.screenshot(t, "overview-narrow")
	b.do(t, "wide viewport", chromedp.EmulateViewport(1280, 900))

	// Sorting: a click on the Impressions heading reorders the rows, a second click reverses them.
	n := b.render(t)
	b.do(t, "sorting by impressions", chromedp.Click(chromedp.CSS(`#top-ads button[data-sort="impressions"]`)))
	if got := b.render(t); got != n {
		t.Fatalf("sorting re-fetched the page (render %d → %d); it should sort what it has", n, got)
	}
	ids := eval[[]string](t, b, `[...document.querySelectorAll('#top-ads tbody tr')].map(r => r.dataset.ad)`)
	if want := []string{strconv.FormatInt(c, 10), strconv.FormatInt(a, 10), strconv.FormatInt(bb, 10)}; !reflect.DeepEqual(ids, want) {
		t.Errorf("top ads by impressions: %v, want %v", ids, want)
	}
	sortState := eval[string](t, b, `document.querySelector('#top-ads button[data-sort="impressions"]').parentElement.getAttribute('aria-sort')`)
	if sortState != "descending" {
		t.Errorf("aria-sort %q after sorting by impressions", sortState)
	}
	b.do(t, "sorting ascending", chromedp.Click(chromedp.CSS(`#top-ads button[data-sort="impressions"]`)))
	ids = eval[[]string](t, b, `[...document.querySelectorAll('#top-ads tbody tr')].map(r => r.dataset.ad)`)
	if want := []string{strconv.FormatInt(bb, 10), strconv.FormatInt(a, 10), strconv.FormatInt(c, 10)}; !reflect.DeepEqual(ids, want) {
		t.Errorf("top ads by impressions ascending: %v, want %v", ids, want)
	}

	// The window picker: the last hour and the last 7 days show other figures, each equal to the API's.
	b.do(t, "sorting back by clicks", chromedp.Click(chromedp.CSS(`#top-ads button[data-sort="clicks"]`)))
	b.pick(t, "1h")
	order = checkOverview(t, st, b, map[string]float64{"impressions": 15, "clicks": 7, "ctr": 7.0 / 15, "completion_rate": 0.3})
	if want := []int64{bb, a}; !reflect.DeepEqual(order, want) {
		t.Errorf("last hour, top ads by clicks: %v, want %v", order, want)
	}
	b.pick(t, "7d")
	checkOverview(t, st, b, map[string]float64{"impressions": 175, "clicks": 8, "ctr": 8.0 / 175, "completion_rate": 0.3})
	// Custom: the last two hours, typed as local times the way the datetime inputs take them; per-minute buckets.
	n = b.render(t)
	b.do(t, "choosing custom", chromedp.SetValue(chromedp.CSS(`#window`), "custom"))
	eval[bool](t, b, `document.getElementById('window').dispatchEvent(new Event('change'))`)
	eval[bool](t, b, `(() => {
		const p = (n) => String(n).padStart(2, '0');
		const local = (d) => d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + 'T' + p(d.getHours()) + ':' + p(d.getMinutes());
		document.getElementById('custom-start').value = local(new Date(Date.now() - 2 * 3600e3));
		document.getElementById('custom-end').value = local(new Date(Date.now() + 60e3));
		return true;
	})()`)
	b.do(t, "applying the custom window", chromedp.Click(chromedp.CSS(`#custom-apply`)))
	b.rendered(t, n)
	if w := b.pageWindow(t); !strings.HasSuffix(w, "interval=minute") {
		t.Errorf("custom two hours: window %s, want per-minute buckets", w)
	}
	checkOverview(t, st, b, map[string]float64{"impressions": 15, "clicks": 7, "ctr": 7.0 / 15, "completion_rate": 0.3})
	b.pick(t, "7d")

	// The ad page, from the table's link (last 7 days still picked).
	n = b.render(t)
	b.do(t, "opening ad A", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#top-ads tr[data-ad="%d"] a`, a))))
	b.rendered(t, n)
	w := b.pageWindow(t)
	var one stats
	st.get(t, fmt.Sprintf("/ads/analytics?ad_id=%d&%s", a, totalsWindow(w)), &one)
	for k, v := range b.tiles(t) {
		if !same(v, one.num(k)) {
			t.Errorf("ad page %s: tile %v, API %v", k, v, one.num(k))
		}
	}
	funnel := eval[map[string]string](t, b, `Object.fromEntries([...document.querySelectorAll('#funnel [data-step]')].map(e => [e.dataset.step, e.dataset.value]))`)
	wantFunnel := map[string]float64{"starts": 8, "first_quartile": 6, "midpoint": 5, "third_quartile": 4, "completes": 2}
	if got := floats(t, funnel); !reflect.DeepEqual(got, wantFunnel) {
		t.Errorf("funnel %v, seeded %v", got, wantFunnel)
	}
	for k, v := range wantFunnel {
		if one.num(k) != v {
			t.Errorf("API %s = %v, seeded %v", k, one.num(k), v)
		}
	}
	var series struct{ Points []stats }
	st.get(t, fmt.Sprintf("/ads/%d/timeseries?%s", a, w), &series)

	counts := eval[[][]string](t, b, `[...document.querySelectorAll('#ad-counts-data tbody tr')].map(r => [r.dataset.t, ...[...r.querySelectorAll('[data-value]')].map(c => c.dataset.value)])`)
	ctr := eval[[][]string](t, b, `[...document.querySelectorAll('#ad-ctr-data tbody tr')].map(r => [r.dataset.t, ...[...r.querySelectorAll('[data-value]')].map(c => c.dataset.value)])`)
	if len(counts) != len(series.Points) || len(ctr) != len(series.Points) {
		t.Fatalf("ad charts have %d and %d buckets, the API %d", len(counts), len(ctr), len(series.Points))
	}
	for i, p := range series.Points {
		want := []string{p["t"].(string), num(p["impressions"]), num(p["clicks"])}
		if !reflect.DeepEqual(counts[i], want) {
			t.Errorf("ad counts bucket %d: %v, API %v", i, counts[i], want)
		}
		if c, _ := strconv.ParseFloat(ctr[i][1], 64); ctr[i][0] != want[0] || !same(c, p.num("ctr")) {
			t.Errorf("ad CTR bucket %d: %v, API %v", i, ctr[i], p["ctr"])
		}
	}
	b.screenshot(t, "ad")

	// Live ingest.
	b.hash(t, "#/live")
	live := eval[map[string]string](t, b, `({state: document.getElementById('ch-state').dataset.ch, text: document.getElementById('view').textContent})`)
	if live["state"] != "live" {
		t.Errorf("ClickHouse state on the live page: %q", live["state"])
	}
	if want := fmt.Sprintf("accepted since start: %d", st.acceptedBefore+st.accepted); !strings.Contains(live["text"], want) {
		t.Errorf("live page %q does not say %q", live["text"], want)
	}
	if strings.Contains(live["text"], "none since this server started") {
		t.Errorf("live page shows no last insert after %d rows were stored", st.accepted)
	}
	b.screenshot(t, "live")

	// Catalogue: writes need the admin token typed in.
	b.hash(t, "#/ads")
	catalogue := eval[[]string](t, b, `[...document.querySelectorAll('#catalogue tbody tr')].map(r => r.dataset.ad)`)
	if len(catalogue) != 3 {
		t.Errorf("catalogue rows %v, want the 3 ads", catalogue)
	}
	disabled := eval[bool](t, b, `document.querySelector('form.create button[type=submit]').disabled`)
	if !disabled {
		t.Error("create is enabled without an admin token")
	}
	n = b.render(t)
	b.do(t, "typing the admin token",
		chromedp.Click(chromedp.CSS(`details.tokens summary`)),
		chromedp.SendKeys(chromedp.CSS(`#admin-token`), adminToken),
		chromedp.Click(chromedp.CSS(`#token-form button[type=submit]`)))
	b.rendered(t, n)
	n = b.render(t)
	b.do(t, "creating an ad",
		chromedp.SendKeys(chromedp.CSS(`#new-name`), "Delta spot"),
		chromedp.SendKeys(chromedp.CSS(`#new-target`), "https://example.com/delta"),
		chromedp.Click(chromedp.CSS(`form.create button[type=submit]`)))
	b.rendered(t, n)
	var ads []stats
	st.get(t, "/ads?status=all", &ads)
	if len(ads) != 4 || ads[3]["name"] != "Delta spot" || ads[3]["status"] != "active" {
		t.Fatalf("after create, the API lists %v", ads)
	}
	d := int64(ads[3].num("id"))
	n = b.render(t)
	b.do(t, "pausing it", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#catalogue tr[data-ad="%d"] button`, d))))
	b.rendered(t, n)
	var ad stats
	st.get(t, fmt.Sprintf("/ads/%d", d), &ad)
	if ad["status"] != "paused" {
		t.Errorf("after pause the ad is %v", ad["status"])
	}
	n = b.render(t)
	b.do(t, "archiving it", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#catalogue tr[data-ad="%d"] button[aria-label^="Archive"]`, d))))
	b.rendered(t, n)
	st.get(t, fmt.Sprintf("/ads/%d", d), &ad)
	if ad["status"] != "archived" {
		t.Errorf("after archive the ad is %v", ad["status"])
	}
	b.screenshot(t, "catalogue")

	if p := b.problems(); len(p) > 0 {
		sort.Strings(p)
		t.Errorf("the browser reported %d problems:\n%s", len(p), strings.Join(p, "\n"))
	}
}

func num(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
