package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/adtracker/adtracker/internal/testenv/chromium"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// playerPage is the test's web player, served from an origin of its own: it loads the VAST with a cross-origin XHR with
// credentials, plays the MediaFile this browser can play in a <video>, and fires the tracking URLs from the element's own events
// the way a player does — loadeddata: Impression, then start once play() has begun; timeupdate: the quartiles when the playhead
// passes them; ended: complete; a failed media load: Error with [ERRORCODE] 405. The link over the video is the ClickThrough.
// window.player tells the test what happened.
const playerPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>VAST test player</title></head>
<body>
<video id="ad" muted playsinline width="320" height="240"></video>
<p><a id="ad-click" href="#">Visit the advertiser</a></p>
<script>
'use strict';
const player = window.player = {state: 'loading', fired: [], servingId: '', media: '', problem: ''};
const video = document.getElementById('ad');
const pad = (n, w) => String(Math.floor(n)).padStart(w, '0');
// [ADPLAYHEAD] is HH:MM:SS.mmm (VAST 4.1 section 6.1).
const playhead = (s) => pad(s / 3600, 2) + ':' + pad(s / 60 % 60, 2) + ':' + pad(s % 60, 2) + '.' + pad(s * 1000 % 1000, 3);
function expand(url, at, code) {
  return url.replaceAll('[TIMESTAMP]', encodeURIComponent(new Date().toISOString()))
    .replaceAll('[CACHEBUSTING]', pad(Math.random() * 1e8, 8))
    .replaceAll('[ADPLAYHEAD]', at === undefined ? '-1' : encodeURIComponent(playhead(at)))
    .replaceAll('[ERRORCODE]', code || '900');
}
function fire(event, urls, at, code) {
  for (const url of urls || []) {
    const rec = {event, url: expand(url, at, code), at: at === undefined ? -1 : at, done: false, ok: false};
    const img = new Image();
    img.onload = () => { rec.done = true; rec.ok = true; };
    img.onerror = () => { rec.done = true; };
    img.src = rec.url;
    player.fired.push(rec);
  }
}
const text = (el) => el ? el.textContent.trim() : '';
function start(doc) {
  const ad = doc.querySelector('VAST > Ad');
  if (!ad) { player.state = 'empty'; return; }
  player.servingId = text(ad.querySelector('AdServingId'));
  const impressions = [...ad.querySelectorAll('InLine > Impression')].map(text);
  const errors = [...ad.querySelectorAll('InLine > Error')].map(text);
  const linear = ad.querySelector('Creative > Linear');
  const tracking = {};
  for (const t of linear.querySelectorAll('TrackingEvents > Tracking')) {
    (tracking[t.getAttribute('event')] ||= []).push(text(t));
  }
  document.getElementById('ad-click').href = text(linear.querySelector('VideoClicks > ClickThrough'));
  const media = [...linear.querySelectorAll('MediaFiles > MediaFile')].find((m) => video.canPlayType(m.getAttribute('type')) !== '');
  if (!media) { player.state = 'error'; player.problem = 'no playable MediaFile'; fire('error', errors, undefined, '403'); return; }
  player.media = media.getAttribute('type');
  const quartiles = [['firstQuartile', 0.25], ['midpoint', 0.5], ['thirdQuartile', 0.75]];
  let started = false;
  video.addEventListener('loadeddata', () => {
    fire('impression', impressions);
    fire('creativeView', tracking.creativeView, 0);
    video.play().then(() => {
      started = true;
      fire('start', tracking.start, video.currentTime);
    }, (e) => { player.state = 'error'; player.problem = 'play: ' + e; });
  }, {once: true});
  video.addEventListener('timeupdate', () => {
    if (!started) return;
    while (quartiles.length && video.currentTime >= quartiles[0][1] * video.duration) {
      const [name] = quartiles.shift();
      fire(name, tracking[name], video.currentTime);
    }
  });
  video.addEventListener('ended', () => {
    for (const [name] of quartiles.splice(0)) fire(name, tracking[name], video.currentTime);
    fire('complete', tracking.complete, video.currentTime);
    player.state = 'ended';
  });
  video.addEventListener('error', () => {
    player.state = 'error';
    player.problem = 'media: ' + (video.error && video.error.message);
    fire('error', errors, video.currentTime, '405');
  });
  video.src = media.textContent.trim();
}
const xhr = new XMLHttpRequest();
xhr.open('GET', new URLSearchParams(location.search).get('vast'));
xhr.withCredentials = true;
xhr.onload = () => {
  if (xhr.status !== 200) { player.state = 'error'; player.problem = 'VAST answered ' + xhr.status; return; }
  start(xhr.responseXML || new DOMParser().parseFromString(xhr.responseText, 'application/xml'));
};
xhr.onerror = () => { player.state = 'error'; player.problem = 'the VAST request failed (CORS?)'; };
xhr.send();
</script>
</body></html>
`

// playerSite is the origin the page comes from: the player, the video, and the advertiser's landing page.
type playerSite struct {
	srv    *httptest.Server
	video  string
	mu     sync.Mutex
	landed []string // landing page requests, with their query
}

func newPlayerSite(t *testing.T, video string) *playerSite {
	t.Helper()
	p := &playerSite{video: video}
	mux := http.NewServeMux()
	mux.HandleFunc("/player.html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(playerPage))
	})
	mux.HandleFunc("/ad.webm", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, p.video)
	})
	mux.HandleFunc("/landing", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.landed = append(p.landed, r.URL.RequestURI())
		p.mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Advertiser</title></head><body><h1 id="landed">Advertiser</h1></body></html>`))
	})
	mux.HandleFunc("/favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

// makeVASTVideo writes a 4 s VP8/WebM test pattern (ffmpeg's testsrc), which Debian's chromium plays.
func makeVASTVideo(t *testing.T) string {
	t.Helper()
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		chromium.Require(t, "ffmpeg", "apt-get install ffmpeg (scripts/vast-client/install.sh)")
	}
	out := filepath.Join(t.TempDir(), "ad.webm")
	cmd := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "lavfi", "-i", "testsrc=duration=4:size=320x240:rate=25",
		"-c:v", "libvpx", "-b:v", "300k", "-pix_fmt", "yuv420p", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	return out
}

const vastBrowserUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/143.0.0.0 Safari/537.36"

// vastBrowser is one headless chromium tab that records console errors, uncaught exceptions, failed requests and HTTP errors.
type vastBrowser struct {
	ctx      context.Context
	mu       sync.Mutex
	problems []string
}

func newVASTBrowser(t *testing.T) *vastBrowser {
	t.Helper()
	actx := chromium.Allocator(t, chromedp.Flag("autoplay-policy", "no-user-gesture-required"), chromedp.WindowSize(800, 600),
		// A viewer's browser: headless chromium's own User-Agent says HeadlessChrome, which invalid-traffic screening rightly takes
		// for a robot.
		chromedp.UserAgent(vastBrowserUA))
	tctx, cancelTimeout := context.WithTimeout(actx, 90*time.Second) // a hung page fails the test, not the package's timeout
	b := &vastBrowser{}
	ctx, cancelCtx := chromedp.NewContext(tctx, chromedp.WithListener(b.listen))
	b.ctx = ctx
	t.Cleanup(func() { cancelCtx(); cancelTimeout() })
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{})
		return err
	})); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return b
}

func (b *vastBrowser) listen(ev any) {
	var p string
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError {
			p = "console.error"
			for _, a := range ev.Args {
				p += " " + string(a.Value) + a.Description
			}
		}
	case *runtime.EventExceptionThrown:
		p = "uncaught exception: " + ev.ExceptionDetails.Text
		if ev.ExceptionDetails.Exception != nil {
			p += " " + ev.ExceptionDetails.Exception.Description
		}
	case *network.EventLoadingFailed:
		p = fmt.Sprintf("request failed: %s %s", ev.ErrorText, ev.BlockedReason)
	case *network.EventResponseReceived:
		if ev.Response.Status >= 400 {
			p = fmt.Sprintf("HTTP %d for %s", ev.Response.Status, ev.Response.URL)
		}
	}
	if p != "" {
		b.mu.Lock()
		b.problems = append(b.problems, p)
		b.mu.Unlock()
	}
}

func (b *vastBrowser) seen() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.problems...)
}

func (b *vastBrowser) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		t.Fatalf("%s: %v (browser problems so far: %v)", what, err, b.seen())
	}
}

func browserEval[T any](t *testing.T, b *vastBrowser, js string) T {
	t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluating %s: %v (browser problems so far: %v)", js, err, b.seen())
	}
	return v
}

type playerState struct {
	State     string
	Problem   string
	ServingID string
	Media     string
	Fired     []struct {
		Event, URL string
		At         float64
		Done, OK   bool
	}
}

// A real browser plays adtracker's VAST: chromium loads a player page from an origin of its own (the one http.cors_origins names),
// which fetches GET /vast cross-origin with credentials, plays the ad's real 4 s video (made by ffmpeg) and fires tracking from the
// <video> element's events; then the viewer clicks through. Stored for that serve, each once under the id its serve id gives it:
// impression, start, the three quartiles at increasing playheads and complete, in that order, and the click, which lands on the
// ad's target URL through /c/{id}.
func TestVASTInBrowser(t *testing.T) {
	b := newVASTBrowser(t) // first: skips before the databases are touched when chromium is missing and not required
	site := newPlayerSite(t, makeVASTVideo(t))
	// The player's origin is the one allowed to read /vast with credentials, as a production configuration names its players.
	s := newStack(t, "ADTRACKER_ADMIN_TOKEN="+vastAdminToken, "ADTRACKER_HTTP_CORS_ORIGINS="+site.srv.URL)
	s.start()
	target := site.srv.URL + "/landing?campaign=vast-browser"
	adID := createVASTAd(t, s, fmt.Sprintf(`{"name":"VAST browser spot","target_url":%q,"video_url":%q,"video_mime_type":"video/webm",`+
		`"video_width":320,"video_height":240,"duration_seconds":4}`, target, site.srv.URL+"/ad.webm"))

	b.do(t, "opening the player", chromedp.Navigate(site.srv.URL+"/player.html?vast="+url.QueryEscape(s.url+"/vast")))
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[bool](`player.state !== 'loading' && player.fired.every((f) => f.done)`,
		chromedp.WithPollingTimeout(45*time.Second))); err != nil {
		t.Fatalf("the player did not finish: %v (state %+v, browser problems %v)", err, browserEval[playerState](t, b, `player`), b.seen())
	}
	p := browserEval[playerState](t, b, `player`)
	for _, f := range p.Fired {
		t.Logf("fired %-13s at %.3f s ok=%v %s", f.Event, f.At, f.OK, f.URL)
	}
	if p.State != "ended" {
		t.Fatalf("player state %q (%s), want ended; browser problems %v", p.State, p.Problem, b.seen())
	}
	if p.Media != "video/webm" {
		t.Errorf("the player played a %q MediaFile, want the ad's video/webm", p.Media)
	}
	want := map[string]servedEvent{} // by type
	for _, f := range p.Fired {
		if !f.OK {
			t.Errorf("the browser could not load the %s pixel %s", f.Event, f.URL)
		}
		ev := servedEventOf(t, f.URL)
		if ev.Serve != p.ServingID {
			t.Errorf("%s carries serve id %s, the VAST's AdServingId is %s", f.URL, ev.Serve, p.ServingID)
		}
		want[ev.Type] = ev
	}

	// The viewer clicks through: /c/{id} counts the click and redirects to the ad's target.
	click := browserEval[string](t, b, `document.getElementById('ad-click').href`)
	if ev := servedEventOf(t, click); ev.Type != "click" || ev.Serve != p.ServingID || !strings.HasPrefix(click, fmt.Sprintf("%s/c/%d?", s.url, adID)) {
		t.Errorf("the ClickThrough %s is not this serve's click redirect /c/%d", click, adID)
	} else {
		want[ev.Type] = ev
	}
	b.do(t, "clicking through", chromedp.Click(chromedp.CSS(`#ad-click`)), chromedp.WaitVisible(chromedp.CSS(`#landed`)))
	if loc := browserEval[string](t, b, `location.href`); loc != target {
		t.Errorf("the click landed on %s, want the ad's target %s", loc, target)
	}
	site.mu.Lock()
	landed := append([]string(nil), site.landed...)
	site.mu.Unlock()
	if len(landed) != 1 {
		t.Errorf("the landing page was requested %d times (%v), want once", len(landed), landed)
	}
	if pr := b.seen(); len(pr) > 0 {
		t.Errorf("the browser reported problems: %v", pr)
	}

	// Stored for the serve: each event once, under the id its serve and type give it, in playback order.
	s.vastFlushed(t, vastSeededAds[0])
	rows := s.vastAdRows(t, adID)
	if len(rows) != len(want) {
		t.Errorf("stored %d events for the ad, the browser fired %d: %v", len(rows), len(want), rows)
	}
	order := []string{"impression", "start", "first_quartile", "midpoint", "third_quartile", "complete"}
	var seq []string
	var prev vastRow
	for i, ty := range append(order, "click") {
		ev, ok := want[ty]
		if !ok {
			t.Errorf("the browser fired no %s", ty)
			continue
		}
		got := rows[ev.ID]
		if len(got) != 1 || got[0].Type != ty {
			t.Errorf("%s (event id %s): stored %+v, want one row", ty, ev.ID, got)
			continue
		}
		r := got[0]
		seq = append(seq, fmt.Sprintf("%s@%dms", r.Type, r.PlaybackMs))
		if r.UserAgent != vastBrowserUA || r.IVT != "none" {
			t.Errorf("%s stored with user agent %q, invalid traffic %q; want the browser's, valid", ty, r.UserAgent, r.IVT)
		}
		if ty == "click" {
			continue
		}
		if i > 0 && r.EventTime.Before(prev.EventTime) {
			t.Errorf("%s at %v is before %s at %v", ty, r.EventTime, prev.Type, prev.EventTime)
		}
		// The quartiles and complete each at a later playhead than the event before them.
		if i >= 2 && r.PlaybackMs <= prev.PlaybackMs {
			t.Errorf("%s at playhead %d ms, not after %s at %d ms", ty, r.PlaybackMs, prev.Type, prev.PlaybackMs)
		}
		prev = r
	}
	t.Logf("stored for serve %s: %s", p.ServingID, strings.Join(seq, " "))
	// Each quartile no earlier than its share of the 4 s video (a player may report it later, at the next timeupdate), complete at
	// its end.
	for q, frac := range map[string]float64{"first_quartile": 0.25, "midpoint": 0.5, "third_quartile": 0.75, "complete": 1} {
		if r := rows[want[q].ID]; len(r) == 1 && (float64(r[0].PlaybackMs) < frac*3990 || r[0].PlaybackMs > 4100) {
			t.Errorf("%s at playhead %d ms, want from %v ms to the end of the video", q, r[0].PlaybackMs, frac*4000)
		}
	}
}
