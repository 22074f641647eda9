// Package event is the event model: Event, Type, UUID, their binary codec, Batch and its record format, and event ids.
package event

import (
	"encoding/hex"
	"errors"
	"net"
)

// Type is an event type. Values equal the Enum8 values of events.type in ClickHouse, so the
// batcher writes them without a lookup; never renumber them.
type Type uint8

// Event types, in the order of the ClickHouse Enum8.
const (
	TypeUnknown Type = iota
	TypeImpression
	TypeClick
	TypeStart
	TypeFirstQuartile
	TypeMidpoint
	TypeThirdQuartile
	TypeComplete
	TypeSkip
	TypePause
	TypeResume
	TypeMute
	TypeUnmute
	TypeError
	// VAST 4.3 events beyond the core set (issue 17). close is the NonLinear/companion close, close_linear the Linear one;
	// fullscreen/exit_fullscreen are VAST 3 names that 4.x players still fire; viewable, not_viewable and view_undetermined are
	// the ViewableImpression outcomes (viewability_rate = viewable / (viewable + not_viewable)).
	TypeCreativeView
	TypeLoaded
	TypeProgress
	TypeClose
	TypeCloseLinear
	TypeRewind
	TypeFullscreen
	TypeExitFullscreen
	TypePlayerExpand
	TypePlayerCollapse
	TypeOtherAdInteraction
	TypeNotUsed
	TypeViewable
	TypeNotViewable
	TypeViewUndetermined
	TypeVerificationNotExecuted
	// NumTypes is one more than the last type: the length of arrays indexed by Type.
	NumTypes
)

var typeNames = [NumTypes]string{
	"", "impression", "click", "start", "first_quartile", "midpoint", "third_quartile",
	"complete", "skip", "pause", "resume", "mute", "unmute", "error",
	"creative_view", "loaded", "progress", "close", "close_linear", "rewind", "fullscreen", "exit_fullscreen",
	"player_expand", "player_collapse", "other_ad_interaction", "not_used", "viewable", "not_viewable",
	"view_undetermined", "verification_not_executed",
}

// vastNames are the VAST spellings (the Tracking event attribute, or the element for the ViewableImpression outcomes).
var vastNames = [NumTypes]string{
	"", "impression", "click", "start", "firstQuartile", "midpoint", "thirdQuartile",
	"complete", "skip", "pause", "resume", "mute", "unmute", "error",
	"creativeView", "loaded", "progress", "close", "closeLinear", "rewind", "fullscreen", "exitFullscreen",
	"playerExpand", "playerCollapse", "otherAdInteraction", "notUsed", "viewable", "notViewable",
	"viewUndetermined", "verificationNotExecuted",
}

// VASTName returns the VAST spelling of t ("firstQuartile"), or "" when t is not a known type.
func (t Type) VASTName() string {
	if t >= NumTypes {
		return ""
	}
	return vastNames[t]
}

// String returns the schema name of t ("first_quartile"), or "" when t is not a known type.
func (t Type) String() string {
	if t >= NumTypes {
		return ""
	}
	return typeNames[t]
}

// Valid reports whether t is one of the schema's types.
func (t Type) Valid() bool { return t > TypeUnknown && t < NumTypes }

// ParseType maps a schema name ("first_quartile") to its Type; it also accepts the VAST
// camelCase spellings ("firstQuartile") so pixel URLs and JSON agree. It does not allocate.
func ParseType(b []byte) Type {
	// A linear scan over 29 short strings: string(b) in a comparison does not allocate, and this runs once per event, so a map
	// (which would hash) is not faster at this size.
	for t := TypeImpression; t < NumTypes; t++ {
		if string(b) == typeNames[t] || string(b) == vastNames[t] {
			return t
		}
	}
	return TypeUnknown
}

// Types lists every valid type in Enum8 order.
func Types() []Type {
	out := make([]Type, 0, NumTypes-1)
	for t := TypeImpression; t < NumTypes; t++ {
		out = append(out, t)
	}
	return out
}

// Limits of the variable-length fields. They are fixed so an Event has no pointers and fits in
// one ring slot; longer viewer/session ids are rejected, a longer user agent is truncated.
const (
	MaxIDLen        = 64
	MaxUserAgentLen = 256
)

// Flags on an event.
const (
	// FlagClientID marks an event_id the client chose; only those can be retried by a client,
	// so only those enter the duplicate window.
	FlagClientID uint8 = 1 << iota
)

// Event is one tracked event. It is a flat value with no pointers: the handler fills one
// from a pool, the ring copies its bytes into a slot, and nothing on the way allocates.
type Event struct {
	ID          UUID
	Type        Type
	Flags       uint8
	AdID        uint64
	EventTime   int64 // unix seconds, UTC; ClickHouse DateTime has second precision
	ReceiveTime int64 // unix seconds, UTC
	PlaybackMs  uint32
	IP          [16]byte // IPv4 stored as IPv4-mapped IPv6, as ClickHouse's IPv6 functions expect
	ViewerLen   uint8
	SessionLen  uint8
	UALen       uint16
	Viewer      [MaxIDLen]byte
	Session     [MaxIDLen]byte
	UserAgent   [MaxUserAgentLen]byte
	// Screening and enrichment (issue 18), filled at ingest after decoding; zero means valid and not enriched.
	IVT        IVT
	Device     Device
	Country    [2]byte // ISO 3166-1 alpha-2, upper case; zero when unknown
	OSLen      uint8
	BrowserLen uint8
	OS         [MaxFamilyLen]byte
	Browser    [MaxFamilyLen]byte
}

// Reset clears e for reuse.
func (e *Event) Reset() { *e = Event{} }

// ViewerID returns the viewer id bytes (aliasing e).
func (e *Event) ViewerID() []byte { return e.Viewer[:e.ViewerLen] }

// SessionID returns the session id bytes (aliasing e).
func (e *Event) SessionID() []byte { return e.Session[:e.SessionLen] }

// UA returns the user agent bytes (aliasing e).
func (e *Event) UA() []byte { return e.UserAgent[:e.UALen] }

// SetViewerID stores b; it reports false when b is longer than MaxIDLen.
func (e *Event) SetViewerID(b []byte) bool {
	if len(b) > MaxIDLen {
		return false
	}
	e.ViewerLen = uint8(copy(e.Viewer[:], b))
	return true
}

// SetSessionID stores b; it reports false when b is longer than MaxIDLen.
func (e *Event) SetSessionID(b []byte) bool {
	if len(b) > MaxIDLen {
		return false
	}
	e.SessionLen = uint8(copy(e.Session[:], b))
	return true
}

// SetUserAgent stores b, truncated to MaxUserAgentLen.
func (e *Event) SetUserAgent(b []byte) {
	e.UALen = uint16(copy(e.UserAgent[:], b))
}

// SetIP stores ip (4 or 16 bytes) as 16 bytes.
func (e *Event) SetIP(ip net.IP) bool {
	v6 := ip.To16()
	if v6 == nil {
		return false
	}
	copy(e.IP[:], v6)
	return true
}

// IPString formats the stored address (allocates; not for the hot path).
func (e *Event) IPString() string { return net.IP(e.IP[:]).String() }

// UUID is a 16-byte identifier stored in ClickHouse's UUID column.
type UUID [16]byte

// ErrBadUUID is returned for text that is not a canonical 36-character UUID.
var ErrBadUUID = errors.New("not a UUID")

// ParseUUID parses the canonical 8-4-4-4-12 hex form (either case) without allocating. Not google/uuid's ParseBytes: that one
// reads three more forms (braced, urn:uuid:, 32 digits) and keeps its argument in an error (fmt.Errorf), so every buffer
// passed to it would move to the heap.
func ParseUUID(b []byte) (UUID, error) {
	var u UUID
	if len(b) != 36 || b[8] != '-' || b[13] != '-' || b[18] != '-' || b[23] != '-' {
		return u, ErrBadUUID
	}
	// Every event that names its id runs this, so it is a table walk rather than hex.Decode per group: bad accumulates the
	// high bits that mark a byte that is not a hex digit.
	var bad byte
	for i, p := range uuidHexAt {
		hi, lo := hexValue[b[p]], hexValue[b[p+1]]
		bad |= hi | lo
		u[i] = hi<<4 | lo&0xf
	}
	if bad&0xf0 != 0 {
		return UUID{}, ErrBadUUID
	}
	return u, nil
}

// uuidHexAt is where each byte's two hex digits start in the text form 8-4-4-4-12.
var uuidHexAt = [16]uint8{0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34}

// hexValue maps a hex digit (either case) to its value and every other byte to 0xff.
var hexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c], t[c-'a'+'A'] = byte(c-'a'+10), byte(c-'a'+10)
	}
	return t
}()

// AppendString appends the canonical text form of u to dst. Hand-written: google/uuid only formats into a new string.
func (u UUID) AppendString(dst []byte) []byte {
	var buf [36]byte
	hex.Encode(buf[0:8], u[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], u[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], u[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], u[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:], u[10:])
	return append(dst, buf[:]...)
}

// String returns the canonical text form.
func (u UUID) String() string { return string(u.AppendString(nil)) }

// IsZero reports whether u is all zeros.
func (u UUID) IsZero() bool { return u == UUID{} }
