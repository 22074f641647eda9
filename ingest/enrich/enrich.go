// Package enrich derives what ingest stores about the viewer: device class, OS and browser families from the user agent, and the
// country from a MaxMind-format database.
package enrich

import (
	"unsafe"

	useragent "github.com/medama-io/go-useragent"
	"github.com/medama-io/go-useragent/agents"

	"github.com/adtracker/adtracker/ingest/event"
)

// Enricher fills Device, OS and Browser of events from their user agent and Country from their address. It is safe for
// concurrent use and allocates nothing per event.
//
// The user agent is parsed by github.com/medama-io/go-useragent (a trie, ~0.4 µs and no allocation per user agent) into an
// Agent word; the screener keeps that word in its user-agent cache next to its own verdict (ingest/screen), so a known user
// agent costs one hash and one cache probe for both. Families are the parser's names ("Chrome", "Safari", "Android", "iOS",
// "MacOS", "Windows"; a family this table does not know, from a newer parser, is stored ""); the device class is desktop, mobile,
// tablet or tv, and other for a user agent the parser does not place (bots, HTTP libraries, media frameworks). An empty user
// agent leaves all three unknown (stored "").
//
// There is no Enrich(e) of its own: a parse per event would cost ~0.4 µs, so every caller goes through a cache of Agent's word.
type Enricher struct {
	parser *useragent.Parser
	geo    *Geo
}

// New returns an enricher; geo may be nil (country left empty).
func New(geo *Geo) *Enricher {
	return &Enricher{parser: useragent.NewParser(), geo: geo}
}

// Agent parses ua into a word for Apply; the same user agent always gives the same word, and an empty one 0 (nothing known).
// The word uses its low 24 bits only and Apply reads only those, so a cache may keep its own bits above them.
func (en *Enricher) Agent(ua []byte) uint64 {
	if len(ua) == 0 {
		return 0
	}
	return en.parse(ua)
}

// Apply sets e's device class and families from agent (Agent's word for e's user agent) and its country from its address.
func (en *Enricher) Apply(e *event.Event, agent uint64) {
	apply(e, agent)
	e.Country = [2]byte{}
	if en.geo != nil {
		e.Country = en.geo.Country(e.IP)
	}
}

// A parsed user agent packs into a word: device | os index << 8 | browser index << 16.
func pack(d event.Device, os, browser int) uint64 {
	return uint64(d) | uint64(os)<<8 | uint64(browser)<<16
}

func apply(e *event.Event, v uint64) {
	e.Device = event.Device(v & 0xff)
	e.SetOS(osNames[(v>>8)&0xff])
	e.SetBrowser(browserNames[(v>>16)&0xff])
}

// parse runs the parser. A family this table does not know (a newer parser) is stored as unknown ("").
func (en *Enricher) parse(ua []byte) uint64 {
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
	return pack(d, index(osNames, string(r.OS())), index(browserNames, string(r.Browser())))
}

// index is s's position in names; 0 (unknown) when it is not there.
func index(names []string, s string) int {
	for i, n := range names {
		if n == s {
			return i
		}
	}
	return 0
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
