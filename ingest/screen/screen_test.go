package screen

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	useragent "github.com/medama-io/go-useragent"
	"github.com/valyala/fasthttp"

	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/internal/testenv"
)

const chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"

var now = time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC).Unix()

func newScreener(t testing.TB, cfg Config) *Screener {
	t.Helper()
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ev(typ event.Type, ad uint64, ip, ua string) *event.Event {
	e := &event.Event{Type: typ, AdID: ad, ReceiveTime: now, EventTime: now}
	e.IP = netip.MustParseAddr(ip).As16()
	e.SetUserAgent([]byte(ua))
	return e
}

func request(hdr ...string) *fasthttp.RequestCtx {
	ctx := new(fasthttp.RequestCtx)
	for i := 0; i+1 < len(hdr); i += 2 {
		ctx.Request.Header.Add(hdr[i], hdr[i+1])
	}
	return ctx
}

func TestUserAgentTable(t *testing.T) {
	s := newScreener(t, Config{})
	for _, u := range userAgents {
		for round := 0; round < 2; round++ { // computed, then from the cache
			e := ev(event.TypeImpression, 1, "203.0.113.5", u.ua)
			s.Screen(request(), e)
			want := event.IVTNone
			if u.crawler {
				want = event.IVTCrawler
			}
			if e.IVT != want {
				t.Errorf("%s (round %d): %s, want %s", u.name, round, e.IVT, want)
			}
		}
	}
}

// The two candidate lists on the same table: crawlerdetect (a regular expression over ~1,400 maintained patterns) and the bot
// device of go-useragent (a trie, already run for enrichment). They agree on browsers and named crawlers; go-useragent misses
// HTTP libraries that do not say "bot" (Wget, okhttp, fasthttp), which is why the screen uses crawlerdetect.
func TestCrawlerListsAgreement(t *testing.T) {
	p := useragent.NewParser()
	var missed []string
	for _, u := range userAgents {
		cd := newAgentVerdicts(nil, 16, nil).compute([]byte(u.ua)) == agentCrawler
		bot := p.Parse(u.ua).IsBot()
		switch {
		case cd != u.crawler:
			t.Errorf("%s: crawlerdetect says %v", u.name, cd)
		case bot && !cd:
			t.Errorf("%s: go-useragent flags a bot crawlerdetect does not", u.name)
		case cd && !bot:
			missed = append(missed, u.name)
		}
	}
	if strings.Join(missed, ",") != "wget,okhttp,fasthttp" {
		t.Errorf("go-useragent's bot flag misses %v", missed)
	}
}

func TestDenyUserAgents(t *testing.T) {
	s := newScreener(t, Config{DenyUserAgents: []string{"  BadPlayer/ ", "", "scanner"}})
	for ua, want := range map[string]event.IVT{
		"badplayer/1.0":                     event.IVTDenyUserAgent,
		"Mozilla/5.0 BADPLAYER/2 (Linux)":   event.IVTDenyUserAgent,
		"Mozilla/5.0 (compatible; Scanner)": event.IVTDenyUserAgent,
		"curl/8.0 scanner":                  event.IVTDenyUserAgent, // the operator's list wins over the crawler list
		"BadPlayer 1.0":                     event.IVTNone,          // substring includes the slash
		chrome:                              event.IVTNone,
	} {
		e := ev(event.TypeImpression, 1, "203.0.113.5", ua)
		s.Screen(nil, e)
		if e.IVT != want {
			t.Errorf("%q: %s, want %s", ua, e.IVT, want)
		}
	}
}

func TestPrefetchHeaders(t *testing.T) {
	s := newScreener(t, Config{})
	f := func(want event.IVT, hdr ...string) {
		t.Helper()
		e := ev(event.TypeImpression, 1, "203.0.113.5", chrome)
		s.Screen(request(hdr...), e)
		if e.IVT != want {
			t.Errorf("%q: %s, want %s", hdr, e.IVT, want)
		}
	}
	f(event.IVTPrefetch, "Sec-Purpose", "prefetch")
	f(event.IVTPrefetch, "Sec-Purpose", "prefetch;prerender")
	f(event.IVTPrefetch, "sec-purpose", " Prefetch; anonymous-client-ip")
	f(event.IVTPrefetch, "Purpose", "prefetch")
	f(event.IVTPrefetch, "X-Moz", "prefetch")
	f(event.IVTPrefetch, "X-Purpose", "preview")
	f(event.IVTNone, "Purpose", "preview") // preview is X-Purpose's word only
	f(event.IVTNone, "Sec-Purpose", "prefetched")
	f(event.IVTNone, "X-Moz", "")
	f(event.IVTNone, "Sec-Fetch-Dest", "image")
	f(event.IVTNone)
}

func TestDenyCIDRs(t *testing.T) {
	s := newScreener(t, Config{DenyCIDRs: []string{"198.51.100.0/24", "2001:db8:dc::/48", "192.0.2.77", "10.0.0.0/8", "10.1.0.0/16"}})
	for ip, want := range map[string]event.IVT{
		"198.51.100.1":     event.IVTDenyIP,
		"198.51.100.255":   event.IVTDenyIP,
		"198.51.101.0":     event.IVTNone,
		"192.0.2.77":       event.IVTDenyIP,
		"192.0.2.78":       event.IVTNone,
		"10.200.3.4":       event.IVTDenyIP,
		"2001:db8:dc:1::5": event.IVTDenyIP,
		"2001:db8:dd::5":   event.IVTNone,
		"203.0.113.5":      event.IVTNone,
	} {
		e := ev(event.TypeImpression, 1, ip, "curl/8.0") // a crawler too: deny_ip comes first
		s.Screen(nil, e)
		if want == event.IVTNone {
			want = event.IVTCrawler
		}
		if e.IVT != want {
			t.Errorf("%s: %s, want %s", ip, e.IVT, want)
		}
	}
	if _, err := New(Config{DenyCIDRs: []string{"10.0.0.0/33"}}, nil); err == nil || !strings.Contains(err.Error(), "ivt.deny_cidrs") {
		t.Fatalf("bad CIDR: %v", err)
	}
}

// One reason per event, in the documented order.
func TestPrecedence(t *testing.T) {
	s := newScreener(t, Config{DenyCIDRs: []string{"198.51.100.0/24"}, DenyUserAgents: []string{"evil"}, ClickWindow: time.Hour, ClickTableBytes: 4096})
	pre := []string{"Sec-Purpose", "prefetch"}
	f := func(ip, ua string, hdr []string, want event.IVT) {
		t.Helper()
		e := ev(event.TypeClick, 9, ip, ua)
		e.SetViewerID([]byte("same-viewer"))
		s.Screen(request(hdr...), e)
		if e.IVT != want {
			t.Errorf("%s %q %q: %s, want %s", ip, ua, hdr, e.IVT, want)
		}
	}
	f("203.0.113.1", chrome, nil, event.IVTNone) // the viewer's counted click
	f("198.51.100.1", "evil curl/8.0", pre, event.IVTDenyIP)
	f("203.0.113.1", "evil curl/8.0", pre, event.IVTDenyUserAgent)
	f("203.0.113.1", "curl/8.0", pre, event.IVTCrawler)
	f("203.0.113.1", chrome, pre, event.IVTPrefetch)
	f("203.0.113.1", chrome, nil, event.IVTDuplicateClick)
}

func TestDisabledOnlyEnriches(t *testing.T) {
	en := &countingEnricher{}
	s, err := New(Config{Disabled: true, DenyCIDRs: []string{"0.0.0.0/0"}, ClickWindow: time.Hour, ClickTableBytes: 64}, en)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		e := ev(event.TypeClick, 1, "203.0.113.1", "curl/8.0")
		e.IVT = event.IVTCrawler
		s.Screen(request("Sec-Purpose", "prefetch"), e)
		if e.IVT != event.IVTNone {
			t.Fatalf("disabled screen flagged %s", e.IVT)
		}
	}
	if en.applies != 3 {
		t.Fatalf("enriched %d of 3", en.applies)
	}
}

// Only stored invalid events are counted, once each, under their reason.
func TestSettleCountsStoredInvalid(t *testing.T) {
	s := newScreener(t, Config{})
	before := testenv.CounterValue(t, invalid[event.IVTCrawler])
	for _, stored := range []bool{true, false, true} {
		e := ev(event.TypeImpression, 1, "203.0.113.5", "curl/8.0")
		s.Screen(nil, e)
		s.Settle(e, stored)
	}
	e := ev(event.TypeImpression, 1, "203.0.113.5", chrome)
	s.Screen(nil, e)
	s.Settle(e, true)
	if got := testenv.CounterValue(t, invalid[event.IVTCrawler]) - before; got != 2 {
		t.Fatalf("crawler counter moved by %v, want 2", got)
	}
}

// countingEnricher is an Enricher whose word is the user agent's length (Apply stores it in PlaybackMs), counting the parses
// the screener asks for and the events it enriches.
type countingEnricher struct{ parses, applies int }

func (c *countingEnricher) Agent(ua []byte) uint64 {
	if len(ua) == 0 {
		panic("Agent called for an empty user agent")
	}
	c.parses++
	return uint64(len(ua))
}

func (c *countingEnricher) Apply(e *event.Event, agent uint64) {
	c.applies++
	e.PlaybackMs = uint32(agent)
}

// One cache holds both the list verdict and the enricher's word: a user agent is parsed once and matched against the lists at
// most once, and every later event with it gets both answers from that entry. The lists run only when a verdict is needed: not
// with screening off (enrichment still runs, nothing is flagged), and not for events from a denied address (deny_ip needs no
// user agent), so a flood from a denied range with ever new user agents costs parses, not list matches.
func TestVerdictAndEnrichmentShareOneCacheEntry(t *testing.T) {
	const bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
	cases := []struct {
		ua   string
		want event.IVT
	}{{chrome, event.IVTNone}, {bot, event.IVTCrawler}, {"BadPlayer/2", event.IVTDenyUserAgent}, {"", event.IVTNone}}
	for _, off := range []bool{false, true} {
		en := &countingEnricher{}
		s, err := New(Config{Disabled: off, DenyUserAgents: []string{"badplayer"}, DenyCIDRs: []string{"198.51.100.0/24"}}, en)
		if err != nil {
			t.Fatal(err)
		}
		matched := testenv.CounterValue(t, cacheMisses)
		for round := 0; round < 3; round++ {
			// From a denied address first: flagged deny_ip (with screening on) and enriched, the lists not run.
			for _, ip := range []string{"198.51.100.7", "203.0.113.5"} {
				for _, c := range cases {
					e := ev(event.TypeImpression, 1, ip, c.ua)
					s.Screen(request(), e)
					want := c.want
					switch {
					case off:
						want = event.IVTNone
					case ip == "198.51.100.7":
						want = event.IVTDenyIP
					}
					if e.IVT != want || e.PlaybackMs != uint32(len(c.ua)) {
						t.Errorf("off=%v round %d %s %q: %s and word %d, want %s and %d", off, round, ip, c.ua, e.IVT, e.PlaybackMs, want, len(c.ua))
					}
				}
				if got := testenv.CounterValue(t, cacheMisses) - matched; round == 0 && ip == "198.51.100.7" && got != 0 {
					t.Errorf("off=%v: %v list matches for a denied address", off, got)
				}
			}
		}
		// Three distinct user agents, parsed once each (the empty one needs neither an entry nor a parse: its word is 0) and
		// matched once each with screening on, never with it off.
		wantMatched := 3.0
		if off {
			wantMatched = 0
		}
		if got := testenv.CounterValue(t, cacheMisses) - matched; en.parses != 3 || got != wantMatched {
			t.Errorf("off=%v: %d parses and %v list matches over three rounds, want 3 and %v", off, en.parses, got, wantMatched)
		}
	}
}
