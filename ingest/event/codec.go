package event

import (
	"encoding/binary"
	"errors"
)

// Binary form of an Event, shared by the ring slots and the spill records. Little endian,
// strings length-prefixed, nothing variable but the three strings:
//
//	version u8 | id [16] | type u8 | flags u8 | ad_id u64 | event_time i64 | receive_time i64 |
//	playback_ms u32 | ip [16] | viewer_len u8 | viewer | session_len u8 | session | ua_len u16 | ua
//
// Integrity (CRC) is the container's job; this layer only checks bounds.
const (
	codecVersion = 1
	fixedLen     = 1 + 16 + 1 + 1 + 8 + 8 + 8 + 4 + 16 + 1 + 1 + 2
	// MaxBinaryLen is the largest encoding of one event.
	MaxBinaryLen = fixedLen + MaxIDLen*2 + MaxUserAgentLen
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
	return dst
}

// DecodeBinary fills e from the front of src and returns how many bytes it used.
func (e *Event) DecodeBinary(src []byte) (int, error) {
	if len(src) < fixedLen || src[0] != codecVersion {
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
	if !e.Type.Valid() {
		return 0, ErrCorrupt
	}
	return p, nil
}
