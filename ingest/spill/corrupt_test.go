package spill

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// frameAt is where a test found a record in a segment file, parsed independently of the
// package's reader.
type frameAt struct {
	id       int
	off, end int64 // the frame, header included
}

func (f frameAt) size() uint64 { return uint64(f.end - f.off) }

type segFile struct {
	path   string
	size   int64
	frames []frameAt
}

// layout parses every segment in dir, which must be intact.
func layout(t *testing.T, dir string) []segFile {
	t.Helper()
	var segs []segFile
	for _, p := range segFiles(t, dir) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !validHeader(b) {
			t.Fatalf("%s: bad header", p)
		}
		s := segFile{path: p, size: int64(len(b))}
		for off := headerSize; off < len(b); {
			n := int(binary.LittleEndian.Uint32(b[off:]))
			payload := b[off+8 : off+8+n]
			if binary.LittleEndian.Uint32(b[off+4:]) != checksum(payload) {
				t.Fatalf("%s: bad frame at %d", p, off)
			}
			s.frames = append(s.frames, frameAt{recID(t, payload), int64(off), int64(off + 8 + n)})
			off += 8 + n
		}
		segs = append(segs, s)
	}
	return segs
}

// build writes records [0, n) into a closed queue in dir, acking through record ackThrough
// (-1: no ack, but the ack file Open wrote is there).
func build(t *testing.T, dir string, opt Options, n, ackThrough int) {
	t.Helper()
	q, err := Open(dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	appendRange(t, q, 0, n)
	for i := 0; i <= ackThrough; i++ {
		_, pos, err := q.Next()
		if err != nil {
			t.Fatal(err)
		}
		if i == ackThrough {
			if err := q.Ack(pos); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
}

func patch(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func flip(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	patch(t, path, off, []byte{b[off] ^ 0x5a})
}

func appendFile(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func without(ids []int, drop ...int) []int {
	return slices.DeleteFunc(slices.Clone(ids), func(i int) bool { return slices.Contains(drop, i) })
}

// idsOf lists the records of segments in order.
func idsOf(segs ...segFile) []int {
	var ids []int
	for _, s := range segs {
		for _, f := range s.frames {
			ids = append(ids, f.id)
		}
	}
	return ids
}

// TestCorruption damages real bytes of real segment and ack files, then checks exactly
// which records Open and Next still deliver and that Stats accounts for the rest.
func TestCorruption(t *testing.T) {
	type tc struct {
		n          int
		opt        Options
		ackThrough int
		// corrupt damages dir, whose intact layout is segs, and returns the surviving
		// records and the stats recovery must report.
		corrupt func(t *testing.T, dir string, segs []segFile) ([]int, Stats)
	}
	small := Options{SegmentBytes: 600}
	one := func(n int, c func(t *testing.T, dir string, s segFile) ([]int, Stats)) tc {
		return tc{n: n, ackThrough: -1, corrupt: func(t *testing.T, dir string, segs []segFile) ([]int, Stats) {
			if len(segs) != 1 {
				t.Fatalf("%d segments", len(segs))
			}
			return c(t, dir, segs[0])
		}}
	}
	cases := map[string]tc{
		"intact": one(10, func(t *testing.T, dir string, s segFile) ([]int, Stats) {
			return seq(0, 10), Stats{}
		}),
		"flipped payload byte in a middle record": one(10, func(t *testing.T, dir string, s segFile) ([]int, Stats) {
			f := s.frames[4]
			flip(t, s.path, (f.off+8+f.end)/2)
			return without(seq(0, 10), 4), Stats{CorruptRegions: 1, CorruptBytes: f.size()}
		}),
		"flipped checksum of a middle record": one(10, func(t *testing.T, dir string, s segFile) ([]int, Stats) {
			f := s.frames[4]
			flip(t, s.path, f.off+5)
			return without(seq(0, 10), 4), Stats{CorruptRegions: 1, CorruptBytes: f.size()}
		}),
		"two corrupt records": one(10, func(t *testing.T, dir string, s segFile) ([]int, Stats) {
			flip(t, s.path, s.frames[2].off+9)
			flip(t, s.path, s.frames[7].off+9)
			return without(seq(0, 10), 2, 7), Stats{CorruptRegions: 2, CorruptBytes: s.frames[2].size() + s.frames[7].size()}
		}),
		"absurd length in a middle record": one(10, func(t *testing.T, dir string, s segFile) ([]int, Stats) {
			f := s.frames[4]
			patch(t, s.path, f.off, []byte{0xff, 0xff, 0xff, 0xff})
			return without(seq(0, 10), 4), Stats{CorruptRegions: 1, CorruptBytes: f.size()}
		}),
		"plausible wrong length in a middle record": one(10, func(t *testing.T, dir string, s segFile) ([]int, Stats) {
			f := s.frames[4]
			patch(t, s.path, f.off, binary.LittleEndian.AppendUint32(nil, uint32(f.end-f.off-8+3)))
			return without(seq(0, 10), 4), Stats{CorruptRegions: 1, CorruptBytes: f.size()}
		}),
		"zeroed middle record": one(10, func(t *testing.T, dir string, s segFile) ([]int, Stats) {
			f := s.frames[4]
			patch(t, s.path, f.off, make([]byte, f.size()))
			return without(seq(0, 10), 4), Stats{CorruptRegions: 1, CorruptBytes: f.size()}
		}),
		"middle record length grown past the end": one(10, func(t *testing.T, dir string, s segFile) ([]int, Stats) {
			f := s.frames[4]
			patch(t, s.path, f.off, binary.LittleEndian.AppendUint32(nil, uint32(s.size)))
			return without(seq(0, 10), 4), Stats{CorruptRegions: 1, CorruptBytes: f.size()}
		}),
		"corrupt last record": one(10, func(t *testing.T, dir string, s segFile) ([]int, Stats) {
			f := s.frames[9]
			flip(t, s.path, f.end-1)
			return seq(0, 9), Stats{CorruptRegions: 1, CorruptBytes: f.size()}
		}),
		"zeroed tail": one(10, func(t *testing.T, dir string, s segFile) ([]int, Stats) {
			appendFile(t, s.path, make([]byte, 4096))
			return seq(0, 10), Stats{TornTails: 1, TornBytes: 4096}
		}),
		"pre-allocated last record left zero": one(10, func(t *testing.T, dir string, s segFile) ([]int, Stats) {
			f := s.frames[9]
			patch(t, s.path, f.off, make([]byte, f.size()))
			appendFile(t, s.path, make([]byte, 1000))
			return seq(0, 9), Stats{TornTails: 1, TornBytes: f.size() + 1000}
		}),
		"garbage appended": one(10, func(t *testing.T, dir string, s segFile) ([]int, Stats) {
			appendFile(t, s.path, bytes.Repeat([]byte{0xab}, 100))
			return seq(0, 10), Stats{CorruptRegions: 1, CorruptBytes: 100}
		}),
		"garbage appended that starts like a frame": one(10, func(t *testing.T, dir string, s segFile) ([]int, Stats) {
			appendFile(t, s.path, []byte{50, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7})
			return seq(0, 10), Stats{TornTails: 1, TornBytes: 11}
		}),
		"segment header only, torn first record": one(1, func(t *testing.T, dir string, s segFile) ([]int, Stats) {
			truncate(t, s.path, headerSize+5)
			return nil, Stats{TornTails: 1, TornBytes: 5}
		}),
		"bad ack checksum": {n: 10, ackThrough: 4, corrupt: func(t *testing.T, dir string, segs []segFile) ([]int, Stats) {
			flip(t, filepath.Join(dir, ackName), 3)
			return seq(0, 10), Stats{BadAck: 1}
		}},
		"ack file truncated": {n: 10, ackThrough: 4, corrupt: func(t *testing.T, dir string, segs []segFile) ([]int, Stats) {
			truncate(t, filepath.Join(dir, ackName), 12)
			return seq(0, 10), Stats{BadAck: 1}
		}},
		"ack file missing": {n: 10, ackThrough: 4, corrupt: func(t *testing.T, dir string, segs []segFile) ([]int, Stats) {
			if err := os.Remove(filepath.Join(dir, ackName)); err != nil {
				t.Fatal(err)
			}
			return seq(0, 10), Stats{BadAck: 1}
		}},
		"intact ack": {n: 10, ackThrough: 4, corrupt: func(t *testing.T, dir string, segs []segFile) ([]int, Stats) {
			return seq(5, 10), Stats{}
		}},
		"corruption before the ack is not looked at": {n: 10, ackThrough: 4, corrupt: func(t *testing.T, dir string, segs []segFile) ([]int, Stats) {
			flip(t, segs[0].path, segs[0].frames[2].off+9)
			return seq(5, 10), Stats{}
		}},
		"missing middle segment": {n: 30, opt: small, ackThrough: -1, corrupt: func(t *testing.T, dir string, segs []segFile) ([]int, Stats) {
			if len(segs) < 4 {
				t.Fatalf("%d segments", len(segs))
			}
			if err := os.Remove(segs[1].path); err != nil {
				t.Fatal(err)
			}
			return idsOf(append(segs[:1:1], segs[2:]...)...), Stats{MissingSegments: 1}
		}},
		"missing segment after the ack": {n: 30, opt: small, ackThrough: 1, corrupt: func(t *testing.T, dir string, segs []segFile) ([]int, Stats) {
			if len(segs[0].frames) < 3 {
				t.Fatalf("first segment has %d records", len(segs[0].frames))
			}
			if err := os.Remove(segs[1].path); err != nil {
				t.Fatal(err)
			}
			return without(idsOf(append(segs[:1:1], segs[2:]...)...), 0, 1), Stats{MissingSegments: 1}
		}},
		"ack segment and the one after it gone": {n: 30, opt: small, ackThrough: 1, corrupt: func(t *testing.T, dir string, segs []segFile) ([]int, Stats) {
			for _, s := range segs[:2] {
				if err := os.Remove(s.path); err != nil {
					t.Fatal(err)
				}
			}
			return idsOf(segs[2:]...), Stats{MissingSegments: 1}
		}},
		"bad header of the first segment": {n: 30, opt: small, ackThrough: -1, corrupt: func(t *testing.T, dir string, segs []segFile) ([]int, Stats) {
			patch(t, segs[0].path, 0, []byte("XXXX"))
			return idsOf(segs[1:]...), Stats{CorruptRegions: 1, CorruptBytes: uint64(segs[0].size)}
		}},
		"middle segment cut short": {n: 30, opt: small, ackThrough: -1, corrupt: func(t *testing.T, dir string, segs []segFile) ([]int, Stats) {
			s := segs[1]
			if len(s.frames) < 3 {
				t.Fatalf("segment has %d records", len(s.frames))
			}
			f := s.frames[1]
			truncate(t, s.path, f.off+10)
			want := idsOf(segs...)
			for _, g := range s.frames[1:] {
				want = without(want, g.id)
			}
			return want, Stats{CorruptRegions: 1, CorruptBytes: 10}
		}},
		"corrupt record in a middle segment": {n: 30, opt: small, ackThrough: -1, corrupt: func(t *testing.T, dir string, segs []segFile) ([]int, Stats) {
			f := segs[1].frames[1]
			flip(t, segs[1].path, f.end-3)
			return without(idsOf(segs...), f.id), Stats{CorruptRegions: 1, CorruptBytes: f.size()}
		}},
		"megabytes of random garbage as a middle segment": {n: 30, opt: small, ackThrough: -1, corrupt: func(t *testing.T, dir string, segs []segFile) ([]int, Stats) {
			// Bounded by resyncBudget, however many lengths in the noise look plausible.
			garbage := make([]byte, 2<<20)
			_, _ = rand.NewChaCha8([32]byte{1}).Read(garbage) // never fails
			patch(t, segs[1].path, headerSize, garbage)
			return idsOf(append(segs[:1:1], segs[2:]...)...), Stats{CorruptRegions: 1, CorruptBytes: uint64(len(garbage))}
		}},
		"garbage over the end of a middle segment": {n: 30, opt: small, ackThrough: -1, corrupt: func(t *testing.T, dir string, segs []segFile) ([]int, Stats) {
			s := segs[1]
			last := s.frames[len(s.frames)-1]
			patch(t, s.path, last.off, bytes.Repeat([]byte{0xee}, int(last.size())))
			return without(idsOf(segs...), last.id), Stats{CorruptRegions: 1, CorruptBytes: last.size()}
		}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			build(t, dir, c.opt, c.n, c.ackThrough)
			want, wantStats := c.corrupt(t, dir, layout(t, dir))
			// `adtracker spill ls` reads the same damage without opening the queue: the same segments missing.
			if r, err := Inspect(dir, nil); err != nil || r.MissingSegments != wantStats.MissingSegments {
				t.Fatalf("Inspect: %d missing segments (err %v), want %d", r.MissingSegments, err, wantStats.MissingSegments)
			}

			q := open(t, dir, c.opt)
			got, _ := readAll(t, q)
			if !slices.Equal(got, want) {
				t.Fatalf("recovered %v\nwant      %v", got, want)
			}
			if st := q.Stats(); st != wantStats {
				t.Fatalf("stats %+v\nwant  %+v", st, wantStats)
			}
			// New records go after the survivors, in a segment of their own.
			if err := q.Append(rec(1000)); err != nil {
				t.Fatal(err)
			}
			if got, _ := readAll(t, q); !slices.Equal(got, []int{1000}) {
				t.Fatalf("after recovery read %v", got)
			}
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}

			// What was cut stays cut and the rewritten ack holds: a second Open finds
			// the same records plus the new one, and no torn tail or bad ack.
			q = open(t, dir, c.opt)
			got, _ = readAll(t, q)
			if want := append(want, 1000); !slices.Equal(got, want) {
				t.Fatalf("second open recovered %v\nwant %v", got, want)
			}
			if st := q.Stats(); st.TornTails != 0 || st.BadAck != 0 {
				t.Fatalf("second open stats %+v", st)
			}
		})
	}
}

// TestTornLastRecord cuts the last segment at every byte of its last record, as a crash
// in the middle of write(2) could.
func TestTornLastRecord(t *testing.T) {
	pristine := t.TempDir()
	build(t, pristine, Options{}, 5, -1)
	segs := layout(t, pristine)
	s := segs[len(segs)-1]
	last := s.frames[len(s.frames)-1]
	for cut := last.off; cut <= last.end; cut++ {
		dir := t.TempDir()
		copyDir(t, pristine, dir)
		path := filepath.Join(dir, filepath.Base(s.path))
		truncate(t, path, cut)

		q := open(t, dir, Options{})
		got, _ := readAll(t, q)
		want, wantStats := seq(0, 4), Stats{TornTails: 1, TornBytes: uint64(cut - last.off)}
		switch cut {
		case last.off:
			wantStats = Stats{}
		case last.end:
			want, wantStats = seq(0, 5), Stats{}
		}
		if !slices.Equal(got, want) || q.Stats() != wantStats {
			t.Fatalf("cut at %d (record %d..%d): read %v, stats %+v", cut, last.off, last.end, got, q.Stats())
		}
		if size := fileSize(t, path); size != min(cut, last.off) && cut != last.end {
			t.Fatalf("cut at %d: segment left at %d bytes, want %d", cut, size, last.off)
		}
		q.Close()
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCorruptionWhileOpen rots a record after Open validated it: Next must still
// check every checksum, skip the record and count it once, even across Rewind.
func TestCorruptionWhileOpen(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, Options{SegmentBytes: 400})
	appendRange(t, q, 0, 10)
	segs := layout(t, dir)
	f := segs[0].frames[1]
	flip(t, segs[0].path, f.off+10)

	got, _ := readAll(t, q)
	if want := without(seq(0, 10), f.id); !slices.Equal(got, want) {
		t.Fatalf("read %v, want %v", got, want)
	}
	q.Rewind()
	got, _ = readAll(t, q)
	if want := without(seq(0, 10), f.id); !slices.Equal(got, want) {
		t.Fatalf("after rewind read %v, want %v", got, want)
	}
	if st := q.Stats(); st.CorruptRegions != 1 || st.CorruptBytes != f.size() {
		t.Fatalf("stats %+v", st)
	}
}

func TestSegmentRemovedWhileOpen(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, Options{SegmentBytes: 400})
	appendRange(t, q, 0, 20)
	segs := layout(t, dir)
	if err := os.Remove(segs[1].path); err != nil {
		t.Fatal(err)
	}
	got, _ := readAll(t, q)
	if want := idsOf(append(segs[:1:1], segs[2:]...)...); !slices.Equal(got, want) {
		t.Fatalf("read %v, want %v", got, want)
	}
	if st := q.Stats(); st.MissingSegments != 1 {
		t.Fatalf("stats %+v", st)
	}
}
