// Package ring is a bounded multi-producer, single-consumer queue of small byte records whose slots live in a memory-mapped file, so an
// enqueued record survives the death of the process.
//
// It is Dmitry Vyukov's bounded queue: every slot carries a sequence number. A producer claims position p with one CAS on the tail,
// copies its record into slot p%cap and publishes it by storing seq = p+1. The consumer reads in order and does not free a slot when it
// reads it: the slot stays "published" until Release(p) stores seq = p+cap, which the pipeline calls only once the record is stored in
// ClickHouse or in a spill segment. So at any moment every published-but-unreleased slot holds an event that was answered 2xx and is not
// yet safe elsewhere — exactly what Recover returns after a SIGKILL.
//
// Producers never lock and never wait: a full ring makes Enqueue return false at once (the handler answers 503).
// When the file is a MAP_SHARED mapping, the kernel owns the pages; a killed process loses nothing it stored. Only a machine crash can lose
// pages not yet written back, which Sync (msync) bounds.
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
	headerSize = 4096 // one page: keeps slots page-aligned
	magic      = "ADRING01"
	// slot layout: seq u64 | len u16 | reserved u16 | crc32c u32 | payload
	slotHeader = 16
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrTooLarge is returned by Enqueue for a record longer than the slot payload.
var ErrTooLarge = errors.New("ring: record larger than slot")

// Options shape a ring. Capacity must be a power of two.
type Options struct {
	Capacity int // slots
	SlotSize int // bytes per slot including a 16-byte header; multiple of 8
}

// Ring is the queue. Enqueue may be called from any goroutine; Next from one consumer goroutine; Release from any goroutine.
type Ring struct {
	_    [64]byte // keep tail on its own cache line: every producer CASes it
	tail atomic.Uint64
	_    [56]byte

	released atomic.Uint64 // count of released slots, for Len
	head     uint64        // consumer position; only the consumer goroutine touches it
	mask     uint64
	capacity uint64
	slotSize uint64
	mem      []byte
	slots    unsafe.Pointer
	file     *os.File
	mapped   bool
}

// Record is a published slot found by Recover.
type Record struct {
	Pos  uint64
	Data []byte // copied out of the mapping
}

// RecoverStats counts what Recover saw.
type RecoverStats struct {
	Pending int // published, unreleased records returned
	Corrupt int // published slots whose checksum or length did not match (only a machine crash can cause this)
}

// New returns a ring backed by process memory, for tests and for a deliberately non-durable mode.
func New(opt Options) (*Ring, error) {
	if err := opt.check(); err != nil {
		return nil, err
	}
	mem := make([]byte, headerSize+opt.Capacity*opt.SlotSize)
	r := &Ring{mem: mem}
	r.init(opt)
	r.reset()
	return r, nil
}

// Open maps path (creating it when missing) and returns the ring together with the records a previous process published and never
// released, in enqueue order. The caller must make those safe (the pipeline writes them to a spill segment) and then call Reset before
// the first Enqueue. A file with another geometry is read with its own geometry and then resized to opt on Reset.
func Open(path string, opt Options) (*Ring, []Record, RecoverStats, error) {
	var st RecoverStats
	if err := opt.check(); err != nil {
		return nil, nil, st, err
	}
	var recs []Record
	if old, err := os.ReadFile(path); err == nil && len(old) >= headerSize && string(old[:8]) == magic {
		recs, st = scan(old)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, st, err
	}
	size := int64(headerSize + opt.Capacity*opt.SlotSize)
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, nil, st, err
	}
	if fi.Size() != size {
		// Recovered records are already copied out; resizing cannot lose them.
		if err := f.Truncate(size); err != nil {
			_ = f.Close()
			return nil, nil, st, fmt.Errorf("ring: size %s: %w", path, err)
		}
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		_ = f.Close()
		return nil, nil, st, fmt.Errorf("ring: mmap %s: %w", path, err)
	}
	r := &Ring{mem: mem, file: f, mapped: true}
	r.init(opt)
	if len(recs) == 0 {
		// Nothing to hand over: start clean now so a caller that forgets Reset is still correct.
		r.reset()
	}
	return r, recs, st, nil
}

func (o Options) check() error {
	if o.Capacity < 2 || o.Capacity&(o.Capacity-1) != 0 {
		return fmt.Errorf("ring: capacity %d is not a power of two ≥ 2", o.Capacity)
	}
	if o.SlotSize < slotHeader+8 || o.SlotSize%8 != 0 || o.SlotSize > slotHeader+0xFFFF {
		return fmt.Errorf("ring: slot size %d must be a multiple of 8 in [24, 65551]", o.SlotSize)
	}
	return nil
}

func (r *Ring) init(opt Options) {
	r.capacity = uint64(opt.Capacity)
	r.mask = r.capacity - 1
	r.slotSize = uint64(opt.SlotSize)
	r.slots = unsafe.Pointer(&r.mem[headerSize]) //nolint:gosec // G103: the mapping outlives the ring; slot() stays inside it
}

// Reset frees every slot and writes the header. Call it after the records from Open are safe.
func (r *Ring) Reset() { r.reset() }

func (r *Ring) reset() {
	copy(r.mem[:8], magic)
	binary.LittleEndian.PutUint64(r.mem[8:], r.capacity)
	binary.LittleEndian.PutUint64(r.mem[16:], r.slotSize)
	for i := uint64(0); i < r.capacity; i++ {
		atomic.StoreUint64(r.seq(i), i)
	}
	r.tail.Store(0)
	r.released.Store(0)
	r.head = 0
}

func (r *Ring) slot(pos uint64) []byte {
	off := (pos & r.mask) * r.slotSize
	return unsafe.Slice((*byte)(unsafe.Add(r.slots, off)), r.slotSize) //nolint:gosec // G103: off+slotSize ≤ capacity*slotSize by the mask
}

func (r *Ring) seq(pos uint64) *uint64 {
	return (*uint64)(unsafe.Add(r.slots, (pos&r.mask)*r.slotSize))
}

// MaxRecord is the largest record a slot holds.
func (r *Ring) MaxRecord() int { return int(r.slotSize) - slotHeader }

// Cap is the number of slots.
func (r *Ring) Cap() int { return int(r.capacity) }

// Len is the number of slots enqueued and not yet released (approximate while producers run).
func (r *Ring) Len() int {
	t, rel := r.tail.Load(), r.released.Load()
	if t < rel {
		return 0
	}
	return int(t - rel)
}

// Enqueue copies p into the next free slot and publishes it. It returns false when the ring is full (no free slot at the tail) and
// ErrTooLarge for an oversized record. It never blocks and never allocates.
func (r *Ring) Enqueue(p []byte) (bool, error) {
	if len(p) > r.MaxRecord() {
		return false, ErrTooLarge
	}
	pos := r.tail.Load()
	for {
		s := r.seq(pos)
		seq := atomic.LoadUint64(s)
		switch dif := int64(seq - pos); {
		case dif == 0:
			if r.tail.CompareAndSwap(pos, pos+1) {
				b := r.slot(pos)
				binary.LittleEndian.PutUint16(b[8:], uint16(len(p)))
				n := copy(b[slotHeader:], p)
				// Checksum the copy, not p: crc32 runs through a function value, which would make every caller's buffer
				// escape to the heap.
				binary.LittleEndian.PutUint32(b[12:], crc32.Checksum(b[slotHeader:slotHeader+n], castagnoli))
				atomic.StoreUint64(s, pos+1)
				return true, nil
			}
			pos = r.tail.Load()
		case dif < 0:
			return false, nil
		default:
			pos = r.tail.Load()
		}
	}
}

// Next returns the next published record at the consumer position without freeing it; ok is false when none is ready. data aliases the
// slot and stays valid until the slot is released. Only one goroutine may call Next.
func (r *Ring) Next() (pos uint64, data []byte, ok bool) {
	pos = r.head
	if atomic.LoadUint64(r.seq(pos)) != pos+1 {
		return 0, nil, false
	}
	b := r.slot(pos)
	n := binary.LittleEndian.Uint16(b[8:])
	r.head = pos + 1
	return pos, b[slotHeader : slotHeader+uint64(n)], true
}

// Release frees the slots at positions [from, to); call it once those records are stored elsewhere. Any goroutine, any order.
func (r *Ring) Release(from, to uint64) {
	for p := from; p < to; p++ {
		atomic.StoreUint64(r.seq(p), p+r.capacity)
	}
	r.released.Add(to - from)
}

// Sync flushes the mapping to disk (msync) so a machine crash loses at most what was published since the last Sync.
func (r *Ring) Sync() error {
	if !r.mapped {
		return nil
	}
	return unix.Msync(r.mem, unix.MS_SYNC)
}

// Close syncs and unmaps. Records still unreleased stay in the file for the next Open.
func (r *Ring) Close() error {
	if !r.mapped {
		return nil
	}
	err := r.Sync()
	if e := unix.Munmap(r.mem); err == nil {
		err = e
	}
	r.mapped = false
	if e := r.file.Close(); err == nil {
		err = e
	}
	return err
}

// scan finds published, unreleased slots in a file image, using the geometry stored in its header.
func scan(img []byte) ([]Record, RecoverStats) {
	var st RecoverStats
	capacity := binary.LittleEndian.Uint64(img[8:])
	slotSize := binary.LittleEndian.Uint64(img[16:])
	if capacity < 2 || capacity&(capacity-1) != 0 || slotSize < slotHeader || slotSize%8 != 0 ||
		uint64(len(img)) < headerSize+capacity*slotSize {
		return nil, st
	}
	var recs []Record
	for i := uint64(0); i < capacity; i++ {
		b := img[headerSize+i*slotSize : headerSize+(i+1)*slotSize]
		seq := binary.LittleEndian.Uint64(b)
		// Published at position p means seq == p+1 with p ≡ i (mod capacity). Free slots have seq ≡ i.
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
	sort.Slice(recs, func(a, b int) bool { return recs[a].Pos < recs[b].Pos })
	st.Pending = len(recs)
	return recs, st
}
