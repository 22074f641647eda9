package event

// IVT is why an event is invalid traffic (the MRC's general invalid traffic), decided at ingest and stored with the event;
// IVTNone is valid traffic. An event carries one reason, the first that matched in the screen's order. Values equal the
// Enum8 values of events.ivt in ClickHouse; never renumber them.
type IVT uint8

// IVT reasons, in the order of the ClickHouse Enum8.
const (
	IVTNone IVT = iota
	// IVTCrawler: the user agent is a known crawler, bot or HTTP library.
	IVTCrawler
	// IVTPrefetch: the request says it is a prefetch (Sec-Purpose / Purpose: prefetch, X-Moz: prefetch), not a view.
	IVTPrefetch
	// IVTDenyIP: the client address is in ivt.deny_cidrs.
	IVTDenyIP
	// IVTDenyUserAgent: the user agent matches ivt.deny_user_agents.
	IVTDenyUserAgent
	// IVTDuplicateClick: the same client clicked the same ad within ivt.click_window; the first click counts.
	IVTDuplicateClick
	// NumIVT is one more than the last reason.
	NumIVT
)

var ivtNames = [NumIVT]string{"none", "crawler", "prefetch", "deny_ip", "deny_user_agent", "duplicate_click"}

// String returns the schema name of r ("duplicate_click"), or "" when r is not a known reason.
func (r IVT) String() string {
	if r >= NumIVT {
		return ""
	}
	return ivtNames[r]
}

// ParseIVT maps a schema name to its reason; ok is false for an unknown name.
func ParseIVT(s string) (IVT, bool) {
	for r := IVTNone; r < NumIVT; r++ {
		if ivtNames[r] == s {
			return r, true
		}
	}
	return 0, false
}

// Device is the device class of the viewer, from the user agent. DeviceUnknown (stored as "") means not enriched: rows stored
// before enrichment existed, and events whose user agent said nothing.
type Device uint8

// Device classes.
const (
	DeviceUnknown Device = iota
	DeviceDesktop
	DeviceMobile
	DeviceTablet
	DeviceTV
	DeviceOther
	// NumDevices is one more than the last class.
	NumDevices
)

var deviceNames = [NumDevices]string{"", "desktop", "mobile", "tablet", "tv", "other"}

// String returns the stored name of d ("mobile"); "" for DeviceUnknown or an unknown value.
func (d Device) String() string {
	if d >= NumDevices {
		return ""
	}
	return deviceNames[d]
}

// MaxFamilyLen bounds the OS and browser family names (the UA parser's names are short constants: "Chrome", "Android").
const MaxFamilyLen = 24

// OSFamily returns the OS family bytes (aliasing e).
func (e *Event) OSFamily() []byte { return e.OS[:e.OSLen] }

// BrowserFamily returns the browser family bytes (aliasing e).
func (e *Event) BrowserFamily() []byte { return e.Browser[:e.BrowserLen] }

// CountryCode returns the ISO 3166-1 alpha-2 code bytes, or nothing when unknown (aliasing e).
func (e *Event) CountryCode() []byte {
	if e.Country[0] == 0 {
		return nil
	}
	return e.Country[:]
}

// SetOS stores the OS family, truncated to MaxFamilyLen.
func (e *Event) SetOS(s string) { e.OSLen = uint8(copy(e.OS[:], s)) }

// SetBrowser stores the browser family, truncated to MaxFamilyLen.
func (e *Event) SetBrowser(s string) { e.BrowserLen = uint8(copy(e.Browser[:], s)) }

// SetCountry stores an ISO 3166-1 alpha-2 code; anything that is not two ASCII letters clears it. Letters are stored upper case.
func (e *Event) SetCountry(s string) { e.Country = ParseCountry(s) }

// ParseCountry returns an ISO 3166-1 alpha-2 code in the form Event.Country holds (upper case), or zero when s is not two ASCII
// letters.
func ParseCountry(s string) [2]byte {
	if len(s) != 2 || !isLetter(s[0]) || !isLetter(s[1]) {
		return [2]byte{}
	}
	return [2]byte{s[0] &^ 0x20, s[1] &^ 0x20}
}

func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
