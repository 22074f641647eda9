package enrich

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/internal/geotest"
)

var userAgents = []struct {
	name, ua    string
	device      event.Device
	os, browser string
}{
	{"chrome windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", event.DeviceDesktop, "Windows", "Chrome"},
	{"edge windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0", event.DeviceDesktop, "Windows", "Edge"},
	{"firefox linux", "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0", event.DeviceDesktop, "Linux", "Firefox"},
	{"firefox mac", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:125.0) Gecko/20100101 Firefox/125.0", event.DeviceDesktop, "MacOS", "Firefox"},
	{"safari mac", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15", event.DeviceDesktop, "MacOS", "Safari"},
	{"safari iphone", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", event.DeviceMobile, "iOS", "Safari"},
	{"safari ipad", "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", event.DeviceTablet, "iOS", "Safari"},
	{"chrome android", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36", event.DeviceMobile, "Android", "Chrome"},
	{"samsung tizen tv", "Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/538.1 (KHTML, like Gecko) Version/6.0 TV Safari/538.1", event.DeviceTV, "Linux", ""},
	{"roku", "Roku/DVP-12.5 (12.5.0.4174-56)", event.DeviceTV, "", ""},
	{"googlebot", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", event.DeviceOther, "", ""},
	{"bingbot", "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", event.DeviceOther, "", ""},
	{"curl", "curl/8.5.0", event.DeviceOther, "", ""},
	{"python-requests", "python-requests/2.31.0", event.DeviceOther, "", ""},
	{"empty", "", event.DeviceUnknown, "", ""},
}

// enrichOnce is what the screener does on a cache miss: parse, then apply.
func enrichOnce(en *Enricher, e *event.Event) { en.Apply(e, en.Agent(e.UA())) }

func TestUserAgentTable(t *testing.T) {
	en := New(nil)
	for _, u := range userAgents {
		e := &event.Event{}
		e.SetUserAgent([]byte(u.ua))
		e.SetOS("stale") // a reused event's old values never survive
		e.Device = event.DeviceTV
		enrichOnce(en, e)
		if e.Device != u.device || string(e.OSFamily()) != u.os || string(e.BrowserFamily()) != u.browser || e.CountryCode() != nil {
			t.Errorf("%s: device %q os %q browser %q country %q; want %q %q %q", u.name,
				e.Device, e.OSFamily(), e.BrowserFamily(), e.CountryCode(), u.device, u.os, u.browser)
		}
		// A cache may keep its own bits above the word's 24: Apply ignores them.
		if w := en.Agent(e.UA()); w>>24 != 0 {
			t.Errorf("%s: Agent word %#x uses more than 24 bits", u.name, w)
		} else {
			f := &event.Event{}
			f.SetUserAgent([]byte(u.ua))
			en.Apply(f, w|0xff<<24|3<<32)
			if f.Device != e.Device || string(f.OSFamily()) != string(e.OSFamily()) || string(f.BrowserFamily()) != string(e.BrowserFamily()) {
				t.Errorf("%s: Apply with high bits set gives %q %q %q", u.name, f.Device, f.OSFamily(), f.BrowserFamily())
			}
		}
	}
}

// Every family the parser can name fits the event's field and has a cache index.
func TestFamilyTables(t *testing.T) {
	for _, names := range [][]string{osNames, browserNames} {
		if len(names) > 256 || names[0] != "" {
			t.Fatalf("table %v", names)
		}
		for _, n := range names {
			if len(n) > event.MaxFamilyLen {
				t.Errorf("%q longer than %d", n, event.MaxFamilyLen)
			}
		}
	}
}

// writeMMDB writes a small country database: what a GeoLite2/DB-IP Country file holds for these networks, and the odd cases.
func writeMMDB(t testing.TB) string {
	return geotest.Write(t, map[string]mmdbtype.Map{
		"203.0.113.0/24":    geotest.Country("NZ"),
		"198.51.100.0/25":   geotest.Country("de"),                                                   // lower case in the file: stored upper case
		"198.51.100.128/25": {"registered_country": mmdbtype.Map{"iso_code": mmdbtype.String("FR")}}, // no country: the registered one
		"192.0.2.0/24":      geotest.Country("XYZ"),                                                  // not a code: unknown
		"2001:db8::/32":     geotest.Country("JP"),
		"10.0.0.0/8":        {"city": mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String("Nowhere")}}}, // no country at all
	})
}

func TestCountryFromMMDB(t *testing.T) {
	geo, err := OpenGeo(writeMMDB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer geo.Close()
	if geo.DatabaseType() != "Test-Country" {
		t.Fatalf("type %q", geo.DatabaseType())
	}
	en := New(geo)
	for ip, want := range map[string]string{
		"203.0.113.7":        "NZ",
		"::ffff:203.0.113.8": "NZ",
		"198.51.100.1":       "DE",
		"198.51.100.200":     "FR",
		"192.0.2.1":          "",
		"2001:db8:1::1":      "JP",
		"10.1.2.3":           "",
		"8.8.8.8":            "",
		"2001:db9::1":        "",
	} {
		for round := 0; round < 2; round++ { // decoded, then from the record cache
			e := &event.Event{IP: netip.MustParseAddr(ip).As16(), Country: [2]byte{'Z', 'Z'}}
			enrichOnce(en, e)
			if string(e.CountryCode()) != want {
				t.Errorf("%s (round %d): country %q, want %q", ip, round, e.CountryCode(), want)
			}
		}
	}
	if _, err := OpenGeo(filepath.Join(t.TempDir(), "missing.mmdb")); err == nil {
		t.Fatal("missing database opened")
	}
	bad := filepath.Join(t.TempDir(), "bad.mmdb")
	if err := os.WriteFile(bad, []byte("not a database"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenGeo(bad); err == nil {
		t.Fatal("garbage opened as a database")
	}
}

// Whatever bytes the user agent holds, enrichment stays within the event's fields, and Agent's word (what the screener caches)
// is the same every time.
func FuzzEnrich(f *testing.F) {
	for _, u := range userAgents {
		f.Add([]byte(u.ua))
	}
	f.Add([]byte("\xff\xfe(((((;;;;Mobile/Android))))"))
	en := New(nil)
	f.Fuzz(func(t *testing.T, ua []byte) {
		var a, b event.Event
		a.SetUserAgent(ua)
		b.SetUserAgent(ua)
		enrichOnce(en, &a)
		en.Apply(&b, en.Agent(b.UA()))
		if a.Device >= event.NumDevices || (len(a.UA()) == 0) != (a.Device == event.DeviceUnknown) {
			t.Fatalf("%q: device %d", ua, a.Device)
		}
		if a.Device != b.Device || string(a.OSFamily()) != string(b.OSFamily()) || string(a.BrowserFamily()) != string(b.BrowserFamily()) {
			t.Fatalf("%q: the word's answer differs", ua)
		}
	})
}
