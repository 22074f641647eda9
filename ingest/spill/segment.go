package spill

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// On-disk format, little endian:
//
//	segment file %020d.seg: "ADSP" | version u16 | reserved u16 | frame*
//	frame:                  length u32 | crc32c(payload) u32 | payload
//	ack file "ack":         segment u64 | offset u64 | crc32c(first 16 bytes) u32
//
// A zero length is never written, so a run of zeros (a pre-allocated or zero-filled
// tail after a crash) can never pass for records: CRC32C of nothing is 0.
const (
	headerSize = 8
	frameSize  = 8
	ackSize    = 20
	version    = 1
	segSuffix  = ".seg"
	ackName    = "ack"
	ackTmpName = "ack.tmp"
	lockName   = "LOCK"

	// MaxRecordBytes bounds one record; a larger length field is corruption, not a record.
	MaxRecordBytes = 64 << 20

	// readChunk is the reader's window: many small records per read(2) call.
	readChunk = 1 << 20
	// resyncBudget bounds, per segment, the bytes checksummed while hunting for the next
	// valid frame after a corrupt one, so a segment of random garbage costs a fraction of
	// a second, not hours; past it, the rest of the segment counts as corrupt.
	resyncBudget = 256 << 20
)

var (
	magic    = [4]byte{'A', 'D', 'S', 'P'}
	castagno = crc32.MakeTable(crc32.Castagnoli)
)

func checksum(b []byte) uint32 { return crc32.Checksum(b, castagno) }

func segName(seq uint64) string { return fmt.Sprintf("%020d%s", seq, segSuffix) }

// parseSegName accepts only names this package writes, so stray files are left alone.
func parseSegName(name string) (uint64, bool) {
	base, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(base) != 20 {
		return 0, false
	}
	seq, err := strconv.ParseUint(base, 10, 64)
	return seq, err == nil
}

func appendHeader(b []byte) []byte {
	b = append(b, magic[:]...)
	b = binary.LittleEndian.AppendUint16(b, version)
	return binary.LittleEndian.AppendUint16(b, 0)
}

func validHeader(b []byte) bool {
	return len(b) >= headerSize && [4]byte(b[:4]) == magic && binary.LittleEndian.Uint16(b[4:]) == version
}

func encodeAck(p Position) [ackSize]byte {
	var b [ackSize]byte
	binary.LittleEndian.PutUint64(b[0:], p.Segment)
	binary.LittleEndian.PutUint64(b[8:], uint64(p.Offset))
	binary.LittleEndian.PutUint32(b[16:], checksum(b[:16]))
	return b
}

func decodeAck(b []byte) (Position, bool) {
	if len(b) != ackSize || binary.LittleEndian.Uint32(b[16:]) != checksum(b[:16]) {
		return Position{}, false
	}
	off := binary.LittleEndian.Uint64(b[8:])
	if off > 1<<62 {
		return Position{}, false
	}
	return Position{Segment: binary.LittleEndian.Uint64(b[0:]), Offset: int64(off)}, true
}

// writeAck replaces the ack file so that a crash leaves either the old or the new
// position, never a mix: write a temporary, fsync it, rename over, fsync the directory.
func writeAck(dir *os.File, p Position) error {
	err := writeAckRename(dir, p)
	if err == nil {
		return nil
	}
	// A full disk refuses the new file, and without an ack no segment can be deleted to make room: overwrite the ack in place
	// instead. 20 bytes inside one sector are written whole by real disks; if a machine crash tore them anyway, the CRC fails,
	// Open counts BadAck and the pipeline treats every record as maybe-stored.
	_ = os.Remove(filepath.Join(dir.Name(), ackTmpName))
	b := encodeAck(p)
	f, ferr := os.OpenFile(filepath.Join(dir.Name(), ackName), os.O_WRONLY, 0)
	if ferr != nil {
		return err
	}
	_, ferr = f.WriteAt(b[:], 0)
	if ferr == nil {
		ferr = f.Sync()
	}
	if cerr := f.Close(); ferr == nil {
		ferr = cerr
	}
	if ferr != nil {
		return fmt.Errorf("%w (in-place ack also failed: %w)", err, ferr)
	}
	return nil
}

func writeAckRename(dir *os.File, p Position) error {
	b := encodeAck(p)
	tmp := filepath.Join(dir.Name(), ackTmpName)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b[:])
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir.Name(), ackName))
	}
	if err == nil {
		err = dir.Sync()
	}
	return err
}

type frameStatus uint8

const (
	frameOK frameStatus = iota
	// frameShort: the header or the payload it announces runs past the limit — what an
	// interrupted write leaves at the end of the last segment.
	frameShort
	frameBad // zero or absurd length, or a checksum mismatch
)

// frameScanner reads frames of one segment file through a window, so the reader makes one
// read(2) per megabyte rather than two per record, and resync can step byte by byte.
// Bytes below the committed size of a segment never change, so caching them is safe
// even while the writer appends to the same file.
type frameScanner struct {
	f       *os.File
	buf     []byte // backing store of win
	win     []byte // file bytes [winOff, winOff+len(win))
	winOff  int64
	scratch []byte
	budget  int64 // left of resyncBudget for this file
}

func (sc *frameScanner) reset(f *os.File) {
	sc.f = f
	sc.win = nil
	sc.winOff = 0
	sc.budget = resyncBudget
}

// get returns file bytes [off, off+n), refilling the window from off when needed.
// The caller guarantees off+n <= limit; a file shorter than limit yields io.ErrUnexpectedEOF.
func (sc *frameScanner) get(off int64, n int, limit int64) ([]byte, error) {
	if off >= sc.winOff && off+int64(n) <= sc.winOff+int64(len(sc.win)) {
		return sc.win[off-sc.winOff:][:n], nil
	}
	want := int64(max(n, readChunk))
	if off+want > limit {
		want = limit - off
	}
	if int64(cap(sc.buf)) < want {
		sc.buf = make([]byte, want)
	} else if cap(sc.buf) > 4*readChunk && want <= readChunk {
		// Give back the memory of a rare huge record.
		sc.buf = make([]byte, readChunk)
	}
	b := sc.buf[:want]
	m, err := sc.f.ReadAt(b, off)
	if m < n {
		sc.win = nil
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	sc.win, sc.winOff = b[:m], off
	return b[:n], nil
}

// peek is get without moving the window, for candidate payloads during resync:
// the byte-by-byte header walk keeps its window.
func (sc *frameScanner) peek(off int64, n int) ([]byte, error) {
	if off >= sc.winOff && off+int64(n) <= sc.winOff+int64(len(sc.win)) {
		return sc.win[off-sc.winOff:][:n], nil
	}
	if cap(sc.scratch) < n {
		sc.scratch = make([]byte, n)
	}
	b := sc.scratch[:n]
	if _, err := sc.f.ReadAt(b, off); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if cap(sc.scratch) > 4*readChunk {
		sc.scratch = nil
	}
	return b, nil
}

// frame checks the frame at off. n is the length field when the header could be read.
func (sc *frameScanner) frame(off, limit int64) (payload []byte, st frameStatus, n uint32, err error) {
	if limit-off < frameSize {
		return nil, frameShort, 0, nil
	}
	h, err := sc.get(off, frameSize, limit)
	if err != nil {
		return nil, frameBad, 0, err
	}
	n = binary.LittleEndian.Uint32(h)
	sum := binary.LittleEndian.Uint32(h[4:])
	if n == 0 || n > MaxRecordBytes {
		return nil, frameBad, n, nil
	}
	if off+frameSize+int64(n) > limit {
		return nil, frameShort, n, nil
	}
	b, err := sc.get(off, frameSize+int(n), limit)
	if err != nil {
		return nil, frameBad, n, err
	}
	if checksum(b[frameSize:]) != sum {
		return nil, frameBad, n, nil
	}
	return b[frameSize:], frameOK, n, nil
}

// resync finds where valid frames start again after the bad frame at off, or returns
// limit when none does. n is the bad frame's length field: when only its payload rotted,
// the frame right after it is the answer and no byte walk is needed.
func (sc *frameScanner) resync(off, limit int64, n uint32) (int64, error) {
	if n > 0 && n <= MaxRecordBytes {
		next := off + frameSize + int64(n)
		if next == limit {
			return limit, nil
		}
		if next < limit {
			_, st, _, err := sc.frame(next, limit)
			if err != nil {
				return 0, err
			}
			if st == frameOK {
				return next, nil
			}
		}
	}
	for p := off + 1; p+frameSize < limit; p++ {
		h, err := sc.get(p, frameSize, limit)
		if err != nil {
			return 0, err
		}
		cn := binary.LittleEndian.Uint32(h)
		if cn == 0 || cn > MaxRecordBytes || p+frameSize+int64(cn) > limit {
			continue
		}
		if sc.budget -= int64(cn); sc.budget < 0 {
			return limit, nil
		}
		sum := binary.LittleEndian.Uint32(h[4:])
		b, err := sc.peek(p+frameSize, int(cn))
		if err != nil {
			return 0, err
		}
		if checksum(b) == sum {
			return p, nil
		}
	}
	return limit, nil
}

// zeros reports whether file bytes [off, limit) are all zero.
func (sc *frameScanner) zeros(off, limit int64) (bool, error) {
	for off < limit {
		n := int(min(limit-off, readChunk))
		b, err := sc.get(off, n, limit)
		if err != nil {
			return false, err
		}
		for _, c := range b {
			if c != 0 {
				return false, nil
			}
		}
		off += int64(n)
	}
	return true, nil
}
