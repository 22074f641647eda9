// Package decode turns JSON, NDJSON and pixel requests into validated events without allocating: Decoder, Limits, FieldError and
// the field parsers (time, date math, decimal, ad id).
package decode

import (
	"math"
	"time"

	"github.com/adtracker/adtracker/ingest/event"
)

// FieldError is a rejected request: the handler answers {"error": Msg, "field": Field} with
// Status. Field is the JSON key or pixel parameter at fault, or "body" when the framing is.
type FieldError struct {
	Status int
	Field  string
	Msg    string
}

func (e *FieldError) Error() string { return e.Msg }

// badField builds a 400; errors are rare enough that allocating here keeps the hot path simple.
func badField(field, msg string) *FieldError {
	return &FieldError{Status: 400, Field: field, Msg: msg}
}

// Limits bound what validation accepts. A zero (or negative) field means its default, so a
// zero Decoder is usable as is.
type Limits struct {
	// MaxFutureSkew is how far ahead of the server clock an event time may be; players' clocks drift.
	MaxFutureSkew time.Duration
	// MaxAge is how old an event time may be; older events would land in dropped partitions.
	MaxAge time.Duration
	// MaxPlayback caps video_playback_time; anything longer is a unit mix-up (ms sent as s).
	MaxPlayback time.Duration
	// MaxBatchItems caps the items of one POST /events (ingest.max_batch_items); a batch with more is refused whole with 413.
	MaxBatchItems int
}

// DefaultLimits returns the limits used when a field of Limits is zero.
func DefaultLimits() Limits {
	return Limits{MaxFutureSkew: 5 * time.Minute, MaxAge: 7 * 24 * time.Hour, MaxPlayback: 24 * time.Hour, MaxBatchItems: 10_000}
}

// MaxItemErrors is how many leading items of a batch get their error listed in the answer; errors of later items are only counted
// (errors_omitted), so a batch of junk cannot make the answer, or the memory behind it, grow with its item count.
const MaxItemErrors = 100

// Decoder turns request bodies and pixel queries into events. It has no mutable state, so one
// value serves every connection.
//
// The request's receive time is an input of every decode call: when the caller has set e.ReceiveTime (unix seconds) after
// resetting e, that is the time the acceptance window is computed from and every decoded event keeps. Zero means the decoder's
// clock. The handlers set the time fasthttp read right before calling them, which saves a clock read per request.
type Decoder struct {
	Limits Limits
	// Now pins the clock (tests): when set it wins over a receive time on the event, which it overwrites. Nil: the event's
	// receive time, else time.Now.
	Now func() time.Time
}

// acceptWindow is what one decode call checks against, computed once per call (for a batch, once rather than per item).
type acceptWindow struct {
	now        int64 // unix seconds
	minTime    int64
	maxTime    int64
	maxPlayMs  uint64
	typ        event.Type
	typeFromRq bool // typ came from the route, so a "type" key must agree with it
}

// Received is the receive time (unix seconds) of a request whose handler stamped stamped on its event (0: not stamped): a pinned
// clock (Now) wins, else the stamp, else the clock. Every decode call takes its "now" from it; so does the click redirect, which
// decodes nothing.
func (d *Decoder) Received(stamped int64) int64 {
	switch {
	case d.Now != nil:
		return d.Now().Unix()
	case stamped > 0:
		return stamped
	default:
		return time.Now().Unix()
	}
}

// windowFor computes the window of one decode call; received is the caller's e.ReceiveTime (0: read the clock).
func (d *Decoder) windowFor(typ event.Type, received int64) acceptWindow {
	def := DefaultLimits()
	l := d.Limits
	if l.MaxFutureSkew <= 0 {
		l.MaxFutureSkew = def.MaxFutureSkew
	}
	if l.MaxAge <= 0 {
		l.MaxAge = def.MaxAge
	}
	if l.MaxPlayback <= 0 {
		l.MaxPlayback = def.MaxPlayback
	}
	sec := d.Received(received)
	maxPlay := uint64(l.MaxPlayback.Milliseconds())
	if maxPlay > math.MaxUint32 {
		maxPlay = math.MaxUint32 // Event.PlaybackMs is 32 bits (~49 days)
	}
	return acceptWindow{
		now:        sec,
		minTime:    sec - int64(l.MaxAge/time.Second),
		maxTime:    sec + int64(l.MaxFutureSkew/time.Second),
		maxPlayMs:  maxPlay,
		typ:        typ,
		typeFromRq: typ != event.TypeUnknown,
	}
}

// checkTime applies the acceptance window to an event time; field names the key or parameter.
func (w *acceptWindow) checkTime(field string, t int64) *FieldError {
	if t > w.maxTime {
		return badField(field, field+" is too far in the future")
	}
	if t < w.minTime {
		return badField(field, field+" is too old")
	}
	return nil
}

// finish fills what every decoder sets the same way once the fields are read.
func (w *acceptWindow) finish(e *event.Event, haveAd, haveTime bool) *FieldError {
	if !haveAd {
		return badField("ad_id", "ad_id is required")
	}
	if w.typeFromRq {
		if !w.typ.Valid() {
			return badField("type", "type is not a known event type")
		}
		e.Type = w.typ
	} else if e.Type == event.TypeUnknown {
		return badField("type", "type is required")
	}
	if !haveTime {
		e.EventTime = w.now
	}
	e.ReceiveTime = w.now
	return nil
}

// setType applies a type named in the request body or query.
func (w *acceptWindow) setType(field string, e *event.Event, v []byte) *FieldError {
	t := event.ParseType(v)
	if t == event.TypeUnknown {
		return badField(field, field+" is not a known event type")
	}
	if w.typeFromRq && t != w.typ {
		return badField(field, field+" does not match the endpoint")
	}
	e.Type = t
	return nil
}

// setEventID stores a client-chosen event id. The nil UUID is refused: the pipeline reads a zero
// ID as "none", and every client sending it would collapse into one duplicate.
func setEventID(field string, e *event.Event, v []byte) *FieldError {
	u, err := event.ParseUUID(v)
	if err != nil {
		return badField(field, field+" must be a uuid")
	}
	if u.IsZero() {
		return badField(field, field+" must not be the nil uuid")
	}
	e.ID = u
	e.Flags |= event.FlagClientID
	return nil
}

// checkID validates a viewer or session id already copied into the event.
func checkID(field string, b []byte) *FieldError {
	if !printableASCII(b) {
		return badField(field, field+" must be printable ascii")
	}
	return nil
}

func tooLongID(field string) *FieldError {
	return badField(field, field+" must be at most 64 bytes")
}

// setPlayback applies the playback limit to a value in milliseconds.
func (w *acceptWindow) setPlayback(field string, e *event.Event, ms uint64, st numStatus) *FieldError {
	switch st {
	case numNegative:
		return badField(field, field+" must not be negative")
	case numTooLarge:
		return badField(field, field+" is too large")
	case numBad:
		return badField(field, field+" must be a number of seconds")
	}
	if ms > w.maxPlayMs {
		return badField(field, field+" is too large")
	}
	e.PlaybackMs = uint32(ms)
	return nil
}
