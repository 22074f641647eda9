package decode

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/adtracker/adtracker/ingest/event"
)

// testNow is the pinned clock: 30 s after the seed body's timestamp.
var testNow = time.Date(2025, 4, 21, 15, 0, 30, 0, time.UTC)

const seedBody = `{"ad_id": 1, "timestamp": "2025-04-21T15:00:00Z", "ip": "203.0.113.1", "video_playback_time": 12}`

func testDecoder() *Decoder {
	return &Decoder{Now: func() time.Time { return testNow }}
}

func ip16(s string) [16]byte {
	var b [16]byte
	ip := net.ParseIP(s)
	if ip == nil {
		panic("bad test ip " + s)
	}
	copy(b[:], ip.To16())
	return b
}

func unix(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.Unix()
}

func mustUUID(s string) event.UUID {
	u, err := event.ParseUUID([]byte(s))
	if err != nil {
		panic(err)
	}
	return u
}

// ev builds an expected event: receive time now, event time now unless set by mod.
func ev(typ event.Type, ad uint64, mod func(e *event.Event)) event.Event {
	e := event.Event{Type: typ, AdID: ad, EventTime: testNow.Unix(), ReceiveTime: testNow.Unix()}
	if mod != nil {
		mod(&e)
	}
	return e
}

func TestDefaultLimits(t *testing.T) {
	l := DefaultLimits()
	if l.MaxFutureSkew != 5*time.Minute || l.MaxAge != 7*24*time.Hour || l.MaxPlayback != 24*time.Hour {
		t.Fatalf("DefaultLimits() = %+v", l)
	}
}

func TestLimitsApplied(t *testing.T) {
	d := &Decoder{Now: func() time.Time { return testNow }, Limits: Limits{
		MaxFutureSkew: time.Minute, MaxAge: time.Hour, MaxPlayback: 10 * time.Second,
	}}
	f := func(body, wantField, wantMsg string) {
		t.Helper()
		var e event.Event
		err := d.DecodeJSON([]byte(body), event.TypeClick, &e)
		switch {
		case wantField == "" && err != nil:
			t.Errorf("%s: unexpected error %+v", body, err)
		case wantField != "" && (err == nil || err.Field != wantField || err.Msg != wantMsg):
			t.Errorf("%s: got %+v, want field %q msg %q", body, err, wantField, wantMsg)
		}
	}
	f(`{"ad_id":1,"timestamp":"2025-04-21T15:01:30Z"}`, "", "")
	f(`{"ad_id":1,"timestamp":"2025-04-21T15:01:31Z"}`, "timestamp", "timestamp is too far in the future")
	f(`{"ad_id":1,"timestamp":"2025-04-21T14:00:30Z"}`, "", "")
	f(`{"ad_id":1,"timestamp":"2025-04-21T14:00:29Z"}`, "timestamp", "timestamp is too old")
	f(`{"ad_id":1,"video_playback_time":10}`, "", "")
	f(`{"ad_id":1,"video_playback_time":10.0004}`, "", "")
	f(`{"ad_id":1,"video_playback_time":10.0005}`, "video_playback_time", "video_playback_time is too large")
}

func TestFieldErrorError(t *testing.T) {
	err := &FieldError{Status: 400, Field: "ad_id", Msg: "ad_id must be a positive integer"}
	if err.Error() != err.Msg {
		t.Fatalf("Error() = %q", err.Error())
	}
}

// TestZeroDecoderUsesDefaults guards the documented zero-value behaviour: an unset Limits must
// not reject every timestamp and playback.
func TestZeroDecoderUsesDefaults(t *testing.T) {
	var d Decoder
	var e event.Event
	now := time.Now().UTC()
	body := `{"ad_id":7,"timestamp":"` + now.Add(-time.Hour).Format(time.RFC3339) + `","video_playback_time":3600}`
	if err := d.DecodeJSON([]byte(body), event.TypeStart, &e); err != nil {
		t.Fatalf("zero Decoder rejected %s: %+v", body, err)
	}
	if e.ReceiveTime < now.Unix()-5 || e.ReceiveTime > now.Unix()+5 {
		t.Fatalf("ReceiveTime %d not near now %d", e.ReceiveTime, now.Unix())
	}
	if e.PlaybackMs != 3600000 {
		t.Fatalf("PlaybackMs = %d", e.PlaybackMs)
	}
	body = `{"ad_id":7,"timestamp":"` + now.Add(-8*24*time.Hour).Format(time.RFC3339) + `"}`
	e.Reset()
	if err := d.DecodeJSON([]byte(body), event.TypeStart, &e); err == nil || !strings.Contains(err.Msg, "too old") {
		t.Fatalf("8-day-old timestamp: got %+v", err)
	}
}
