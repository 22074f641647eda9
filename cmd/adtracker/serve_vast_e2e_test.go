package main

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/valyala/fasthttp"

	"github.com/adtracker/adtracker/ingest/decode"
	"github.com/adtracker/adtracker/ingest/event"
)

// cdataURL finds the URLs of a VAST document with the element or Tracking event they belong to.
var cdataURL = regexp.MustCompile(`<(\w+)(?: event="(\w+)")?(?: offset="([0-9:.]+)")?[^>]*><!\[CDATA\[(.*?)\]\]>`)

// schemaTypes reads the event types the events.type Enum8 of this ClickHouse holds: the VAST 4.3 types only once their migration
// ran, so the test fires every type this schema can store and no more.
func schemaTypes(t *testing.T, s *stack) map[event.Type]bool {
	t.Helper()
	var def string
	if err := s.conn().QueryRow(context.Background(),
		"SELECT type FROM system.columns WHERE database = 'adtracker' AND table = 'events' AND name = 'type'").Scan(&def); err != nil {
		t.Fatal(err)
	}
	out := map[event.Type]bool{}
	for _, typ := range event.Types() {
		if strings.Contains(def, "'"+typ.String()+"'") {
			out[typ] = true
		}
	}
	return out
}

type firedPixel struct {
	url string
	typ event.Type
	off uint32
}

// vastPixels fetches one VAST answer and returns its serve id and every pixel URL in it with macros expanded, plus the ClickThrough.
func vastPixels(t *testing.T, client *fasthttp.Client, uri string) (serve string, pixels []firedPixel, click string) {
	t.Helper()
	status, body, err := client.Get(nil, uri)
	if err != nil || status != 200 {
		t.Fatalf("GET %s: %d %v", uri, status, err)
	}
	m := regexp.MustCompile(`<AdServingId>([^<]+)</AdServingId>`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("no AdServingId in %s", body)
	}
	serve = string(m[1])
	expand := strings.NewReplacer("[TIMESTAMP]", url.QueryEscape(time.Now().UTC().Add(-time.Second).Format("2006-01-02T15:04:05.000Z")),
		"[ADPLAYHEAD]", "00:00:03.250", "[CACHEBUSTING]", fmt.Sprintf("%08d", time.Now().UnixNano()%1e8), "[ERRORCODE]", "405")
	for _, g := range cdataURL.FindAllSubmatch(body, -1) {
		el, name, offset, u := string(g[1]), string(g[2]), string(g[3]), string(g[4])
		switch el {
		case "ClickThrough":
			click = u
			continue
		case "MediaFile":
			continue
		}
		if !strings.Contains(u, "/t/") {
			t.Fatalf("%s URL %s is not a pixel", el, u)
		}
		if name == "" {
			name = el // Impression, Error, Viewable, NotViewable, ViewUndetermined
		}
		typ := event.ParseType([]byte(strings.ToLower(name[:1]) + name[1:]))
		if !typ.Valid() {
			t.Fatalf("element %s event %q names no type", el, name)
		}
		var off uint32
		if offset != "" {
			tm, err := time.Parse("15:04:05.000", offset)
			if err != nil {
				t.Fatal(err)
			}
			off = uint32(tm.Hour()*3600000 + tm.Minute()*60000 + tm.Second()*1000)
		}
		pixels = append(pixels, firedPixel{url: expand.Replace(u), typ: typ, off: off})
	}
	if click == "" || len(pixels) < 20 {
		t.Fatalf("ClickThrough %q and %d pixels in %s", click, len(pixels), body)
	}
	return serve, pixels, click
}

// The serving side end to end, against the real binary, Postgres and ClickHouse: /vast/{id} and /vast answer documents whose every
// tracking URL (the types this schema stores) and ClickThrough are accepted; firing them all twice — and once more after a clean
// restart — stores each exactly once, with the event id derived from the serve id. http.public_url is unset here, so the URLs come
// from the Host header. A trusted stitcher's X-Device-IP / X-Device-User-Agent are what is stored.
func TestE2EVASTServeFireTwiceStoredOnce(t *testing.T) {
	s := newStack(t, "ADTRACKER_HTTP_TRUSTED_PROXIES=127.0.0.1")
	s.start()
	storable := schemaTypes(t, s)
	client := &fasthttp.Client{}
	type serveCase struct {
		serve  string
		pixels []firedPixel
		click  string
	}
	var serves []serveCase
	for _, path := range []string{"/vast/1", "/vast/2", "/vast"} {
		serve, pixels, click := vastPixels(t, client, s.url+path)
		if !strings.HasPrefix(click, s.url+"/c/") || !strings.HasSuffix(click, "?sv="+serve) {
			t.Fatalf("ClickThrough %s (public_url unset: from the Host header)", click)
		}
		serves = append(serves, serveCase{serve, pixels, click})
	}
	if serves[0].serve == serves[1].serve {
		t.Fatal("two answers share a serve id")
	}
	want := map[event.UUID]event.Type{}
	fire := func(round int) {
		t.Helper()
		for _, sc := range serves {
			for _, p := range sc.pixels {
				if !storable[p.typ] {
					continue
				}
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				req.SetRequestURI(p.url)
				req.Header.Set("X-Device-IP", "198.51.100.44")
				req.Header.Set("X-Device-User-Agent", "ssai-viewer/1")
				if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
					t.Fatalf("round %d: %s: %v %d %s", round, p.url, err, resp.StatusCode(), resp.Body())
				}
				fasthttp.ReleaseRequest(req)
				fasthttp.ReleaseResponse(resp)
				want[decode.ServeEventID([]byte(sc.serve), p.typ, p.off)] = p.typ
			}
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			req.SetRequestURI(sc.click) // Do does not follow the redirect
			if err := client.Do(req, resp); err != nil || resp.StatusCode() != 302 || len(resp.Header.Peek("Location")) == 0 {
				t.Fatalf("round %d: click %s: %d %v", round, sc.click, resp.StatusCode(), err)
			}
			fasthttp.ReleaseRequest(req)
			fasthttp.ReleaseResponse(resp)
			want[decode.ServeEventID([]byte(sc.serve), event.TypeClick, 0)] = event.TypeClick
		}
	}
	fire(1)
	fire(2)
	conn := s.conn()
	ctx := context.Background()
	count := func() uint64 {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM events").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitRows := func(n uint64) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); count() < n && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond) // would an extra row still arrive?
		if got := count(); got != n {
			t.Fatalf("%d rows, want exactly %d (one per pixel per serve)", got, n)
		}
	}
	waitRows(uint64(len(want)))
	// A clean restart keeps the duplicate window (data_dir/dedup): the same URLs fired again store nothing.
	if code, _ := s.term(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	s.start()
	fire(3)
	waitRows(uint64(len(want)))

	rows, err := conn.Query(ctx, "SELECT event_id, toString(type), IPv6NumToString(ip), user_agent, playback_ms FROM events")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id uuid.UUID
		var typ, ip, ua string
		var pb uint32
		if err := rows.Scan(&id, &typ, &ip, &ua, &pb); err != nil {
			t.Fatal(err)
		}
		wt, ok := want[event.UUID(id)]
		if !ok || wt.String() != typ {
			t.Errorf("stored %s %s is no fired pixel (want type %v)", event.UUID(id), typ, wt)
		}
		if typ != "click" && (ip != "::ffff:198.51.100.44" || ua != "ssai-viewer/1") {
			t.Errorf("%s: stored %s %q, want the X-Device-* viewer", typ, ip, ua)
		}
		if typ == "progress" && pb%1000 != 0 {
			t.Errorf("progress stored playback %d, want its whole-second offset", pb)
		}
	}
	t.Logf("%d event types storable by this schema; %d distinct events fired over 3 serves, each stored once", len(storable), len(want))
	if len(want) < 3*(len(storable)-1) {
		t.Errorf("only %d distinct events fired for %d storable types", len(want), len(storable))
	}
}
