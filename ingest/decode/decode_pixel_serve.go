package decode

import (
	"crypto/sha1" //nolint:gosec // UUIDv5 is defined over SHA-1; the id names an event, it protects nothing
	"strconv"

	"github.com/adtracker/adtracker/ingest/event"
)

// MaxServeIDLen bounds a serve id (the sv pixel parameter): adtracker's own are 36-character UUIDs, other ad servers' AdServingIds
// (the [ADSERVINGID] macro) fit too.
const MaxServeIDLen = 64

// serveNamespace is the UUIDv5 namespace of per-serve event ids (a fixed random UUID; changing it would make retries of pixels
// fired before the change count again).
var serveNamespace = event.UUID{0x6c, 0x1d, 0x8a, 0x5e, 0x3f, 0x42, 0x4b, 0x07, 0x9a, 0x51, 0x2e, 0xc4, 0x7d, 0x03, 0xb8, 0x96}

// ServeEventID is the event id of the event of type t that belongs to one VAST serve: the UUIDv5 (RFC 9562, SHA-1) of
// serve id + NUL + the type's schema name, and for progress + NUL + its offset in milliseconds (a serve has one progress event per
// offset). Every fire of the same pixel — a player retry, a duplicate fire, the same URL sent to another node — gets the same id, so
// the pipeline's duplicate window (FlagClientID) and the replayer's stored-id check both see it as one event. It does not allocate.
func ServeEventID(serve []byte, t event.Type, offsetMs uint32) event.UUID {
	var buf [16 + MaxServeIDLen + 1 + 32 + 1 + 10]byte
	b := append(buf[:0], serveNamespace[:]...)
	b = append(b, serve...)
	b = append(b, 0)
	b = append(b, t.String()...)
	if t == event.TypeProgress {
		b = append(b, 0)
		b = strconv.AppendUint(b, uint64(offsetMs), 10)
	}
	sum := sha1.Sum(b) //nolint:gosec // see the import
	var u event.UUID
	copy(u[:], sum[:16])
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return u
}

// checkServeID checks the sv parameter; finishServe derives the event id from it once the type and offset are known.
func checkServeID(v []byte) *FieldError {
	if len(v) > MaxServeIDLen {
		return badField("sv", "sv must be at most 64 bytes")
	}
	return checkID("sv", v)
}

// finishServe gives e the per-serve event id, unless the pixel named its own (eid wins: the ad server chose it on purpose).
func finishServe(e *event.Event, serve []byte) {
	if len(serve) == 0 || e.Flags&event.FlagClientID != 0 {
		return
	}
	e.ID = ServeEventID(serve, e.Type, e.PlaybackMs)
	e.Flags |= event.FlagClientID
}

// ValidServeID reports whether b is a usable serve id (the sv parameter of /c/{id}): what the pixel decoder accepts, and not an
// unexpanded macro.
func ValidServeID(b []byte) bool {
	return len(b) > 0 && len(b) <= MaxServeIDLen && printableASCII(b) && !pixelAbsent(b)
}
