package ingest

import (
	"strings"
	"testing"

	"github.com/adtracker/adtracker/ingest/decode"
	"github.com/adtracker/adtracker/ingest/event"
)

// Server-side ad insertion: a trusted stitcher's X-Device-IP / X-Device-User-Agent become the stored address and user agent — on
// pixels, single JSON events and /c/ — and an untrusted peer sending the same headers changes nothing.
func TestSSAIDeviceHeaders(t *testing.T) {
	const stitcherUA = "stitcher/1.0"
	const viewerUA = "Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) viewer"
	requests := []struct {
		name, method, uri, body string
	}{
		{"pixel", "GET", "/t/start?ad_id=1", ""},
		{"single", "POST", "/ads/impression", `{"ad_id":1}`},
		{"click redirect", "GET", "/c/1", ""},
	}
	for _, rq := range requests {
		// The peer is 192.0.2.10: trusted, another proxy trusted only, or no trusted proxies at all.
		for _, proxies := range [][]string{{"192.0.2.0/24"}, {"10.0.0.0/8"}, nil} {
			trusted := len(proxies) > 0 && proxies[0] == "192.0.2.0/24"
			q := &fakeQueue{}
			r := newTestHandlers(q, proxies...)
			rep := do(r, rq.method, rq.uri, "application/json", rq.body, "X-Device-IP", "198.51.100.23", "X-Device-User-Agent", viewerUA,
				"User-Agent", stitcherUA)
			if rep.status >= 400 || len(q.events) != 1 {
				t.Fatalf("%s: %d %s", rq.name, rep.status, rep.body)
			}
			e := q.events[0]
			wantIP, wantUA := "198.51.100.23", viewerUA
			if !trusted {
				wantIP, wantUA = "192.0.2.10", stitcherUA
			}
			if e.IPString() != wantIP || string(e.UA()) != wantUA {
				t.Errorf("%s, trusted peer %v: stored %s %q, want %s %q", rq.name, trusted, e.IPString(), e.UA(), wantIP, wantUA)
			}
		}
	}
}

// What the event itself names wins over the headers (a batch from a stitcher carries each viewer's address), and a trusted peer's
// X-Device-IP that is not an address is refused on the tracking routes — the stitcher's own address is not the viewer's — while /c/
// still redirects and records the request's address.
func TestSSAIEdgeCases(t *testing.T) {
	q := &fakeQueue{}
	r := newTestHandlers(q, "192.0.2.0/24")
	do(r, "POST", "/ads/impression", "application/json", `{"ad_id":1,"ip":"203.0.113.5","user_agent":"own"}`,
		"X-Device-IP", "198.51.100.23", "X-Device-User-Agent", "header")
	if e := q.events[0]; e.IPString() != "203.0.113.5" || string(e.UA()) != "own" {
		t.Errorf("event fields lost to headers: %s %q", e.IPString(), e.UA())
	}
	for _, uri := range []string{"/t/start?ad_id=1", "/ads/impression"} {
		q.events = nil
		method := "GET"
		if uri == "/ads/impression" {
			method = "POST"
		}
		rep := do(r, method, uri, "application/json", `{"ad_id":1}`, "X-Device-IP", "not-an-ip")
		if rep.status != 400 || len(q.events) != 0 || !strings.Contains(rep.body, `"field":"X-Device-IP"`) {
			t.Errorf("%s with a bad X-Device-IP: %d %s, %d stored", uri, rep.status, rep.body, len(q.events))
		}
	}
	q.events = nil
	rep := do(r, "GET", "/c/1", "", "", "X-Device-IP", "not-an-ip")
	if rep.status != 302 || len(q.events) != 1 || q.events[0].IPString() != "192.0.2.10" {
		t.Errorf("/c/ with a bad X-Device-IP: %d, %d stored", rep.status, len(q.events))
	}
}

// A serve id on /c/ gives the click its per-serve event id, so repeated clicks of one served ad are one click in the duplicate
// window; every click is still redirected. Without sv each click is its own event.
func TestClickRedirectServeID(t *testing.T) {
	q := &fakeQueue{}
	r := newTestHandlers(q)
	const serve = "0190a6f2-1c3b-7e4d-8a5f-6b7c8d9e0f10"
	for range 2 {
		if rep := do(r, "GET", "/c/1?sv="+serve, "", ""); rep.status != 302 {
			t.Fatalf("%d", rep.status)
		}
	}
	want := decode.ServeEventID([]byte(serve), event.TypeClick, 0)
	for _, e := range q.events {
		if e.ID != want || e.Flags&event.FlagClientID == 0 {
			t.Errorf("click id %s flags %d, want %s with FlagClientID", e.ID, e.Flags, want)
		}
	}
	do(r, "GET", "/c/1?sv=[ADSERVINGID]", "", "")
	do(r, "GET", "/c/1", "", "")
	if a, b := q.events[2], q.events[3]; a.ID == b.ID || a.Flags&event.FlagClientID != 0 || b.Flags&event.FlagClientID != 0 {
		t.Errorf("clicks without a serve id: %s/%d %s/%d", a.ID, a.Flags, b.ID, b.Flags)
	}
}

// In a batch the request's headers are read once and given to every item that leaves the address or user agent out (the
// handler keeps them for the request); an item's own fields still win, before and after such items, and a trusted stitcher's
// bad X-Device-IP refuses exactly the items that need it.
func TestBatchItemsShareTheRequestsViewer(t *testing.T) {
	q := &fakeQueue{}
	r := newTestHandlers(q, "192.0.2.0/24")
	body := `{"type":"impression","ad_id":1,"ip":"203.0.113.5","user_agent":"own one"}
{"type":"impression","ad_id":1}
{"type":"impression","ad_id":1,"user_agent":"own two"}
{"type":"impression","ad_id":1,"ip":"203.0.113.6"}
`
	rep := do(r, "POST", "/events", "application/x-ndjson", body, "X-Device-IP", "198.51.100.23",
		"X-Device-User-Agent", "viewer\x7f tv")
	if rep.status != 202 || len(q.events) != 4 {
		t.Fatalf("%d %s, %d stored", rep.status, rep.body, len(q.events))
	}
	want := [][2]string{{"203.0.113.5", "own one"}, {"198.51.100.23", "viewer  tv"}, {"198.51.100.23", "own two"}, {"203.0.113.6", "viewer  tv"}}
	for i, e := range q.events {
		if e.IPString() != want[i][0] || string(e.UA()) != want[i][1] {
			t.Errorf("item %d: %s %q, want %s %q", i, e.IPString(), e.UA(), want[i][0], want[i][1])
		}
	}
	q.events = nil
	rep = do(r, "POST", "/events", "application/x-ndjson", body, "X-Device-IP", "not-an-ip", "User-Agent", "sdk/1")
	if rep.status != 202 || len(q.events) != 2 || !strings.Contains(rep.body, `{"index":1,"error":"X-Device-IP is not an IP address","field":"X-Device-IP"},{"index":2,`) {
		t.Fatalf("bad X-Device-IP: %d %s, %d stored", rep.status, rep.body, len(q.events))
	}
	if a, b := q.events[0], q.events[1]; a.IPString() != "203.0.113.5" || b.IPString() != "203.0.113.6" || string(b.UA()) != "sdk/1" {
		t.Errorf("bad X-Device-IP: stored %s %q and %s %q", a.IPString(), a.UA(), b.IPString(), b.UA())
	}
}
