package ring

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"os"
	"runtime"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The mirror is how the ring survives a machine crash without msync.
//
// The ring file is a shared mapping, so a killed process loses nothing: the page cache holds its pages. A machine crash loses the
// pages the kernel had not written back, and msync used to bound that. But msync write-protects every page it writes back, and the
// next store into each faults; on the virtual machines this runs on, that cycle cost ~19 CPU-µs per 4 KiB page, about 1.2 µs per
// 200-byte event (BenchmarkEnqueueMappedSynced; BENCHMARKS.md, "Design measurements").
//
// So the syncer copies the mapping into a second file, the mirror (<ring>.mirror), with pwrite and fdatasync: the same bytes at the
// same offsets, so it has the ring file's format and the same scan reads it. A page is written only when its contents changed since
// the last sync (a 64-bit hash per page), and writing from the mapping through pwrite never touches the mapping's page tables: in
// the same benchmark the mirror costs next to nothing over no sync at all. The ring file itself is msynced only at Reset and Close;
// the kernel writes it back on its own schedule, which is no longer what bounds a loss.
//
// Which copy Open trusts: the ring header records the boot (Linux's boot_id) of the process that last reset it. Same boot — the
// process died but the machine did not — the ring file is complete and current, and the mirror, older, is not read. Another boot:
// the page cache is gone, the ring file holds whatever the kernel wrote back, and the mirror holds everything published before its
// last sync; Open takes the records of both (a position found in both is one record). The records recovered after a crash are
// replayed as "maybe stored", so a record the mirror still held but ClickHouse already had is not stored twice.
type mirror struct {
	f       *os.File
	seed    maphash.Seed
	sums    []uint64 // per page of the mapping: hash of what the mirror holds; 0 forces a write
	scratch []byte   // header and sequence pages, copied word by word with atomic loads before they are written
}

// mirrorSuffix names the mirror after its ring file.
const mirrorSuffix = ".mirror"

// mirrorPage is the unit of change detection and of the writes.
const mirrorPage = 4096

// yieldPages is how many pages sync hashes between yields to other goroutines: 256 KiB, ~35 µs.
const yieldPages = 64

// scratchPages bounds the copy of the sequence array the mirror writes from: 16 pages (64 KiB) at a time.
const scratchPages = 16

func openMirror(path string, size int64) (*mirror, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(size); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("ring: size %s: %w", path, err)
	}
	// As for the ring file: refuse at start rather than fail a sync later on a full disk.
	if err := reserve(f, size); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("ring: reserve %d bytes for %s: %w", size, path, err)
	}
	return &mirror{
		f:       f,
		seed:    maphash.MakeSeed(),
		sums:    make([]uint64, (size+mirrorPage-1)/mirrorPage),
		scratch: make([]byte, scratchPages*mirrorPage),
	}, nil
}

// sync makes the mirror equal to mem and durable. Pages [0, words) — the header and the sequence array, which producers and
// Release store into with atomics — are read word by word with atomic loads, and before the data pages: any record whose
// publication the copy of its sequence word shows has its bytes in place when its data page is read. Only one goroutine may call
// it (the pipeline's syncer, or Close).
func (m *mirror) sync(mem []byte, words int) error {
	if err := m.copyChanged(mem, words); err != nil {
		// Some pages were hashed but not written, or written but not known durable: rewrite everything next time.
		clear(m.sums)
		return err
	}
	return nil
}

func (m *mirror) copyChanged(mem []byte, words int) error {
	seqEnd := words * 8 / mirrorPage
	for first := 0; first < seqEnd; first += scratchPages {
		n := min(scratchPages, seqEnd-first)
		buf := m.scratch[:n*mirrorPage]
		src := unsafe.Slice((*uint64)(unsafe.Pointer(&mem[first*mirrorPage])), n*mirrorPage/8) //nolint:gosec // G103: page-aligned words of the mapping
		dst := unsafe.Slice((*uint64)(unsafe.Pointer(&buf[0])), len(src))                      //nolint:gosec // G103: the scratch's words
		for i := range src {
			dst[i] = atomic.LoadUint64(&src[i])
		}
		if err := m.writeChanged(buf, first); err != nil {
			return err
		}
	}
	if err := m.writeChanged(mem[seqEnd*mirrorPage:], seqEnd); err != nil {
		return err
	}
	if err := unix.Fdatasync(int(m.f.Fd())); err != nil {
		return fmt.Errorf("ring: fdatasync mirror: %w", err)
	}
	return nil
}

// writeChanged writes the pages of b (page first of the file onwards) whose hash differs from the last written, one pwrite per
// run of changed pages.
func (m *mirror) writeChanged(b []byte, first int) error {
	pages := (len(b) + mirrorPage - 1) / mirrorPage
	run := -1 // first changed page of the current run, relative to b
	flush := func(end int) error {
		if run < 0 {
			return nil
		}
		lo, hi := run*mirrorPage, min(end*mirrorPage, len(b))
		run = -1
		if _, err := m.f.WriteAt(b[lo:hi], int64(first*mirrorPage+lo)); err != nil {
			return fmt.Errorf("ring: write mirror: %w", err)
		}
		return nil
	}
	for i := range pages {
		if i%yieldPages == yieldPages-1 {
			// Hashing the default ring takes ~2.3 ms (BenchmarkMirrorSyncUnchanged); in one stretch it would hold one of the
			// process's few CPUs from the request handlers that long, once a second, which shows in their tail latency.
			runtime.Gosched()
		}
		page := b[i*mirrorPage : min((i+1)*mirrorPage, len(b))]
		h := maphash.Bytes(m.seed, page) | 1 // never 0: 0 means "unknown, write it"
		if h == m.sums[first+i] {
			if err := flush(i); err != nil {
				return err
			}
			continue
		}
		m.sums[first+i] = h
		if run < 0 {
			run = i
		}
	}
	return flush(pages)
}

func (m *mirror) close() error { return m.f.Close() }

// bootIDFile is where Linux names the current boot; a variable so tests can pose as another boot.
var bootIDFile = "/proc/sys/kernel/random/boot_id"

// bootIDOffset is where the ring header keeps the boot id of the process that last reset the file (36 bytes of text).
const bootIDOffset, bootIDLen = 64, 36

// bootID returns this boot's id, or nil where the system has none (then Open always reads the mirror too).
func bootID() []byte {
	b, err := os.ReadFile(bootIDFile)
	if err != nil {
		return nil
	}
	b = bytes.TrimSpace(b)
	if len(b) != bootIDLen {
		return nil
	}
	return b
}

// sameBoot reports whether img's header was written during this boot: then the page cache kept the ring file whole.
func sameBoot(img []byte, boot []byte) bool {
	return boot != nil && len(img) >= bootIDOffset+bootIDLen && bytes.Equal(img[bootIDOffset:bootIDOffset+bootIDLen], boot)
}

// union merges two position-ordered record lists; a position in both is one record (the first list's).
func union(a, b []Record) []Record {
	out := make([]Record, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i].Pos < b[j].Pos):
			out = append(out, a[i])
			i++
		case i == len(a) || b[j].Pos < a[i].Pos:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}
