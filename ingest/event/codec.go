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

// DecodeBinary fills e from the front of src and returns how many bytes it used.
func (e *Event) DecodeBinary(src []byte) (int, error) {
	if len(src) < fixedLenV1 || (src[0] != codecVersion && src[0] != codecV1) || (src[0] == codecVersion && len(src) < fixedLen) {
		return 0, ErrCorrupt
	}
	p := 1
	copy(e.ID[:], src[p:p+16])
	p += 16
	e.Type = Type(src[p])
	e.Flags = src[p+1]
	p += 2
	e.AdID = binary.LittleEndian.Uint64(src[p:])
	e.EventTime = int64(binary.LittleEndian.Uint64(src[p+8:]))
	e.ReceiveTime = int64(binary.LittleEndian.Uint64(src[p+16:]))
	e.PlaybackMs = binary.LittleEndian.Uint32(src[p+24:])
	p += 28
	copy(e.IP[:], src[p:p+16])
	p += 16
	n := int(src[p])
	p++
	if n > MaxIDLen || len(src) < p+n+1 {
		return 0, ErrCorrupt
	}
	e.ViewerLen = uint8(copy(e.Viewer[:], src[p:p+n]))
	p += n
	n = int(src[p])
	p++
	if n > MaxIDLen || len(src) < p+n+2 {
		return 0, ErrCorrupt
	}
	e.SessionLen = uint8(copy(e.Session[:], src[p:p+n]))
	p += n
	n = int(binary.LittleEndian.Uint16(src[p:]))
	p += 2
	if n > MaxUserAgentLen || len(src) < p+n {
		return 0, ErrCorrupt
	}
	e.UALen = uint16(copy(e.UserAgent[:], src[p:p+n]))
	p += n
	if src[0] == codecVersion {
		if len(src) < p+5 {
			return 0, ErrCorrupt
		}
		e.IVT, e.Device = IVT(src[p]), Device(src[p+1])
		e.Country = [2]byte{src[p+2], src[p+3]}
		n = int(src[p+4])
		p += 5
		if n > MaxFamilyLen || len(src) < p+n+1 {
			return 0, ErrCorrupt
		}
		e.OSLen = uint8(copy(e.OS[:], src[p:p+n]))
		p += n
		n = int(src[p])
		p++
		if n > MaxFamilyLen || len(src) < p+n {
			return 0, ErrCorrupt
		}
		e.BrowserLen = uint8(copy(e.Browser[:], src[p:p+n]))
		p += n
		if e.IVT >= NumIVT || e.Device >= NumDevices {
			return 0, ErrCorrupt
		}
	}
	if !e.Type.Valid() {
		return 0, ErrCorrupt
	}
	return p, nil
}
