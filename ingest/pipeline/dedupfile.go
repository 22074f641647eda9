package pipeline

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/adtracker/adtracker/ingest/event"
)

// The duplicate window survives a clean stop: Close writes it to DIR/dedup and Open reads it back, before the ids recovered from the
// ring, so a client's retry after a SIGTERM or a deploy is still dropped. While running, the batcher also writes it every
// Config.DedupCheckpoint (when it changed), so a SIGKILL or a machine crash leaves a file at most that old plus the ring's ids: a
// retry of an event accepted in the last interval before the crash, and already inserted, can be stored twice.
//
// Format: magic "ADTDDUP1" | count u32 | count × 16-byte ids, oldest first | CRC-32C (Castagnoli) u32 of everything before it.
// Any mismatch — magic, length, checksum — is logged and the window starts empty: a lost window costs duplicates, never events.

const (
	dedupFile  = "dedup"
	dedupMagic = "ADTDDUP1"
)

// castagnoli is the checksum of the pipeline's own files: the duplicate window here, the dead letters (deadletter.go).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// writeWindow writes w's ids in the file format to wr straight from the window's FIFO, in at most two spans, so saving a window
// copies nothing in the process: a full default window is 4 MiB, and a copy taken every checkpoint was the largest short-lived
// allocation of a running pipeline (BENCHMARKS.md, "Design measurements").
func writeWindow(wr io.Writer, w *dupWindow) error {
	n := w.size()
	var head [len(dedupMagic) + 4]byte
	copy(head[:], dedupMagic)
	binary.LittleEndian.PutUint32(head[len(dedupMagic):], uint32(n)) // n ≤ 2^31 (newDupWindow)
	older, newer := w.spans()
	var sum uint32
	for _, b := range [][]byte{head[:], older, newer} {
		sum = crc32.Update(sum, castagnoli, b)
		if _, err := wr.Write(b); err != nil {
			return err
		}
	}
	_, err := wr.Write(binary.LittleEndian.AppendUint32(head[:0], sum))
	return err
}

var errDedupCorrupt = errors.New("dedup file corrupt")

// unmarshalWindow remembers the ids in data in w (the newest ones when w is smaller) and returns how many it read.
func unmarshalWindow(w *dupWindow, data []byte) (int, error) {
	if len(data) < len(dedupMagic)+8 || string(data[:len(dedupMagic)]) != dedupMagic {
		return 0, fmt.Errorf("%w: bad header", errDedupCorrupt)
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return 0, fmt.Errorf("%w: checksum mismatch", errDedupCorrupt)
	}
	n := int(binary.LittleEndian.Uint32(body[len(dedupMagic):]))
	ids := body[len(dedupMagic)+4:]
	if len(ids) != 16*n {
		return 0, fmt.Errorf("%w: %d bytes of ids for %d ids", errDedupCorrupt, len(ids), n)
	}
	if w == nil {
		return 0, nil
	}
	skip := max(0, n-cap(w.fifo))
	var id event.UUID
	for i := skip; i < n; i++ {
		copy(id[:], ids[16*i:])
		w.seenID(&id)
	}
	return n - skip, nil
}

// DefaultDedupCheckpoint is the period of the running pipeline's window checkpoints.
const DefaultDedupCheckpoint = 10 * time.Second

// dedupCheckpoint writes the window from the batcher, its only user, while it runs. The batcher writes the file to a temporary
// straight from the window (four write calls into the page cache) and a writer goroutine fsyncs and renames it, so the batcher
// never waits for the disk to sync and no copy of the window is made. A checkpoint starts only when the writer has finished the last
// one (busy).
type dedupCheckpoint struct {
	every     time.Duration
	last      time.Time
	lastAdded uint64
	busy      atomic.Bool // a temporary file is written and not yet renamed; set by the batcher, cleared by the writer
	files     chan *os.File
	done      chan struct{}
}

// startDedupCheckpoints starts the writer; stopDedupCheckpoints (the batcher, when it exits) stops it and waits for its last write,
// so Close's own save, which comes after, is the one that stays.
func (p *Pipeline) startDedupCheckpoints() {
	if p.dedup == nil {
		return
	}
	cp := &p.dedupCP
	cp.every = p.cfg.DedupCheckpoint
	if cp.every <= 0 {
		cp.every = DefaultDedupCheckpoint
	}
	cp.last = time.Now()
	cp.files, cp.done = make(chan *os.File, 1), make(chan struct{})
	go func() {
		defer close(cp.done)
		for f := range cp.files {
			if err := commitTemp(f, p.dedupAt, nil); err != nil {
				p.log.Warn("duplicate window checkpoint not written; a crash now would forget more ids", zap.String("file", p.dedupAt), zap.Error(err))
			}
			cp.busy.Store(false)
		}
	}()
}

func (p *Pipeline) stopDedupCheckpoints() {
	if p.dedupCP.files == nil {
		return
	}
	close(p.dedupCP.files)
	<-p.dedupCP.done
}

// checkpointDedup writes the window for the writer when a checkpoint is due and the window changed. Batcher goroutine only.
func (p *Pipeline) checkpointDedup(now time.Time) {
	cp := &p.dedupCP
	if cp.files == nil || now.Sub(cp.last) < cp.every || p.dedup.added == cp.lastAdded || cp.busy.Load() {
		return // not due, nothing new, or the writer still syncs the last one (tried again at the next call)
	}
	cp.last, cp.lastAdded = now, p.dedup.added
	f, err := createTemp(p.dedupAt)
	if err == nil {
		if err = writeWindow(f, p.dedup); err != nil {
			err = commitTemp(f, p.dedupAt, err) // removes the temporary
		}
	}
	if err != nil {
		p.log.Warn("duplicate window checkpoint not written; a crash now would forget more ids", zap.String("file", p.dedupAt), zap.Error(err))
		return
	}
	cp.busy.Store(true)
	cp.files <- f // never blocks: the writer took the last file before it cleared busy
}

// loadDedup fills the window from the file a clean stop (or the last checkpoint before a crash) wrote.
func (p *Pipeline) loadDedup() {
	if p.dedup == nil {
		return
	}
	data, err := os.ReadFile(p.dedupAt)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	start := time.Now()
	n := 0
	if err == nil {
		n, err = unmarshalWindow(p.dedup, data)
	}
	if err != nil {
		p.log.Error("duplicate window not restored; starting with an empty one (retries of events from before the stop may be stored twice)",
			zap.String("file", p.dedupAt), zap.Error(err))
		return
	}
	p.log.Info("duplicate window restored", zap.String("file", p.dedupAt), zap.Int("ids", n), zap.Duration("took", time.Since(start)))
}

// saveDedup writes the window for the next start. Only after every goroutine that uses the window has stopped.
func (p *Pipeline) saveDedup() {
	if p.dedup == nil {
		return
	}
	f, err := createTemp(p.dedupAt)
	if err == nil {
		err = commitTemp(f, p.dedupAt, writeWindow(f, p.dedup))
	}
	if err != nil {
		p.log.Error("duplicate window not saved; the next start drops fewer retried duplicates", zap.String("file", p.dedupAt), zap.Error(err))
	}
}
