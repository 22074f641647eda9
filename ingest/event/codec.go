package event

import (
	"encoding/binary"
	"errors"
)

// Binary form of an Event, shared by the ring slots and the spill records. Little endian,
// strings length-prefixed, nothing variable but the three strings:
//
//	version u8 | id [16] | type u8 | flags u8 | ad_id u64 | event_time i64 | receive_time i64 |
//	playback_ms u32 | ip [16] | viewer_len u8 | viewer | session_len u8 | session | ua_len u16 | ua |
//	ivt u8 | device u8 | country [2] | os_len u8 | os | browser_len u8 | browser      (version 2 only)
//
// Version 1 (before screening and enrichment) ends after ua; it is still read, so a ring or spill segment written by an
// older release replays after an upgrade, as valid and not enriched. Only version 2 is written.
//
// Integrity (CRC) is the container's job; this layer only checks bounds.
const (
	codecV1      = 1
	codecVersion = 2
	fixedLenV1   = 1 + 16 + 1 + 1 + 8 + 8 + 8 + 4 + 16 + 1 + 1 + 2
	fixedLen     = fixedLenV1 + 1 + 1 + 2 + 1 + 1
	// MaxBinaryLen is the largest encoding of one event.
	MaxBinaryLen = fixedLen + MaxIDLen*2 + MaxUserAgentLen + MaxFamilyLen*2
)

// ErrCorrupt is returned for bytes that are not an encoded event.
var ErrCorrupt = errors.New("ingest: corrupt event encoding")

// AppendBinary appends the binary form of e to dst.
func (e *Event) AppendBinary(dst []byte) []byte {
	dst = append(dst, codecVersion)
	dst = append(dst, e.ID[:]...)
	dst = append(dst, byte(e.Type), e.Flags)
	dst = binary.LittleEndian.AppendUint64(dst, e.AdID)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(e.EventTime))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(e.ReceiveTime))
	dst = binary.LittleEndian.AppendUint32(dst, e.PlaybackMs)
	dst = append(dst, e.IP[:]...)
	dst = append(dst, e.ViewerLen)
	dst = append(dst, e.Viewer[:e.ViewerLen]...)
	dst = append(dst, e.SessionLen)
	dst = append(dst, e.Session[:e.SessionLen]...)
	dst = binary.LittleEndian.AppendUint16(dst, e.UALen)
	dst = append(dst, e.UserAgent[:e.UALen]...)
	dst = append(dst, byte(e.IVT), byte(e.Device), e.Country[0], e.Country[1], e.OSLen)
	dst = append(dst, e.OS[:e.OSLen]...)
	dst = append(dst, e.BrowserLen)
	dst = append(dst, e.Browser[:e.BrowserLen]...)
	return dst
}

// View is one encoded event read in place: the fixed fields decoded, the strings and the address aliasing the encoding. A reader
// that copies every field somewhere else anyway (the sink's insert columns) uses it instead of DecodeBinary, which first copies
// each string into the Event's fixed arrays. Decode is the one parser of the binary form; DecodeBinary is built on it.
type View struct {
	ID          UUID
	Type        Type
	Flags       uint8
	AdID        uint64
	EventTime   int64
	ReceiveTime int64
	PlaybackMs  uint32
	IP          []byte // 16 bytes
	Viewer      []byte
	Session     []byte
	UA          []byte
	IVT         IVT
	Device      Device
	Country     []byte // the 2 stored bytes (zero when unknown; CountryCode); empty for a version-1 encoding
	OS          []byte
	Browser     []byte
}

// Decode reads the event at the front of src into v and returns how many bytes it used. The slices in v alias src. A version-1
// encoding decodes as valid and not enriched.
func (v *View) Decode(src []byte) (int, error) {
	if len(src) < fixedLenV1 || (src[0] != codecVersion && src[0] != codecV1) || (src[0] == codecVersion && len(src) < fixedLen) {
		return 0, ErrCorrupt
	}
	p := 1
	v.ID = UUID(src[p : p+16])
	p += 16
	v.Type = Type(src[p])
	v.Flags = src[p+1]
	p += 2
	v.AdID = binary.LittleEndian.Uint64(src[p:])
	v.EventTime = int64(binary.LittleEndian.Uint64(src[p+8:]))
	v.ReceiveTime = int64(binary.LittleEndian.Uint64(src[p+16:]))
	v.PlaybackMs = binary.LittleEndian.Uint32(src[p+24:])
	p += 28
	v.IP = src[p : p+16 : p+16]
	p += 16
	n := int(src[p])
	p++
	if n > MaxIDLen || len(src) < p+n+1 {
		return 0, ErrCorrupt
	}
	v.Viewer = src[p : p+n : p+n]
	p += n
	n = int(src[p])
	p++
	if n > MaxIDLen || len(src) < p+n+2 {
		return 0, ErrCorrupt
	}
	v.Session = src[p : p+n : p+n]
	p += n
	n = int(binary.LittleEndian.Uint16(src[p:]))
	p += 2
	if n > MaxUserAgentLen || len(src) < p+n {
		return 0, ErrCorrupt
	}
	v.UA = src[p : p+n : p+n]
	p += n
	v.IVT, v.Device, v.Country, v.OS, v.Browser = IVTNone, DeviceUnknown, nil, nil, nil
	if src[0] == codecVersion {
		if len(src) < p+5 {
			return 0, ErrCorrupt
		}
		v.IVT, v.Device = IVT(src[p]), Device(src[p+1])
		v.Country = src[p+2 : p+4 : p+4]
		n = int(src[p+4])
		p += 5
		if n > MaxFamilyLen || len(src) < p+n+1 {
			return 0, ErrCorrupt
		}
		v.OS = src[p : p+n : p+n]
		p += n
		n = int(src[p])
		p++
		if n > MaxFamilyLen || len(src) < p+n {
			return 0, ErrCorrupt
		}
		v.Browser = src[p : p+n : p+n]
		p += n
		if v.IVT >= NumIVT || v.Device >= NumDevices {
			return 0, ErrCorrupt
		}
	}
	if !v.Type.Valid() {
		return 0, ErrCorrupt
	}
	return p, nil
}

// CountryCode returns the ISO 3166-1 alpha-2 code bytes, or nothing when unknown (as Event.CountryCode).
func (v *View) CountryCode() []byte {
	if len(v.Country) < 2 || v.Country[0] == 0 {
		return nil
	}
	return v.Country
}

// DecodeBinary fills e from the front of src and returns how many bytes it used. Every field is set, so a reused e keeps nothing
// of the event before (a version-1 encoding after a version-2 one in the same batch comes out not enriched).
func (e *Event) DecodeBinary(src []byte) (int, error) {
	var v View
	n, err := v.Decode(src)
	if err != nil {
		return 0, err
	}
	v.Event(e)
	return n, nil
}

// Event copies v into e, every field.
func (v *View) Event(e *Event) {
	e.ID, e.Type, e.Flags, e.AdID = v.ID, v.Type, v.Flags, v.AdID
	e.EventTime, e.ReceiveTime, e.PlaybackMs = v.EventTime, v.ReceiveTime, v.PlaybackMs
	copy(e.IP[:], v.IP)
	e.ViewerLen = uint8(copy(e.Viewer[:], v.Viewer))
	e.SessionLen = uint8(copy(e.Session[:], v.Session))
	e.UALen = uint16(copy(e.UserAgent[:], v.UA))
	e.IVT, e.Device = v.IVT, v.Device
	e.Country = [2]byte{}
	copy(e.Country[:], v.Country)
	e.OSLen = uint8(copy(e.OS[:], v.OS))
	e.BrowserLen = uint8(copy(e.Browser[:], v.Browser))
}
