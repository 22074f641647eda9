// Package ring is a bounded multi-producer, single-consumer queue of variable-length byte records that lives in a memory-mapped file,
// so an enqueued record survives the death of the process.
//
// It is Dmitry Vyukov's bounded queue with the sequence numbers moved out of the slots. The file is a header page, an array of one
// u64 sequence number per slot, and an array of small fixed-size data slots (SlotSize bytes, e.g. 56). A record is an 8-byte header
// (crc32c u32 | len u16 | kind u16, the crc covering len, kind and payload) followed by its payload, and occupies the k =
// ceil((8+len)/SlotSize) consecutive slots it needs; because no sequence word sits between slots, the record's bytes are contiguous
// and the consumer hands out one slice of the mapping. A record never wraps: a claim that would cross the end of the data array also
// takes the slots up to the end as padding (a "skip" header in the first of them) and puts the record at slot 0.
//
// Slot at position p (index p%cap) is free for that lap when seq == p. A producer reads the tail, checks that every slot of its claim
// is free (any slot still held from the previous lap, seq < position, means full: return false at once), and moves the tail past
// the claim with one CAS. A checked-free slot cannot be taken without moving the tail, and the tail only grows, so a successful CAS
// owns the whole claim. The producer writes the record, then stores seq = p+1 in the claim's FIRST slot only, last. Continuation
// slots keep seq == position: producers of this lap are already past them, producers of the next lap see seq < position (full), and
// recovery never takes them for a record start. A claim killed before its first seq store was never acknowledged and is invisible.
//
// The consumer reads claims in order and does not free them when it reads: a claim stays published until Release stores seq =
// p+cap in each of its slots, which the pipeline does only once the record is stored in ClickHouse or in a spill segment. So at
// any moment every published-but-unreleased claim holds an event that was answered 2xx and is not yet safe elsewhere — exactly what
// Open recovers after a SIGKILL. Files written by the previous layout (one 512-byte slot per record, "ADRING01") are recovered too.
//
// Producers never lock, never wait and never allocate: a full ring makes Enqueue return false at once (the handler answers 503).
// When the file is a MAP_SHARED mapping, the kernel owns the pages; a killed process loses nothing it stored. Only a machine crash
// can lose pages not yet written back, which Sync bounds (it writes the mirror, a copy in the same format: mirror.go); the checksums
// find records such a crash tore.
package ring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"sort"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	headerSize = 4096 // one page: magic | capacity u64 | slot size u64
	magic      = "ADRING02"
	magicV1    = "ADRING01"
	// recHeader precedes every record and padding run: crc32c u32 (of the next 4 bytes and the payload) | len u16 | kind u16.
	recHeader = 8
	// kindRecord marks a record; kindSkip marks padding to the end of the data array, whose record starts at slot 0. Its len is
	// the number of padding slots, which recovery checks against the slot's index.
	kindRecord = 1
	kindSkip   = 2

	maxSlotSize = 1 << 12
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrTooLarge is returned by Enqueue for a record longer than MaxRecord.
var ErrTooLarge = errors.New("ring: record larger than MaxRecord")

// Options shape a ring. The file (or heap ring) takes Bytes() bytes: Capacity × (SlotSize + 8) and two small headers.
type Options struct {
	Capacity int // slots, a power of two
	SlotSize int // data bytes per slot, a multiple of 8 in [16, 4096]; a record takes ceil((8+len)/SlotSize) slots
	// Mirror keeps <path>.mirror, a copy Sync writes with pwrite and fdatasync, for machine crashes (mirror.go). Without it
	// Sync is an msync of the mapping.
	Mirror bool
}

// Bytes is the size of the ring file for o.
func (o Options) Bytes() int64 {
	return dataOffset(uint64(o.Capacity)) + int64(o.Capacity)*int64(o.SlotSize)
}

// dataOffset is where the data array starts: the header page, then the sequence array rounded up to a page so data slots stay
// aligned.
func dataOffset(capacity uint64) int64 {
	return int64(headerSize + (capacity*8+headerSize-1)/headerSize*headerSize)
}

// Ring is the queue. Enqueue may be called from any goroutine; Next from one consumer goroutine; Release from any goroutine.
type Ring struct {
	_    [64]byte // keep tail on its own cache line: every producer CASes it
	tail atomic.Uint64
	_    [56]byte

	// head and released are written as records are read and released; on the producers' line of read-only fields below, every
	// write would cost the next Enqueue on another core a cache miss.
	head     uint64        // consumer position; only the consumer goroutine touches it
	released atomic.Uint64 // count of released slots, for Len
	_        [48]byte

	mask      uint64
	capacity  uint64
	slotSize  uint64
	maxRecord int
	slotInv   uint64 // ceil(2^32 / slotSize): slots() divides by multiplying
	mem       []byte
	seqs      []uint64 // capacity words inside mem
	data      []byte   // capacity × slotSize bytes inside mem
	file      *os.File
	mapped    bool
	path      string
	useMirror bool
	mirror    *mirror // open while useMirror; written by Reset and Sync
}

// Record is a published claim found by Open.
type Record struct {
	Pos  uint64 // position of the claim's first slot; records come in Pos order
	Data []byte // copied out of the mapping
}

// RecoverStats counts what Open saw.
type RecoverStats struct {
	Pending int // published, unreleased records returned
	Corrupt int // published claims whose checksum, length or padding did not match (only a machine crash can cause this)
}

// New returns a ring backed by process memory, for tests and for a deliberately non-durable mode.
func New(opt Options) (*Ring, error) {
	if err := opt.check(); err != nil {
		return nil, err
	}
	// Words, not bytes: the sequence array needs 8-byte alignment for its atomics.
	words := make([]uint64, opt.Bytes()/8)
	mem := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(words)*8) //nolint:gosec // G103: a byte view of the words above
	r := &Ring{mem: mem}
	r.init(opt)
	r.reset()
	return r, nil
}

// Open maps path (creating it when missing) and returns the ring together with the records a previous process published and never
// released, in enqueue order. The caller must make those safe (the pipeline writes them to a spill segment) and then call Reset before
// the first Enqueue. A file with another geometry or the previous layout is read as it was written, kept intact until Reset (so a
// process killed before Reset recovers the same records again), and rewritten with opt's geometry by Reset.
func Open(path string, opt Options) (*Ring, []Record, RecoverStats, error) {
	if err := opt.check(); err != nil {
		return nil, nil, RecoverStats{}, err
	}
	recs, st := recoverRecords(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, st, err
	}
	size := opt.Bytes()
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, nil, st, err
	}
	// Grow now, shrink only in Reset: until the recovered records are safe the old image must stay whole.
	if fi.Size() < size || (fi.Size() > size && len(recs) == 0) {
		if err := f.Truncate(size); err != nil {
			_ = f.Close()
			return nil, nil, st, fmt.Errorf("ring: size %s: %w", path, err)
		}
	}
	// Reserve the file's blocks now: a store into a page of a sparse file on a full disk kills the process with SIGBUS, while a
	// refusal here is one clear error at start. Filesystems without fallocate keep the sparse file.
	if err := reserve(f, size); err != nil {
		_ = f.Close()
		return nil, nil, st, fmt.Errorf("ring: reserve %d bytes for %s: %w", size, path, err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		_ = f.Close()
		return nil, nil, st, fmt.Errorf("ring: mmap %s: %w", path, err)
	}
	r := &Ring{mem: mem, file: f, mapped: true, path: path, useMirror: opt.Mirror}
	r.init(opt)
	if len(recs) == 0 {
		// Nothing to hand over: start clean now so a caller that forgets Reset is still correct.
		if err := r.Reset(); err != nil {
			_ = r.Close()
			return nil, nil, st, err
		}
	}
	return r, recs, st, nil
}

// recoverRecords reads the published, unreleased records of the ring file at path and, unless the file was reset during this
// boot, of its mirror too (mirror.go says why).
func recoverRecords(path string) ([]Record, RecoverStats) {
	img, err := os.ReadFile(path)
	if err != nil {
		img = nil
	}
	recs, st := scan(img)
	if sameBoot(img, bootID()) {
		return recs, st
	}
	mimg, err := os.ReadFile(path + mirrorSuffix)
	if err != nil {
		return recs, st
	}
	mrecs, mst := scan(mimg)
	recs = union(mrecs, recs)
	// A claim torn in one copy may be whole in the other, so the copies' counts do not add up; the larger is the closer bound.
	return recs, RecoverStats{Pending: len(recs), Corrupt: max(st.Corrupt, mst.Corrupt)}
}

func (o Options) check() error {
	if o.Capacity < 2 || o.Capacity&(o.Capacity-1) != 0 || o.Capacity > 1<<32 {
		return fmt.Errorf("ring: capacity %d is not a power of two in [2, 2^32]", o.Capacity)
	}
	if o.SlotSize < 16 || o.SlotSize%8 != 0 || o.SlotSize > maxSlotSize {
		return fmt.Errorf("ring: slot size %d must be a multiple of 8 in [16, %d]", o.SlotSize, maxSlotSize)
	}
	return nil
}

func (r *Ring) init(opt Options) {
	r.capacity = uint64(opt.Capacity)
	r.mask = r.capacity - 1
	r.slotSize = uint64(opt.SlotSize)
	r.slotInv = (1<<32 + r.slotSize - 1) / r.slotSize
	// A claim is at most 2k-1 slots (k for the record, fewer than k of padding); keeping k ≤ cap/2 keeps a claim within one lap,
	// so it never meets its own slots.
	r.maxRecord = min(0xFFFF, opt.Capacity/2*opt.SlotSize-recHeader)
	off := dataOffset(r.capacity)
	r.seqs = unsafe.Slice((*uint64)(unsafe.Pointer(&r.mem[headerSize])), r.capacity) //nolint:gosec // G103: page-aligned, inside mem
	r.data = r.mem[off : off+int64(r.capacity*r.slotSize)]
}

// Reset frees every slot and writes the header. Call it after the records from Open are safe. A file-backed ring is then written
// back once, and its mirror rewritten whole (or removed when Options.Mirror is off): neither copy may still hold the records
// just made safe, nor a previous geometry.
func (r *Ring) Reset() error {
	r.reset()
	if !r.mapped {
		return nil
	}
	if err := unix.Msync(r.mem, unix.MS_SYNC); err != nil {
		return fmt.Errorf("ring: msync %s: %w", r.path, err)
	}
	if !r.useMirror {
		if err := os.Remove(r.path + mirrorSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	if r.mirror == nil {
		m, err := openMirror(r.path+mirrorSuffix, int64(len(r.mem)))
		if err != nil {
			return err
		}
		r.mirror = m
	}
	clear(r.mirror.sums)
	return r.Sync()
}

func (r *Ring) reset() {
	// Invalidate first: a process killed half way through leaves a file that recovers nothing (the records are safe already)
	// rather than a mix of two layouts.
	copy(r.mem[:8], "\x00\x00\x00\x00\x00\x00\x00\x00")
	for i := range r.capacity {
		atomic.StoreUint64(&r.seqs[i], i)
	}
	binary.LittleEndian.PutUint64(r.mem[8:], r.capacity)
	binary.LittleEndian.PutUint64(r.mem[16:], r.slotSize)
	clear(r.mem[bootIDOffset : bootIDOffset+bootIDLen])
	if r.mapped {
		copy(r.mem[bootIDOffset:], bootID())
	}
	copy(r.mem[:8], magic)
	if r.file != nil {
		// Drops what an older, larger file kept past our geometry (Open did not shrink it while it held records).
		_ = r.file.Truncate(int64(len(r.mem)))
	}
	r.tail.Store(0)
	r.released.Store(0)
	r.head = 0
}

// MaxRecord is the largest record Enqueue takes.
func (r *Ring) MaxRecord() int { return r.maxRecord }

// Slots is the number of slots a record of n bytes occupies (not counting padding at the end of the data array).
func (r *Ring) Slots(n int) int { return int(r.slots(uint64(n))) }

// slots is ceil((recHeader+n)/slotSize) without a division on the hot path: for numerators below 2^17 (n ≤ 0xFFFF) and slot sizes
// up to 4096 the multiplication by the rounded-up reciprocal errs by less than 2^-15, while a quotient's fraction is at most
// 1-2^-12 — so the floor is exact (TestSlotsMatchesDivision checks every case).
func (r *Ring) slots(n uint64) uint64 { return ((n + recHeader + r.slotSize - 1) * r.slotInv) >> 32 }

// Cap is the number of slots.
func (r *Ring) Cap() int { return int(r.capacity) }

// Len is the number of slots enqueued (with their padding) and not yet released (approximate while producers run).
func (r *Ring) Len() int {
	t, rel := r.tail.Load(), r.released.Load()
	if t < rel {
		return 0
	}
	return int(t - rel)
}

// Enqueue copies p into the next free slots and publishes it. It returns false when the ring is full (the slots at the tail are
// still held) and ErrTooLarge for a record longer than MaxRecord. It never blocks and never allocates.
func (r *Ring) Enqueue(p []byte) (bool, error) {
	if len(p) > r.maxRecord {
		return false, ErrTooLarge
	}
	k := r.slots(uint64(len(p)))
	pos := r.tail.Load()
	for {
		n := k
		if idx := pos & r.mask; idx+k > r.capacity {
			n += r.capacity - idx // padding to the end of the data array; the record goes to slot 0
		}
		switch r.claimable(pos, n) {
		case 0:
			if r.tail.CompareAndSwap(pos, pos+n) {
				r.fill(pos, n, k, p)
				// Publish last, first slot only: until this store the claim is invisible to the consumer and to recovery.
				atomic.StoreUint64(&r.seqs[pos&r.mask], pos+1)
				return true, nil
			}
			pos = r.tail.Load()
		case -1:
			return false, nil
		default:
			pos = r.tail.Load()
		}
	}
}

// claimable returns 0 when positions [pos, pos+n) are all free for this lap, -1 when one is still held from the previous lap (full),
// 1 when one is already past this lap's pos (another producer moved the tail: reload it).
func (r *Ring) claimable(pos, n uint64) int {
	for q := pos; q < pos+n; q++ {
		switch dif := int64(atomic.LoadUint64(&r.seqs[q&r.mask]) - q); {
		case dif < 0:
			return -1
		case dif > 0:
			return 1
		}
	}
	return 0
}

// fill writes p into the claim [pos, pos+n): k slots of record, after n-k of padding when the record had to move to slot 0.
func (r *Ring) fill(pos, n, k uint64, p []byte) {
	idx := pos & r.mask
	if n > k {
		h := r.data[idx*r.slotSize : idx*r.slotSize+recHeader]
		binary.LittleEndian.PutUint16(h[4:], uint16(n-k))
		binary.LittleEndian.PutUint16(h[6:], kindSkip)
		binary.LittleEndian.PutUint32(h[0:], crc32.Checksum(h[4:], castagnoli))
		idx = 0
	}
	b := r.data[idx*r.slotSize : idx*r.slotSize+recHeader+uint64(len(p))]
	binary.LittleEndian.PutUint16(b[4:], uint16(len(p)))
	binary.LittleEndian.PutUint16(b[6:], kindRecord)
	copy(b[recHeader:], p)
	// Checksum the copy, not p: crc32 runs through a function value, which would make every caller's buffer escape to the heap.
	binary.LittleEndian.PutUint32(b[0:], crc32.Checksum(b[4:], castagnoli))
}

// Next returns the next published record without freeing it; ok is false when none is ready. [from, to) are all the positions the
// claim took, padding included: release exactly those. data aliases the mapping and stays valid until they are released. Only one
// goroutine may call Next.
func (r *Ring) Next() (from, to uint64, data []byte, ok bool) {
	from = r.head
	if atomic.LoadUint64(&r.seqs[from&r.mask]) != from+1 {
		return 0, 0, nil, false
	}
	pos := from
	off := (pos & r.mask) * r.slotSize
	if binary.LittleEndian.Uint16(r.data[off+6:]) == kindSkip {
		pos += r.capacity - pos&r.mask
		off = 0
	}
	n := uint64(binary.LittleEndian.Uint16(r.data[off+4:]))
	to = pos + r.slots(n)
	r.head = to
	return from, to, r.data[off+recHeader : off+recHeader+n], true
}

// Release frees the positions [from, to); call it once those records are stored elsewhere. Any goroutine, any order, but always
// whole claims as Next returned them.
func (r *Ring) Release(from, to uint64) {
	for p := from; p < to; p++ {
		atomic.StoreUint64(&r.seqs[p&r.mask], p+r.capacity)
	}
	r.released.Add(to - from)
}

// Sync makes what was published so far survive a machine crash: it writes the mirror (Options.Mirror) or msyncs the mapping. One
// goroutine at a time.
func (r *Ring) Sync() error {
	if !r.mapped {
		return nil
	}
	if r.mirror != nil {
		return r.mirror.sync(r.mem, int(dataOffset(r.capacity)/8))
	}
	return unix.Msync(r.mem, unix.MS_SYNC)
}

// Close syncs (both the mirror and the ring file itself) and unmaps. Records still unreleased stay in the file for the next Open.
func (r *Ring) Close() error {
	if !r.mapped {
		return nil
	}
	err := r.Sync()
	if r.mirror != nil {
		if e := unix.Msync(r.mem, unix.MS_SYNC); err == nil {
			err = e
		}
		if e := r.mirror.close(); err == nil {
			err = e
		}
		r.mirror = nil
	}
	if e := unix.Munmap(r.mem); err == nil {
		err = e
	}
	r.mapped = false
	if e := r.file.Close(); err == nil {
		err = e
	}
	return err
}

// scan finds published, unreleased records in a file image of either layout, using the geometry stored in its header. It trusts
// nothing in the image: every offset is checked against the image before it is used.
func scan(img []byte) ([]Record, RecoverStats) {
	var st RecoverStats
	if len(img) < headerSize {
		return nil, st
	}
	capacity := binary.LittleEndian.Uint64(img[8:])
	slotSize := binary.LittleEndian.Uint64(img[16:])
	size := uint64(len(img))
	if capacity < 2 || capacity&(capacity-1) != 0 || capacity > size || slotSize%8 != 0 || slotSize > size {
		return nil, st
	}
	var recs []Record
	switch string(img[:8]) {
	case magic:
		recs = scanV2(img, capacity, slotSize, &st)
	case magicV1:
		recs = scanV1(img, capacity, slotSize, &st)
	}
	sort.Slice(recs, func(a, b int) bool { return recs[a].Pos < recs[b].Pos })
	st.Pending = len(recs)
	return recs, st
}

func scanV2(img []byte, capacity, slotSize uint64, st *RecoverStats) []Record {
	off := uint64(dataOffset(capacity))
	if slotSize < 16 || off > uint64(len(img)) || capacity > (uint64(len(img))-off)/slotSize {
		return nil
	}
	seqs := img[headerSize:]
	data := img[off : off+capacity*slotSize]
	mask := capacity - 1
	seq := func(i uint64) uint64 { return binary.LittleEndian.Uint64(seqs[i*8:]) }
	// header checks the header at slot i and returns its len and kind, ok false when its checksum does not cover n payload bytes.
	header := func(i uint64) (n uint64, kind uint16, ok bool) {
		h := data[i*slotSize:]
		n, kind = uint64(binary.LittleEndian.Uint16(h[4:])), binary.LittleEndian.Uint16(h[6:])
		end := recHeader
		if kind == kindRecord {
			if i*slotSize+recHeader+n > uint64(len(data)) {
				return 0, 0, false
			}
			end += int(n)
		}
		return n, kind, crc32.Checksum(h[4:end], castagnoli) == binary.LittleEndian.Uint32(h)
	}
	var recs []Record
	for i := range capacity {
		s := seq(i)
		// The first slot of a published claim at position p has seq == p+1, p ≡ i (mod capacity). Free, released and continuation
		// slots have seq ≡ i.
		if s == 0 || (s-1)&mask != i {
			continue
		}
		n, kind, ok := header(i)
		at := i
		if ok && kind == kindSkip {
			// Padding to the end, record at slot 0, which must not be the start of a claim of its own.
			if n != capacity-i || (seq(0)-1)&mask == 0 {
				st.Corrupt++
				continue
			}
			at = 0
			n, kind, ok = header(0)
		}
		if !ok || kind != kindRecord || at+(recHeader+n+slotSize-1)/slotSize > capacity {
			st.Corrupt++
			continue
		}
		b := data[at*slotSize+recHeader : at*slotSize+recHeader+n]
		recs = append(recs, Record{Pos: s - 1, Data: append([]byte(nil), b...)})
	}
	return recs
}

// scanV1 reads the previous layout: slots of slotSize bytes, each seq u64 | len u16 | reserved u16 | crc32c u32 (of the payload) |
// payload, one record per slot.
func scanV1(img []byte, capacity, slotSize uint64, st *RecoverStats) []Record {
	const slotHeader = 16
	if slotSize < slotHeader || capacity > (uint64(len(img))-headerSize)/slotSize {
		return nil
	}
	var recs []Record
	for i := range capacity {
		b := img[headerSize+i*slotSize : headerSize+(i+1)*slotSize]
		seq := binary.LittleEndian.Uint64(b)
		if seq == 0 || (seq-1)&(capacity-1) != i {
			continue
		}
		n := uint64(binary.LittleEndian.Uint16(b[8:]))
		if slotHeader+n > slotSize {
			st.Corrupt++
			continue
		}
		data := b[slotHeader : slotHeader+n]
		if crc32.Checksum(data, castagnoli) != binary.LittleEndian.Uint32(b[12:]) {
			st.Corrupt++
			continue
		}
		recs = append(recs, Record{Pos: seq - 1, Data: append([]byte(nil), data...)})
	}
	return recs
}
