// Package spill is a durable on-disk FIFO of opaque records: checksummed segment files plus an atomically replaced ack position.
package spill

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

var (
	// ErrFull is returned by Append when the record would take the queue past Options.MaxBytes.
	ErrFull = errors.New("spill: queue full")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("spill: queue closed")
	// ErrEmpty is returned by Append for a zero-length record: the format reserves length 0
	// so that zero-filled space is never mistaken for records.
	ErrEmpty = errors.New("spill: empty record")
	// ErrTooLarge is returned by Append for a record over MaxRecordBytes.
	ErrTooLarge = errors.New("spill: record too large")
	// ErrPosition is returned by Ack for a position Next never reached.
	ErrPosition = errors.New("spill: ack position beyond what was read")
	// ErrLocked is returned by Open when another Queue holds the directory.
	ErrLocked = errors.New("spill: directory in use")
)

// Options tunes a Queue. The zero value is usable.
type Options struct {
	// SegmentBytes starts a new segment once the current one would grow past it
	// (default 64 MiB). A record larger than this gets a segment of its own.
	SegmentBytes int64
	// MaxBytes caps the bytes of all segment files, acked or not; Append returns
	// ErrFull rather than pass it. 0 means unlimited.
	MaxBytes int64
	// FsyncInterval is how often a background goroutine fsyncs the segment being
	// written. 0 fsyncs inside every Append.
	FsyncInterval time.Duration
}

// Position is where a record returned by Next ends, i.e. where the next one starts.
// Acking it acks that record and every one before it.
type Position struct {
	Segment uint64 // sequence number of the segment file
	Offset  int64  // byte offset in that file just past the record
}

func (p Position) before(o Position) bool {
	return p.Segment < o.Segment || p.Segment == o.Segment && p.Offset < o.Offset
}

func (p Position) String() string { return fmt.Sprintf("%d:%d", p.Segment, p.Offset) }

// Stats counts what the queue did since Open, including what recovery found.
type Stats struct {
	Appended uint64 // records appended
	Acked    uint64 // records acknowledged
	// CorruptRegions counts runs of bad bytes skipped or cut (a bad checksum, an absurd
	// length, garbage, a bad segment header); one run may have held several records.
	CorruptRegions  uint64
	CorruptBytes    uint64
	TornTails       uint64 // interrupted last records cut off the last segment by Open
	TornBytes       uint64
	MissingSegments uint64 // gaps in the segment sequence: those records are gone
	BadAck          uint64 // ack file missing or corrupt: reading restarted at the oldest segment
	SyncErrors      uint64 // failed fsyncs (the segment is then abandoned for a new one)
}

type counters struct {
	appended, acked, corruptRegions, corruptBytes, tornTails, tornBytes,
	missingSegments, badAck, syncErrors atomic.Uint64
}

func (c *counters) corrupt(n int64) {
	c.corruptRegions.Add(1)
	c.corruptBytes.Add(uint64(n))
}

// span is a corrupt byte range [start, end) the reader jumps over.
type span struct{ start, end int64 }

type segment struct {
	seq   uint64
	size  int64 // bytes the reader may read: committed records only
	mtime time.Time
	skips []span // sorted; appended only by Open and the reader, under Queue.mu
}

// end is where the readable content stops: a corrupt run up to the end of the file
// leaves nothing to ack there.
func (s *segment) end() int64 {
	if n := len(s.skips); n > 0 && s.skips[n-1].end >= s.size {
		return min(s.skips[n-1].start, s.size)
	}
	return s.size
}

// Queue is a durable FIFO of records. Append may be called from many goroutines;
// Next, Ack and Rewind belong to one reader goroutine.
type Queue struct {
	path string
	dir  *os.File
	lock *os.File
	opt  Options

	mu     sync.Mutex
	segs   []*segment // oldest first; the last one is being written
	wf     *os.File   // the last segment
	wbuf   []byte
	bytes  int64
	ack    Position // durable; changed under both mu and rmu
	dirty  bool     // appended since the last fsync
	rotate bool     // the last segment may hold a failed write: never append after it
	serr   error    // background fsync failure, reported by the next Sync or Close
	closed bool

	rmu      sync.Mutex
	rseq     uint64
	roff     int64
	rf       *os.File
	rfSeq    uint64
	sc       frameScanner
	readHigh Position   // furthest position Next returned
	pending  []Position // positions returned by Next and not acked yet, for Stats.Acked

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
	st       counters
}

// Open opens or creates the queue in dir and recovers it: segments are checked from the
// ack position on, a torn last record is cut away, corrupt runs are skipped and counted.
// Appends go to a new segment, so nothing is ever written after damaged bytes.
func Open(dir string, opt Options) (*Queue, error) {
	if opt.SegmentBytes <= 0 {
		opt.SegmentBytes = 64 << 20
	}
	opt.MaxBytes = max(opt.MaxBytes, 0)
	opt.FsyncInterval = max(opt.FsyncInterval, 0)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	lock, err := lockDir(filepath.Join(dir, lockName))
	if err != nil {
		return nil, err
	}
	q := &Queue{path: dir, lock: lock, opt: opt}
	if err := q.loadSegments(); err != nil {
		q.release()
		return nil, fmt.Errorf("spill: open %s: %w", dir, err)
	}
	if opt.FsyncInterval > 0 {
		q.stop, q.done = make(chan struct{}), make(chan struct{})
		go q.syncLoop()
	}
	return q, nil
}

// Lock takes the exclusive lock Open takes on a queue's directory, on the file at path (created 0600 when missing), for another
// directory that one process at a time may change. It returns ErrLocked when another process holds it; the kernel drops it when the
// holder dies.
func Lock(path string) (unlock func(), err error) {
	f, err := lockDir(path)
	if err != nil {
		return nil, err
	}
	return func() { unlockDir(f) }, nil
}

func (q *Queue) release() {
	if q.wf != nil {
		_ = q.wf.Close()
	}
	if q.rf != nil {
		_ = q.rf.Close()
	}
	if q.dir != nil {
		_ = q.dir.Close()
	}
	unlockDir(q.lock)
}

func (q *Queue) segPath(seq uint64) string { return filepath.Join(q.path, segName(seq)) }

// loadSegments opens the spill directory and reads back what a previous run left: the ack position and the segments after it,
// counting damage (a bad ack, missing segments).
func (q *Queue) loadSegments() error {
	var err error
	if q.dir, err = os.Open(q.path); err != nil {
		return err
	}
	entries, err := q.dir.ReadDir(-1)
	if err != nil {
		return err
	}
	var seqs []uint64
	for _, e := range entries {
		if seq, ok := parseSegName(e.Name()); ok && e.Type().IsRegular() {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	_ = os.Remove(filepath.Join(q.path, ackTmpName))

	ack, ackOK, err := readAck(filepath.Join(q.path, ackName))
	if err != nil {
		return err
	}
	if !ackOK {
		if len(seqs) > 0 {
			// Segments without a valid ack: replaying from the oldest may repeat records,
			// which beats losing them.
			q.st.badAck.Add(1)
			ack = Position{Segment: seqs[0], Offset: headerSize}
		} else {
			ack = Position{Segment: 1, Offset: headerSize}
		}
	}
	ack.Offset = max(ack.Offset, headerSize)

	// Segments before the ack were acked; a crash came between the ack and the delete.
	keep := seqs[:0]
	for _, seq := range seqs {
		if seq < ack.Segment {
			if err := os.Remove(q.segPath(seq)); err != nil {
				return err
			}
			continue
		}
		keep = append(keep, seq)
	}
	q.st.missingSegments.Add(missingSegments(keep, ack, ackOK))

	var sc frameScanner
	for i, seq := range keep {
		from := int64(headerSize)
		if seq == ack.Segment {
			from = ack.Offset
		}
		s, err := q.check(&sc, seq, from, i == len(keep)-1)
		if err != nil {
			return err
		}
		if s != nil {
			q.segs = append(q.segs, s)
			q.bytes += s.size
		}
	}

	if !ackOK {
		if err := writeAck(q.dir, ack); err != nil {
			return err
		}
	}
	q.ack = ack
	if err := q.openWriter(); err != nil {
		return err
	}
	q.dropAcked() // also when the writer reused the last segment
	q.rseq, q.roff = ack.Segment, ack.Offset
	q.readHigh = ack
	return nil
}

// openWriter picks the segment for new appends: the last one if it holds nothing but its
// header (so restarts do not pile up empty files), else a new one past both the last
// segment and the ack.
func (q *Queue) openWriter() error {
	if n := len(q.segs); n > 0 {
		s := q.segs[n-1]
		if s.size == headerSize && len(s.skips) == 0 && !s.before(q.ack) {
			f, err := os.OpenFile(q.segPath(s.seq), os.O_RDWR, 0)
			if err != nil {
				return err
			}
			q.wf = f
			return nil
		}
	}
	seq := q.ack.Segment
	if q.ack.Offset > headerSize {
		seq++
	}
	if n := len(q.segs); n > 0 && q.segs[n-1].seq >= seq {
		seq = q.segs[n-1].seq + 1
	}
	return q.newSegment(seq)
}

// before reports whether the ack lies past the segment's header, i.e. the segment cannot
// take new appends without the reader skipping them.
func (s *segment) before(ack Position) bool {
	return s.seq < ack.Segment || s.seq == ack.Segment && ack.Offset > headerSize
}

func readAck(path string) (Position, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Position{}, false, nil
	}
	if err != nil {
		return Position{}, false, err
	}
	p, ok := decodeAck(b)
	return p, ok, nil
}

// check validates segment seq from offset from on. The last segment is the only one a
// crash can tear, so only there is a bad tail cut off; elsewhere it is skipped, since
// the bytes may still help someone debugging.
func (q *Queue) check(sc *frameScanner, seq uint64, from int64, last bool) (*segment, error) {
	path := q.segPath(seq)
	flag := os.O_RDONLY
	if last {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	s := &segment{seq: seq, size: size, mtime: fi.ModTime()}
	var hdr [headerSize]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil && err != io.EOF {
		return nil, err
	}
	if size < headerSize && last {
		// Created, then killed before the header was complete: nothing was ever in it.
		q.st.tornTails.Add(1)
		q.st.tornBytes.Add(uint64(size))
		_ = f.Close()
		return nil, os.Remove(path)
	}
	if !validHeader(hdr[:]) {
		s.skips = append(s.skips, span{0, size})
		q.st.corrupt(size)
		return s, nil
	}
	sc.reset(f)
	off := min(max(from, headerSize), size)
	for off < size {
		_, st, n, err := sc.frame(off, size)
		if err != nil {
			return nil, err
		}
		if st == frameOK {
			off += frameSize + int64(n)
			continue
		}
		next, err := sc.resync(off, size, n)
		if err != nil {
			return nil, err
		}
		if next < size {
			s.skips = append(s.skips, span{off, next})
			q.st.corrupt(next - off)
			off = next
			continue
		}
		if !last {
			s.skips = append(s.skips, span{off, size})
			q.st.corrupt(size - off)
			break
		}
		torn := st == frameShort
		if !torn {
			// A crash on a file system that extends the size before the data lands
			// leaves zeros, not a short frame.
			if torn, err = sc.zeros(off, size); err != nil {
				return nil, err
			}
		}
		if err := f.Truncate(off); err != nil {
			return nil, err
		}
		if err := f.Sync(); err != nil {
			return nil, err
		}
		if torn {
			q.st.tornTails.Add(1)
			q.st.tornBytes.Add(uint64(size - off))
		} else {
			q.st.corrupt(size - off)
		}
		s.size = off
		break
	}
	return s, nil
}

// newSegment creates segment seq, makes its name durable and makes it the write target.
func (q *Queue) newSegment(seq uint64) error {
	path := q.segPath(seq)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(appendHeader(nil))
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = q.dir.Sync()
	}
	if err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return err
	}
	if q.wf != nil {
		if q.dirty {
			if err := q.wf.Sync(); err != nil {
				q.st.syncErrors.Add(1)
				q.serr = err
			}
		}
		_ = q.wf.Close() // already synced: nothing is left for close to report
	}
	q.wf, q.dirty, q.rotate = f, false, false
	q.segs = append(q.segs, &segment{seq: seq, size: headerSize, mtime: time.Now()})
	q.bytes += headerSize
	// The segment just sealed may be fully acked already.
	q.dropAcked()
	return nil
}

// dropAcked deletes sealed segments that hold nothing unacked. The ack is durable
// before this runs, so a crash in between only leaves files that Open deletes.
func (q *Queue) dropAcked() {
	n := 0
	for n < len(q.segs)-1 {
		s := q.segs[n]
		if s.seq > q.ack.Segment || s.seq == q.ack.Segment && q.ack.Offset < s.end() {
			break
		}
		_ = os.Remove(q.segPath(s.seq))
		q.bytes -= s.size
		n++
	}
	if n > 0 {
		k := copy(q.segs, q.segs[n:])
		clear(q.segs[k:])
		q.segs = q.segs[:k]
	}
}

// Append adds rec to the queue. Header and payload go out in one write(2), so a crash
// leaves the whole record or a torn tail that Open cuts off. When it returns nil the record
// is queued (and, with FsyncInterval 0, on disk); on any error it is not queued.
func (q *Queue) Append(rec []byte) error {
	if len(rec) == 0 {
		return ErrEmpty
	}
	if len(rec) > MaxRecordBytes {
		return ErrTooLarge
	}
	frame := int64(frameSize + len(rec))
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	cur := q.segs[len(q.segs)-1]
	rot := q.rotate || cur.size > headerSize && cur.size+frame > q.opt.SegmentBytes
	// The segment being written is never deleted, so acked records in it hold their
	// space until it fills. Once it is fully acked, move on early if that frees a good
	// share of a segment (bounding the churn to one new file per that many bytes), or
	// if the quota demands it.
	acked := cur.size > headerSize && q.ack.Segment == cur.seq && q.ack.Offset >= cur.size
	if acked && (rot || cur.size >= q.reclaimAt() || q.over(frame, false)) {
		if err := q.newSegment(cur.seq + 1); err != nil {
			return err
		}
		cur, rot = q.segs[len(q.segs)-1], false
	}
	if q.over(frame, rot) {
		return ErrFull
	}
	if rot {
		if err := q.newSegment(cur.seq + 1); err != nil {
			return err
		}
		cur = q.segs[len(q.segs)-1]
	}
	b := binary.LittleEndian.AppendUint32(q.wbuf[:0], uint32(len(rec)))
	b = binary.LittleEndian.AppendUint32(b, checksum(rec))
	b = append(b, rec...)
	if cap(b) <= 8<<20 {
		q.wbuf = b
	} else {
		q.wbuf = nil
	}
	_, err := q.wf.WriteAt(b, cur.size)
	if err == nil && q.opt.FsyncInterval == 0 {
		if err = q.wf.Sync(); err != nil {
			q.st.syncErrors.Add(1)
		}
	}
	if err != nil {
		// Take back whatever landed and never write after it: the record is not queued
		// and the next Append starts a new segment.
		_ = q.wf.Truncate(cur.size)
		q.rotate = true
		return err
	}
	cur.size += frame
	cur.mtime = time.Now()
	q.bytes += frame
	q.dirty = q.opt.FsyncInterval > 0
	q.st.appended.Add(1)
	return nil
}

func (q *Queue) reclaimAt() int64 {
	n := q.opt.SegmentBytes
	if q.opt.MaxBytes > 0 {
		n = min(n, q.opt.MaxBytes)
	}
	return max(n/4, headerSize+1)
}

// over reports whether a frame (after a new segment header, if rotate) breaks the quota.
func (q *Queue) over(frame int64, rotate bool) bool {
	if rotate {
		frame += headerSize
	}
	return q.opt.MaxBytes > 0 && q.bytes+frame > q.opt.MaxBytes
}

// Sync fsyncs the segment being written. It also reports a failure of the background
// fsync since the last call.
func (q *Queue) Sync() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	return q.syncLocked()
}

func (q *Queue) syncLocked() error {
	err := q.serr
	q.serr = nil
	if q.dirty {
		q.dirty = false
		if e := q.wf.Sync(); e != nil {
			// After a failed fsync the kernel may have dropped the dirty pages and
			// a retry would report success: abandon the file instead.
			q.st.syncErrors.Add(1)
			q.rotate = true
			err = e
		}
	}
	return err
}

func (q *Queue) syncLoop() {
	defer close(q.done)
	t := time.NewTicker(q.opt.FsyncInterval)
	defer t.Stop()
	for {
		select {
		case <-q.stop:
			return
		case <-t.C:
			q.mu.Lock()
			if !q.closed {
				if err := q.syncLocked(); err != nil {
					q.serr = err
				}
			}
			q.mu.Unlock()
		}
	}
}

// Next returns the record after the last one Next returned (not after the ack), or
// io.EOF once it has caught up with the writer; calling again later picks up new
// appends. rec is valid until the next call. Only records whose checksum matches are
// ever returned; corrupt runs met here are skipped and counted like those Open finds.
func (q *Queue) Next() (rec []byte, pos Position, err error) {
	q.rmu.Lock()
	defer q.rmu.Unlock()
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return nil, Position{}, ErrClosed
		}
		i := sort.Search(len(q.segs), func(i int) bool { return q.segs[i].seq >= q.rseq })
		if i == len(q.segs) {
			q.mu.Unlock()
			return nil, Position{}, io.EOF
		}
		s := q.segs[i]
		limit, sealed, skips := s.size, i < len(q.segs)-1, s.skips
		q.mu.Unlock()

		if s.seq != q.rseq {
			q.rseq, q.roff = s.seq, headerSize
		}
		q.roff = max(q.roff, headerSize)
		if end, ok := skipAt(skips, q.roff); ok {
			q.roff = end
			continue
		}
		if q.roff >= limit {
			if !sealed {
				return nil, Position{}, io.EOF
			}
			q.rseq, q.roff = q.rseq+1, headerSize
			continue
		}
		if err := q.openReader(s.seq); err != nil {
			if errors.Is(err, fs.ErrNotExist) && q.lost(s) {
				continue
			}
			return nil, Position{}, err
		}
		rec, st, n, err := q.sc.frame(q.roff, limit)
		if err == nil && st == frameOK {
			q.roff += frameSize + int64(n)
			pos := Position{Segment: s.seq, Offset: q.roff}
			if q.readHigh.before(pos) {
				q.readHigh = pos
				q.pending = append(q.pending, pos)
			}
			return rec, pos, nil
		}
		end := limit
		if err == nil {
			end, err = q.sc.resync(q.roff, limit, n)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			// The file is shorter than what was written to it: cut from outside.
			end, err = limit, nil
		}
		if err != nil {
			return nil, Position{}, err
		}
		q.mu.Lock()
		s.skips = append(s.skips, span{q.roff, end})
		q.mu.Unlock()
		q.st.corrupt(end - q.roff)
		q.roff = end
	}
}

func skipAt(skips []span, off int64) (int64, bool) {
	for _, sp := range skips {
		if off >= sp.start && off < sp.end {
			return sp.end, true
		}
	}
	return 0, false
}

func (q *Queue) openReader(seq uint64) error {
	if q.rf != nil && q.rfSeq == seq {
		return nil
	}
	if q.rf != nil {
		_ = q.rf.Close()
		q.rf = nil
	}
	f, err := os.Open(q.segPath(seq))
	if err != nil {
		return err
	}
	q.rf, q.rfSeq = f, seq
	q.sc.reset(f)
	return nil
}

// lost handles a segment file that vanished under the reader. Ack deletes only what is
// acked, so unless the segment already left the list, someone else removed it.
func (q *Queue) lost(s *segment) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := slices.Index(q.segs, s)
	if i < 0 {
		return true
	}
	if i == len(q.segs)-1 {
		return false
	}
	q.segs = slices.Delete(q.segs, i, i+1)
	q.bytes -= s.size
	q.st.missingSegments.Add(1)
	return true
}

// Ack records that every record up to and including the one ending at pos is stored
// elsewhere. The position is made durable before segments holding only acked records
// are deleted. Acking an older position than the current ack does nothing.
func (q *Queue) Ack(pos Position) error {
	q.rmu.Lock()
	defer q.rmu.Unlock()
	q.mu.Lock()
	closed, cur := q.closed, q.ack
	q.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if !cur.before(pos) {
		return nil
	}
	if q.readHigh.before(pos) {
		return fmt.Errorf("%w: %v > %v", ErrPosition, pos, q.readHigh)
	}
	if err := writeAck(q.dir, pos); err != nil {
		return err
	}
	q.mu.Lock()
	q.ack = pos
	q.dropAcked()
	// The reader caught up with the writer: start a fresh segment so the acked one is deleted now rather than when the next
	// Append happens to fill it. An empty queue then holds no event data on disk, which is what operators check after an outage.
	if cur := q.segs[len(q.segs)-1]; cur.size > headerSize && q.ack.Segment == cur.seq && q.ack.Offset >= cur.size {
		if err := q.newSegment(cur.seq + 1); err != nil {
			q.replaceAcked(cur)
		}
	}
	q.mu.Unlock()

	k := sort.Search(len(q.pending), func(i int) bool { return pos.before(q.pending[i]) })
	q.st.acked.Add(uint64(k))
	q.pending = q.pending[:copy(q.pending, q.pending[k:])]
	if (Position{Segment: q.rseq, Offset: q.roff}).before(pos) {
		q.rseq, q.roff = pos.Segment, pos.Offset
	}
	return nil
}

// replaceAcked is for a new segment that could not be started after the reader caught up with the writer. The usual cause is a
// full disk, full of this very segment's acked records after an outage: waiting for the next Append would keep them on disk for as
// long as no event needs the spill, and a new segment's header finds no room while they are there. So the segment is deleted first —
// everything in it is acked, the ack is durable, and a restart that finds neither file starts at the next segment — and the new one
// is started again. Until a new segment exists, rotate keeps Append from writing into the deleted file: Append starts a new segment
// before it writes, or fails. Called with q.rmu and q.mu held (Ack).
func (q *Queue) replaceAcked(cur *segment) {
	q.rotate = true
	if err := os.Remove(q.segPath(cur.seq)); err != nil {
		return
	}
	// The file's space is freed only once no descriptor holds it. Both ends are done with it: the reader has read all of it, and
	// nothing is written before a new segment exists (rotate); its bytes are all acked, so they need no sync.
	if q.rf != nil && q.rfSeq == cur.seq {
		_ = q.rf.Close()
		q.rf = nil
	}
	if q.wf != nil {
		_ = q.wf.Close()
	}
	q.wf, q.dirty = nil, false
	_ = q.newSegment(cur.seq + 1) // on success it clears rotate and forgets cur (dropAcked)
}

// Rewind makes the next Next start again at the first unacked record, e.g. after an
// insert of the records read since failed.
func (q *Queue) Rewind() {
	q.rmu.Lock()
	defer q.rmu.Unlock()
	q.mu.Lock()
	q.rseq, q.roff = q.ack.Segment, q.ack.Offset
	q.mu.Unlock()
}

// Bytes is the size of all segment files, acked parts included: what counts against MaxBytes.
func (q *Queue) Bytes() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes
}

// Segments is the number of segment files.
func (q *Queue) Segments() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.segs)
}

// OldestAge is how long ago the oldest segment with unacked records was last written,
// or 0 when everything is acked.
func (q *Queue) OldestAge() time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, s := range q.segs {
		if s.seq < q.ack.Segment || s.seq == q.ack.Segment && q.ack.Offset >= s.end() || s.end() <= headerSize {
			continue
		}
		return time.Since(s.mtime)
	}
	return 0
}

// Stats returns the counters since Open.
func (q *Queue) Stats() Stats {
	c := &q.st
	return Stats{
		Appended:        c.appended.Load(),
		Acked:           c.acked.Load(),
		CorruptRegions:  c.corruptRegions.Load(),
		CorruptBytes:    c.corruptBytes.Load(),
		TornTails:       c.tornTails.Load(),
		TornBytes:       c.tornBytes.Load(),
		MissingSegments: c.missingSegments.Load(),
		BadAck:          c.badAck.Load(),
		SyncErrors:      c.syncErrors.Load(),
	}
}

// Close fsyncs and closes the queue and releases the directory.
func (q *Queue) Close() error {
	if q.stop != nil {
		q.stopOnce.Do(func() { close(q.stop) })
		<-q.done
	}
	q.rmu.Lock()
	defer q.rmu.Unlock()
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	q.closed = true
	err := q.syncLocked()
	q.release()
	return err
}

// Path is the queue's directory.
func (q *Queue) Path() string { return q.path }

// missingSegments counts the segment numbers absent from keep (the sorted segments at or after the ack). The ack segment itself may
// be gone (fully acked), so a gap before the first kept segment counts from the one after the ack.
func missingSegments(keep []uint64, ack Position, ackOK bool) uint64 {
	var n uint64
	for i, seq := range keep {
		switch {
		case i > 0 && seq > keep[i-1]+1:
			n += seq - keep[i-1] - 1
		case i == 0 && ackOK && seq > ack.Segment+1:
			n += seq - ack.Segment - 1
		}
	}
	return n
}
