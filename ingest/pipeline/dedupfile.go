package pipeline

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
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

var dedupCRC = crc32.MakeTable(crc32.Castagnoli)

// marshalWindow encodes w's ids.
func marshalWindow(w *dupWindow) []byte {
	n := w.size()
	out := make([]byte, 0, len(dedupMagic)+4+16*n+4)
	out = append(out, dedupMagic...)
	out = binary.LittleEndian.AppendUint32(out, uint32(n)) // n ≤ 2^31 (newDupWindow)
	w.ids(func(id *event.UUID) { out = append(out, id[:]...) })
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, dedupCRC))
}

var errDedupCorrupt = errors.New("dedup file corrupt")

// unmarshalWindow remembers the ids in data in w (the newest ones when w is smaller) and returns how many it read.
func unmarshalWindow(w *dupWindow, data []byte) (int, error) {
	if len(data) < len(dedupMagic)+8 || string(data[:len(dedupMagic)]) != dedupMagic {
		return 0, fmt.Errorf("%w: bad header", errDedupCorrupt)
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, dedupCRC) != sum {
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

// dedupCheckpoint hands copies of the window from the batcher, its only user, to a writer goroutine, so the batcher never waits for
// the disk. At most one copy waits and one is being written.
type dedupCheckpoint struct {
	every     time.Duration
	last      time.Time
	lastAdded uint64
	ch        chan []byte
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
	cp.ch, cp.done = make(chan []byte, 1), make(chan struct{})
	go func() {
		defer close(cp.done)
		for data := range cp.ch {
			if err := writeFileAtomic(p.dedupAt, data); err != nil {
				p.log.Warn("duplicate window checkpoint not written; a crash now would forget more ids", zap.String("file", p.dedupAt), zap.Error(err))
			}
		}
	}()
}

func (p *Pipeline) stopDedupCheckpoints() {
	if p.dedupCP.ch == nil {
		return
	}
	close(p.dedupCP.ch)
	<-p.dedupCP.done
}

// checkpointDedup copies the window for the writer when a checkpoint is due and the window changed. Batcher goroutine only.
func (p *Pipeline) checkpointDedup(now time.Time) {
	cp := &p.dedupCP
	if cp.ch == nil || now.Sub(cp.last) < cp.every || p.dedup.added == cp.lastAdded || len(cp.ch) > 0 {
		return // not due, nothing new, or the previous copy still waits for the writer (tried again at the next call)
	}
	cp.last, cp.lastAdded = now, p.dedup.added
	cp.ch <- marshalWindow(p.dedup) // never blocks: the batcher is the only sender and the channel was empty
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
	if err := writeFileAtomic(p.dedupAt, marshalWindow(p.dedup)); err != nil {
		p.log.Error("duplicate window not saved; the next start drops fewer retried duplicates", zap.String("file", p.dedupAt), zap.Error(err))
	}
}
