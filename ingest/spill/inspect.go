package spill

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// SegmentReport describes one segment file as Inspect read it.
type SegmentReport struct {
	Name         string
	Bytes        int64 // file size
	Records      int   // intact records after the ack position
	RecordBytes  int64 // their payload bytes
	CorruptBytes int64 // bytes in runs that failed their checksum or length check
	TailBytes    int64 // an incomplete last frame: being written right now, or torn by a crash (Open cuts it)
	BadHeader    bool
}

// Report is what Inspect found in a spill directory.
type Report struct {
	Dir             string
	Ack             Position // where replay resumes
	AckOK           bool     // false: ack file missing or damaged; Open will replay from the oldest segment
	Segments        []SegmentReport
	Records         int   // intact unacked records in all segments
	RecordBytes     int64 // their payload bytes
	Bytes           int64 // all segment files
	CorruptRegions  int
	CorruptBytes    int64
	MissingSegments uint64 // gaps in the segment numbering after the ack: those records are gone
}

// Inspect reads a spill directory without changing it and without taking its lock, so it is safe while a server is writing it (a
// record being appended at that moment shows as tail bytes). It checks every frame after the ack position, as Open would, and
// returns payloads to visit when visit is not nil (for tools that decode them); visit's slice is only valid during the call.
func Inspect(dir string, visit func(seg string, rec []byte)) (Report, error) {
	r := Report{Dir: dir}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return r, err
	}
	var seqs []uint64
	for _, e := range entries {
		if seq, ok := parseSegName(e.Name()); ok && e.Type().IsRegular() {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	ack, ackOK, err := readAck(filepath.Join(dir, ackName))
	if err != nil {
		return r, err
	}
	if !ackOK && len(seqs) > 0 {
		ack = Position{Segment: seqs[0], Offset: headerSize}
	}
	ack.Offset = max(ack.Offset, headerSize)
	r.Ack, r.AckOK = ack, ackOK
	keep := slices.DeleteFunc(seqs, func(seq uint64) bool { return seq < ack.Segment }) // acked ones: Open deletes them
	r.MissingSegments = missingSegments(keep, ack, ackOK)
	var sc frameScanner
	for _, seq := range keep {
		from := int64(headerSize)
		if seq == ack.Segment {
			from = ack.Offset
		}
		s, err := inspectSegment(&sc, filepath.Join(dir, segName(seq)), from, visit)
		if errors.Is(err, fs.ErrNotExist) {
			continue // acked and deleted by the server while we listed
		}
		if err != nil {
			return r, err
		}
		r.Segments = append(r.Segments, s)
		r.Records += s.Records
		r.RecordBytes += s.RecordBytes
		r.Bytes += s.Bytes
		r.CorruptBytes += s.CorruptBytes
		if s.CorruptBytes > 0 || s.BadHeader {
			r.CorruptRegions++
		}
	}
	return r, nil
}

func inspectSegment(sc *frameScanner, path string, from int64, visit func(string, []byte)) (SegmentReport, error) {
	s := SegmentReport{Name: filepath.Base(path)}
	f, err := os.Open(path)
	if err != nil {
		return s, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return s, err
	}
	size := fi.Size()
	s.Bytes = size
	var hdr [headerSize]byte
	if size < headerSize {
		s.TailBytes = size
		return s, nil
	}
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return s, err
	}
	if !validHeader(hdr[:]) {
		s.BadHeader = true
		s.CorruptBytes = size
		return s, nil
	}
	sc.reset(f)
	off := min(max(from, headerSize), size)
	for off < size {
		rec, st, n, err := sc.frame(off, size)
		if err != nil {
			return s, err
		}
		if st == frameOK {
			s.Records++
			s.RecordBytes += int64(n)
			if visit != nil {
				visit(s.Name, rec)
			}
			off += frameSize + int64(n)
			continue
		}
		next, err := sc.resync(off, size, n)
		if err != nil {
			return s, err
		}
		if next >= size && st == frameShort {
			s.TailBytes = size - off
			break
		}
		s.CorruptBytes += next - off
		off = next
	}
	return s, nil
}
