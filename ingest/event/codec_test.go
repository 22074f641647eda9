package event

import (
	"bytes"
	"encoding/hex"
	"net"
	"os"
	"strings"
	"testing"
	"unsafe"
)

func sampleEvent() Event {
	var e Event
	e.ID, _ = ParseUUID([]byte("0190b3b2-7c4e-7a1b-9c3d-5e6f7a8b9c0d"))
	e.Type = TypeThirdQuartile
	e.Flags = FlagClientID
	e.AdID = 42
	e.EventTime = 1745247600
	e.ReceiveTime = 1745247601
	e.PlaybackMs = 12500
	e.SetIP(net.ParseIP("203.0.113.1"))
	e.SetViewerID([]byte("viewer-1"))
	e.SetSessionID([]byte("sess"))
	e.SetUserAgent([]byte("Mozilla/5.0"))
	return e
}

func enrichedEvent() Event {
	e := sampleEvent()
	e.IVT = IVTDuplicateClick
	e.Device = DeviceMobile
	e.SetCountry("de")
	e.SetOS("Android")
	e.SetBrowser("Chrome")
	return e
}

// v1Encoding is sampleEvent as the release before enrichment encoded it (testdata/v1_event.hex, made by that code).
func v1Encoding(t *testing.T) []byte {
	t.Helper()
	raw, err := os.ReadFile("testdata/v1_event.hex")
	if err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A version-1 encoding written by the release before enrichment (testdata/v1_event.hex, made from sampleEvent by that
// code) still decodes after the upgrade: same fields, valid and not enriched. Spill segments and rings survive upgrades.
func TestDecodeBinaryReadsVersion1(t *testing.T) {
	b := v1Encoding(t)
	var got Event
	n, err := got.DecodeBinary(b)
	if err != nil || n != len(b) {
		t.Fatalf("DecodeBinary(v1) = %d, %v; want %d", n, err, len(b))
	}
	if want := sampleEvent(); got != want {
		t.Fatalf("v1 decoded to\n %+v\nwant\n %+v", got, want)
	}
	for i := 0; i < len(b); i++ {
		if _, err := new(Event).DecodeBinary(b[:i]); err == nil {
			t.Fatalf("decoding %d of %d v1 bytes succeeded", i, len(b))
		}
	}
}

// A reused Event keeps nothing of the event decoded before: a version-1 encoding after an enriched version-2 one (a batch that
// spans an upgrade: ring records of the old release, then the new one's) comes out not enriched, as it does alone.
func TestDecodeBinaryV1AfterEnrichedEvent(t *testing.T) {
	v1 := v1Encoding(t)
	en := enrichedEvent()
	var b Batch
	b.AppendEncoded(en.AppendBinary(nil))
	b.AppendEncoded(v1)
	var got []Event
	var e Event
	if err := b.Each(&e, func(e *Event) error { got = append(got, *e); return nil }); err != nil {
		t.Fatal(err)
	}
	// Compared by encoding: a reused Event keeps bytes past each string's length, which no reader sees.
	want := sampleEvent()
	if len(got) != 2 || got[0] != en || !bytes.Equal(got[1].AppendBinary(nil), want.AppendBinary(nil)) {
		t.Fatalf("decoded\n %+v\nwant\n %+v\n %+v", got, en, want)
	}
}

// A View reads the same fields DecodeBinary fills, with every string aliasing the encoding.
func TestViewAliasesEncoding(t *testing.T) {
	for _, e := range []Event{sampleEvent(), enrichedEvent()} {
		enc := e.AppendBinary(nil)
		var v View
		n, err := v.Decode(enc)
		if err != nil || n != len(enc) {
			t.Fatalf("Decode = %d, %v; want %d", n, err, len(enc))
		}
		if v.ID != e.ID || v.Type != e.Type || v.AdID != e.AdID || v.EventTime != e.EventTime || v.ReceiveTime != e.ReceiveTime ||
			v.PlaybackMs != e.PlaybackMs || v.IVT != e.IVT || v.Device != e.Device || v.Flags != e.Flags {
			t.Fatalf("fixed fields %+v, want those of %+v", v, e)
		}
		for _, f := range []struct {
			name      string
			got, want []byte
		}{{"ip", v.IP, e.IP[:]}, {"viewer", v.Viewer, e.ViewerID()}, {"session", v.Session, e.SessionID()}, {"ua", v.UA, e.UA()},
			{"country", v.CountryCode(), e.CountryCode()}, {"os", v.OS, e.OSFamily()}, {"browser", v.Browser, e.BrowserFamily()}} {
			if !bytes.Equal(f.got, f.want) {
				t.Fatalf("%s = %q, want %q", f.name, f.got, f.want)
			}
			if len(f.got) > 0 && !aliases(f.got, enc) {
				t.Fatalf("%s is a copy, not a slice of the encoding", f.name)
			}
		}
	}
}

func aliases(s, in []byte) bool {
	start := uintptr(unsafe.Pointer(unsafe.SliceData(in)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	return p >= start && p+uintptr(len(s)) <= start+uintptr(len(in))
}

func TestEnrichmentFields(t *testing.T) {
	var e Event
	e.SetCountry("d1")
	if e.CountryCode() != nil {
		t.Fatal("a non-letter country code was stored")
	}
	e.SetCountry("gb")
	if string(e.CountryCode()) != "GB" {
		t.Fatalf("country %q", e.CountryCode())
	}
	e.SetOS(strings.Repeat("x", 40))
	if len(e.OSFamily()) != MaxFamilyLen {
		t.Fatalf("os family not truncated: %d", len(e.OSFamily()))
	}
	for r := IVTNone; r < NumIVT; r++ {
		if got, ok := ParseIVT(r.String()); !ok || got != r {
			t.Fatalf("ParseIVT(%q) = %v, %v", r.String(), got, ok)
		}
	}
	if _, ok := ParseIVT("bogus"); ok {
		t.Fatal("ParseIVT accepted an unknown reason")
	}
	if DeviceUnknown.String() != "" || DeviceTV.String() != "tv" || NumDevices.String() != "" {
		t.Fatal("device names")
	}
}

func TestBinaryRoundTrip(t *testing.T) {
	e := enrichedEvent()
	b := e.AppendBinary(nil)
	var got Event
	n, err := got.DecodeBinary(b)
	if err != nil || n != len(b) {
		t.Fatalf("DecodeBinary = %d, %v; want %d", n, err, len(b))
	}
	if got != e {
		t.Fatalf("round trip changed the event:\n got %+v\nwant %+v", got, e)
	}
	var full Event
	full.Type = TypeClick
	full.ViewerLen = MaxIDLen
	full.SessionLen = MaxIDLen
	full.UALen = MaxUserAgentLen
	full.OSLen = MaxFamilyLen
	full.BrowserLen = MaxFamilyLen
	if n := len(full.AppendBinary(nil)); n != MaxBinaryLen {
		t.Fatalf("largest encoding is %d bytes, MaxBinaryLen says %d", n, MaxBinaryLen)
	}
}

func TestDecodeBinaryRejectsTruncation(t *testing.T) {
	e := enrichedEvent()
	b := e.AppendBinary(nil)
	for i := 0; i < len(b); i++ {
		var got Event
		if _, err := got.DecodeBinary(b[:i]); err == nil {
			t.Fatalf("decoding %d of %d bytes succeeded", i, len(b))
		}
	}
	bad := bytes.Clone(b)
	bad[0] = 99
	var got Event
	if _, err := got.DecodeBinary(bad); err == nil {
		t.Fatal("wrong version accepted")
	}
}

func FuzzDecodeBinary(f *testing.F) {
	e := sampleEvent()
	f.Add(e.AppendBinary(nil))
	en := enrichedEvent()
	f.Add(en.AppendBinary(nil))
	f.Add([]byte{1})
	f.Add([]byte{2})
	f.Fuzz(func(t *testing.T, b []byte) {
		var got Event
		n, err := got.DecodeBinary(b)
		if err != nil {
			return
		}
		if n > len(b) {
			t.Fatalf("used %d of %d bytes", n, len(b))
		}
		again := got.AppendBinary(nil)
		if b[0] == codecVersion && !bytes.Equal(again, b[:n]) {
			t.Fatalf("version 2 does not round-trip:\n %x\n %x", b[:n], again)
		}
		var back Event
		if _, err := back.DecodeBinary(again); err != nil || back != got {
			t.Fatalf("re-encoding is not stable: %v", err)
		}
	})
}

func TestUUID(t *testing.T) {
	f := func(in string, ok bool) {
		t.Helper()
		u, err := ParseUUID([]byte(in))
		if (err == nil) != ok {
			t.Fatalf("ParseUUID(%q) err = %v, want ok=%v", in, err, ok)
		}
		if ok && u.String() != toLower(in) {
			t.Fatalf("ParseUUID(%q).String() = %q", in, u.String())
		}
	}
	f("0190b3b2-7c4e-7a1b-9c3d-5e6f7a8b9c0d", true)
	f("0190B3B2-7C4E-7A1B-9C3D-5E6F7A8B9C0D", true)
	f("0190b3b2-7c4e-7a1b-9c3d-5e6f7a8b9c0", false)
	f("0190b3b2x7c4e-7a1b-9c3d-5e6f7a8b9c0d", false)
	f("0190b3b2-7c4e-7a1b-9c3d-5e6f7a8b9c0g", false)
	f("", false)
}

func toLower(s string) string { return string(bytes.ToLower([]byte(s))) }

func TestParseType(t *testing.T) {
	for _, ty := range Types() {
		if got := ParseType([]byte(ty.String())); got != ty {
			t.Fatalf("ParseType(%q) = %v", ty.String(), got)
		}
	}
	for _, ty := range Types() {
		if got := ParseType([]byte(ty.VASTName())); got != ty {
			t.Fatalf("ParseType(%q) = %v", ty.VASTName(), got)
		}
	}
	for in, want := range map[string]Type{"firstQuartile": TypeFirstQuartile, "closeLinear": TypeCloseLinear,
		"close": TypeClose, "viewUndetermined": TypeViewUndetermined, "bogus": TypeUnknown, "": TypeUnknown, "FirstQuartile": TypeUnknown} {
		if got := ParseType([]byte(in)); got != want {
			t.Fatalf("ParseType(%q) = %v, want %v", in, got, want)
		}
	}
	if len(Types()) != 29 {
		t.Fatalf("%d types", len(Types()))
	}
}

// parseUUIDByHex is ParseUUID as it was before the table walk (hex.Decode per group): the reference FuzzParseUUID compares with.
func parseUUIDByHex(b []byte) (UUID, bool) {
	var u UUID
	if len(b) != 36 || b[8] != '-' || b[13] != '-' || b[18] != '-' || b[23] != '-' {
		return u, false
	}
	j := 0
	for _, g := range [5][2]int{{0, 8}, {9, 13}, {14, 18}, {19, 23}, {24, 36}} {
		n, err := hex.Decode(u[j:], b[g[0]:g[1]])
		if err != nil {
			return UUID{}, false
		}
		j += n
	}
	return u, true
}

func FuzzParseUUID(f *testing.F) {
	f.Add("0190b3b2-7c4e-7a1b-9c3d-5e6f7a8b9c0d")
	f.Add("0190B3B2-7C4E-7A1B-9C3D-5E6F7A8B9C0D")
	f.Add("0190b3b2-7c4e-7a1b-9c3d-5e6f7a8b9c0g")
	f.Add("0190b3b2-7c4e-7a1b-9c3d-5e6f7a8b9c\xff0")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseUUID([]byte(s))
		want, ok := parseUUIDByHex([]byte(s))
		if (err == nil) != ok || got != want {
			t.Fatalf("ParseUUID(%q) = %v, %v; hex.Decode reads %v, %v", s, got, err, want, ok)
		}
	})
}

func BenchmarkParseUUID(b *testing.B) {
	s := []byte("0190b3b2-7c4e-7a1b-9c3d-5e6f7a8b9c0d")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseUUID(s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseUUIDByHex(b *testing.B) {
	s := []byte("0190b3b2-7c4e-7a1b-9c3d-5e6f7a8b9c0d")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := parseUUIDByHex(s); !ok {
			b.Fatal("bad")
		}
	}
}
