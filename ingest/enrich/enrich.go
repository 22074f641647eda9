// Package enrich derives what ingest stores about the viewer: device class, OS and browser families from the user agent, and the
// country from a MaxMind-format database.
package enrich

import (
	"unsafe"

	useragent "github.com/medama-io/go-useragent"
	"github.com/medama-io/go-useragent/agents"

	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/internal/uacache"
)

// DefaultUACacheEntries is the size of the parsed user-agent cache: 16 bytes each, 256 KiB.
const DefaultUACacheEntries = 16384

// Enricher fills Device, OS, Browser and Country of events. It is safe for concurrent use and allocates nothing per event.
//
// The user agent is parsed by github.com/medama-io/go-useragent (a trie, ~0.4 µs and no allocation per user agent) and the
// result kept in a cache keyed by the user agent's hash, so a known user agent costs one hash and one load. Families are the
// parser's names ("Chrome", "Safari", "Android", "iOS", "MacOS", "Windows"); the device class is desktop, mobile, tablet or tv,
// and other for a user agent the parser does not place (bots, HTTP libraries, media frameworks). An empty user agent leaves
// all three unknown (stored "").
type Enricher struct {
	parser *useragent.Parser
	cache  *uacache.Cache
	geo    *Geo
}

// New returns an enricher; geo may be nil (country left empty). entries sizes the user-agent cache (0: DefaultUACacheEntries).
func New(geo *Geo, entries int) *Enricher {
	if entries <= 0 {
		entries = DefaultUACacheEntries
	}
	return &Enricher{parser: useragent.NewParser(), cache: uacache.New(entries), geo: geo}
}

// Enrich sets e's device class, OS and browser families from its user agent and its country from its address.
func (en *Enricher) Enrich(e *event.Event) {
	e.Device, e.OSLen, e.BrowserLen = event.DeviceUnknown, 0, 0
	if ua := e.UA(); len(ua) > 0 {
		h := en.cache.Hash(ua)
		v, ok := en.cache.Get(h)
		if !ok {
			v, ok = en.parse(ua)
			if ok {
				en.cache.Put(h, v)
			}
		}
		apply(e, v)
	}
	e.Country = [2]byte{}
	if en.geo != nil {
		e.Country = en.geo.Country(e.IP)
	}
}

// A parsed user agent packs into a cache word: device | os index << 8 | browser index << 16.
func pack(d event.Device, os, browser int) uint64 {
	return uint64(d) | uint64(os)<<8 | uint64(browser)<<16
}

func apply(e *event.Event, v uint64) {
	e.Device = event.Device(v & 0xff)
	e.SetOS(osNames[(v>>8)&0xff])
	e.SetBrowser(browserNames[(v>>16)&0xff])
}

// parse runs the parser; ok is false when it named a family this table does not know (a newer parser), which is then not cached
// but still stored, as other.
func (en *Enricher) parse(ua []byte) (uint64, bool) {
	// The parser only reads its argument during the call (a walk of its trie), so the bytes need no copy into a string.
	r := en.parser.Parse(unsafe.String(unsafe.SliceData(ua), len(ua))) //nolint:gosec // G103: read-only view for the call's duration; TestEnrichAllocatesNothing

	d := event.DeviceOther
	switch r.Device() {
	case agents.DeviceDesktop:
		d = event.DeviceDesktop
	case agents.DeviceMobile:
		d = event.DeviceMobile
	case agents.DeviceTablet:
		d = event.DeviceTablet
	case agents.DeviceTV:
		d = event.DeviceTV
	}
	os, okOS := index(osNames, string(r.OS()))
	br, okBr := index(browserNames, string(r.Browser()))
	return pack(d, os, br), okOS && okBr
}

func index(names []string, s string) (int, bool) {
	for i, n := range names {
		if n == s {
			return i, true
		}
	}
	return 0, false
}

// The parser's families (agents constants); index 0 is unknown.
var (
	osNames = []string{"",
		string(agents.OSAndroid), string(agents.OSChromeOS), string(agents.OSIOS), string(agents.OSLinux),
		string(agents.OSFreeBSD), string(agents.OSOpenBSD), string(agents.OSMacOS), string(agents.OSWindows),
	}
	browserNames = []string{"",
		string(agents.BrowserAndroid), string(agents.BrowserChrome), string(agents.BrowserEdge), string(agents.BrowserFirefox),
		string(agents.BrowserIE), string(agents.BrowserOpera), string(agents.BrowserOperaMini), string(agents.BrowserSafari),
		string(agents.BrowserVivaldi), string(agents.BrowserSilk), string(agents.BrowserSamsung), string(agents.BrowserFalkon),
		string(agents.BrowserNintendo), string(agents.BrowserYandex), string(agents.BrowserHuawei),
	}
)
