// Package pipeline moves accepted events from the ring into ClickHouse: it batches, inserts, spills to disk when ClickHouse cannot take
// a batch, replays the spill, and recovers what a killed process left in the ring file.
//
// The life of an event: Enqueue copies it into the ring's slots (the 2xx is answered after that) → the batcher reads records in order
// into a Batch → an inserter calls Sink.Insert; on success, or once the batch is in a spill segment or the dead-letter directory, the
// batch's slots are released. Until then the event is in the ring file, so at every instant an answered event is in exactly one
// durable place that a restart reads back: the ring file, a spill segment, ClickHouse, or the dead-letter directory (counted in
// adtracker_events_not_stored_total). When none of them can take a batch it keeps its ring slots: backpressure, never a drop.
//
// One role per file: pipeline.go (Config, Open, Enqueue, Close), batcher.go, store.go (the store policy), replayer.go, syncer.go,
// deadletter.go (the directory and its tools), recovery.go (the ring file at start), dedup.go + dedupfile.go (the duplicate window
// and its file), perms.go; the state machines are all in state.go.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/ingest/ring"
	"github.com/adtracker/adtracker/ingest/spill"
)

// Sink is what the pipeline needs from ClickHouse. Insert must store the whole batch or nothing; its error says whether trying again
// can help (see Retryable) and whether the batch may have been stored anyway (see Uncertain). A batch with MaybeStored set must be
// filtered against what is already stored.
type Sink interface {
	Insert(ctx context.Context, b *event.Batch) error
	Ping(ctx context.Context) error
}

// Retryable reports whether err says the same insert may succeed later. Errors that do not say are treated as retryable: keeping
// good events on disk is always safe, dropping them is not.
func Retryable(err error) bool {
	var r interface{ Retryable() bool }
	if errors.As(err, &r) {
		return r.Retryable()
	}
	return true
}

// Uncertain reports whether err leaves open that the data was stored (the connection failed after the data was sent).
func Uncertain(err error) bool {
	var u interface{ IsUncertain() bool }
	if errors.As(err, &u) {
		return u.IsUncertain()
	}
	return errors.Is(err, context.DeadlineExceeded)
}

// Waiting reports whether err only says an earlier insert of the same events has not ended on the server yet (the sink will not run
// the stored-event check before it has): ClickHouse answers and the record is not at fault, so the wait counts against
// Config.ReplayMaxAge only, never against ReplayMaxAttempts.
func Waiting(err error) bool {
	var w interface{ IsWaiting() bool }
	return errors.As(err, &w) && w.IsWaiting()
}

// Errors returned by Enqueue. Each means the event was not accepted and the client should retry later (503 + Retry-After).
var (
	ErrFull     = errors.New("ingest queue full")
	ErrOverload = errors.New("spill quota reached: ClickHouse is not keeping up")
	ErrClosed   = errors.New("server is shutting down")
)

// Config tunes the pipeline.
type Config struct {
	Dir           string        // holds ring file, spill/ and deadletter/
	RingCapacity  int           // slots, power of two; an event takes ceil((8+encoded length)/SlotSize) of them
	SlotSize      int           // data bytes per slot (the file adds 8 per slot for its sequence number)
	BatchSize     int           // rows per insert
	FlushInterval time.Duration // a partial batch is flushed after this long (one of ≥ BatchSize/4 events sooner, when the input pauses)
	Inserters     int           // parallel inserts
	InsertTimeout time.Duration // an insert slower than this is abandoned and the batch spilled
	SpillMaxBytes int64         // spill quota; at it, Enqueue returns ErrOverload
	SpillSegment  int64
	FsyncInterval time.Duration // ring mirror and spill fsync period; bounds what a machine crash can lose (0: no mirror)
	DedupWindow   int           // client event_ids remembered for duplicate detection
	// DedupCheckpoint is how often the running pipeline writes the duplicate window to disk (0: DefaultDedupCheckpoint), so a
	// killed process forgets at most that much of it; Close writes it anyway.
	DedupCheckpoint time.Duration
	ReplayBackoff   time.Duration // first wait after a failed replay; doubles up to 10 s
	// A spill record ClickHouse keeps refusing while it answers Ping is quarantined to the dead-letter directory after
	// ReplayMaxAttempts such failures or ReplayMaxAge since the first one, whichever comes first (0 disables that bound).
	ReplayMaxAttempts int
	ReplayMaxAge      time.Duration
	InMemoryRing      bool // no ring file: faster, but a killed process loses its ring (benchmarks only)
}

// Defaults returns the configuration the server starts with.
func Defaults() Config {
	return Config{
		// 16 MiB of ring file (64 bytes per slot with its sequence word) holding ~64k events of the load generator's traffic
		// (~200 encoded bytes: 4.2 slots). 56 rather than 64 keeps the file a power of two; against 248 (one slot for events up
		// to 240 bytes, slightly denser on that traffic) it degrades gently with longer events (TestRingDensity).
		RingCapacity: 1 << 18,
		SlotSize:     56,
		BatchSize:    24576,
		// 1 s rather than 500 ms: at a few tens of thousands of single events per second the interval, not BatchSize, closes the
		// batch, and ClickHouse's CPU per event falls steeply with the rows per insert (each insert writes a part into events and
		// one per view, which merges rewrite): BENCHMARKS.md, "Rows per insert".
		FlushInterval: time.Second,
		Inserters:     1,
		InsertTimeout: 10 * time.Second,
		SpillMaxBytes: 1 << 30,
		SpillSegment:  64 << 20,
		FsyncInterval: time.Second,
		DedupWindow:   1 << 18,
		ReplayBackoff: 200 * time.Millisecond,
		// 10 record-specific failures take ~45 s of backoff: long enough to ride out a transient memory limit, short enough
		// that a poison record does not hold the whole spill back for long. Quarantine is reversible (deadletter replay).
		ReplayMaxAttempts: 10,
		ReplayMaxAge:      15 * time.Minute,
	}
}

// Pipeline is the running pipeline.
type Pipeline struct {
	cfg   Config
	log   *zap.Logger
	ring  *ring.Ring
	spill *spill.Queue
	sink  Sink

	closing atomic.Bool
	// inflight counts producers past their closing check (Hold). Close waits for it to reach 0 after setting closing and before
	// unmapping the ring, so a handler still running after the shutdown deadline gets ErrClosed instead of a write into unmapped
	// memory. Both sides use sequentially consistent atomics: a Hold that increments after Close's wait saw 0 must see closing.
	// On its own cache line: every Hold and Release writes it, and it must not evict the flags every Enqueue reads.
	_        [64]byte
	inflight atomic.Int64
	_        [56]byte
	health   sinkHealth                 // where live batches go (state.go)
	room     atomic.Pointer[roomSignal] // closed at every release, so EnqueueBy waiters retry (room.go)
	quota    quota                      // whether Enqueue accepts (state.go)

	jobs     chan *job
	freeJobs chan *job // batches between uses; see newJob
	dedup    *dupWindow
	dedupAt  string          // where Close persists the window and Open loads it
	dedupCP  dedupCheckpoint // the batcher's periodic copies of the window (dedupfile.go)
	wg       sync.WaitGroup
	stopOnce sync.Once
	stopCh   chan struct{} // closes: batcher drains and exits
	replayCh chan struct{} // closes: replayer exits
	ctx      context.Context
	cancel   context.CancelFunc

	// counts for the shutdown summary and tests
	Inserted, Spilled, Replayed, DeadLettered, Quarantined, Duplicates, Recovered atomic.Int64
	spillMu                                                                       sync.Mutex // serialises Append with quota bypass
}

type job struct {
	b        event.Batch
	from, to uint64 // ring positions to release
	records  int    // ring records read into the job, duplicates included
}

// Open recovers what a previous process left (ring file → spill), and starts the batcher, the inserters and the replayer.
func Open(cfg Config, sink Sink, log *zap.Logger) (*Pipeline, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.Inserters <= 0 {
		cfg.Inserters = 1
	}
	if err := ensureDir(cfg.Dir); err != nil {
		return nil, err
	}
	if err := ensureDir(filepath.Join(cfg.Dir, DeadLetterDir)); err != nil {
		return nil, err
	}
	// A process killed while writing a file atomically (atomicfile.go) leaves its temporary; the real one was never renamed into place.
	for _, pat := range []string{filepath.Join(cfg.Dir, ".*.tmp"), filepath.Join(cfg.Dir, DeadLetterDir, ".*.tmp")} {
		tmps, _ := filepath.Glob(pat)
		for _, tmp := range tmps {
			_ = os.Remove(tmp)
		}
	}
	if fixed, err := tightenModes(cfg.Dir); err != nil {
		return nil, fmt.Errorf("data dir permissions: %w", err)
	} else if len(fixed) > 0 {
		log.Warn("tightened permissions under the data dir (files 0600, directories 0700)", zap.Strings("paths", fixed))
	}
	sq, err := spill.Open(filepath.Join(cfg.Dir, "spill"), spill.Options{
		SegmentBytes: cfg.SpillSegment, MaxBytes: 0, FsyncInterval: cfg.FsyncInterval,
	})
	if err != nil {
		return nil, fmt.Errorf("spill: %w", err)
	}
	// The mirror is what the syncer writes every FsyncInterval; without a sync interval there is nothing to keep it current.
	ropt := ring.Options{Capacity: cfg.RingCapacity, SlotSize: cfg.SlotSize, Mirror: cfg.FsyncInterval > 0}
	var r *ring.Ring
	var recs []ring.Record
	var rst ring.RecoverStats
	if cfg.InMemoryRing {
		r, err = ring.New(ropt)
	} else {
		r, recs, rst, err = ring.Open(filepath.Join(cfg.Dir, "ring"), ropt)
	}
	if err != nil {
		_ = sq.Close()
		return nil, err
	}
	if r.MaxRecord() < event.MaxBinaryLen {
		_ = r.Close()
		_ = sq.Close()
		return nil, fmt.Errorf("ring of %d slots of %d bytes holds records up to %d bytes; events need %d",
			cfg.RingCapacity, cfg.SlotSize, r.MaxRecord(), event.MaxBinaryLen)
	}
	p := &Pipeline{
		cfg: cfg, log: log, ring: r, spill: sq, sink: sink,
		jobs:     make(chan *job), // unbuffered: see the batcher's flush
		dedup:    newDupWindow(cfg.DedupWindow),
		dedupAt:  filepath.Join(cfg.Dir, dedupFile),
		stopCh:   make(chan struct{}),
		replayCh: make(chan struct{}),
	}
	// At most Inserters+1 jobs exist at once (one filling, Inserters inserting: jobs has no buffer); all are kept for reuse.
	p.freeJobs = make(chan *job, cfg.Inserters+1)
	p.initRoom()
	p.ctx, p.cancel = context.WithCancel(context.Background())
	// The persisted window first (ids of a clean stop), then the ids found in the ring (an unclean stop): both in arrival order.
	p.loadDedup()
	if len(recs) > 0 || rst.Corrupt > 0 {
		if err := p.recoverRing(recs, rst); err != nil {
			_ = r.Close()
			_ = sq.Close()
			return nil, err
		}
	}
	if st := sq.Stats(); st.CorruptRegions > 0 || st.TornTails > 0 || st.MissingSegments > 0 || st.BadAck > 0 {
		log.Error("spill damage found at start; intact records will be replayed, the damaged bytes are lost",
			zap.String("dir", filepath.Join(cfg.Dir, "spill")),
			zap.Uint64("corrupt_regions", st.CorruptRegions), zap.Uint64("corrupt_bytes", st.CorruptBytes),
			zap.Uint64("torn_tails", st.TornTails), zap.Uint64("missing_segments", st.MissingSegments), zap.Uint64("bad_ack", st.BadAck))
	}
	if len(recs) > 0 {
		// Open left the file as it found it until its records were safe; they are now (Open resets a ring with none).
		if err := r.Reset(); err != nil {
			_ = r.Close()
			_ = sq.Close()
			return nil, err
		}
	}
	p.updateQuota()
	p.startDedupCheckpoints()
	p.wg.Add(2 + cfg.Inserters)
	go p.batcher()
	for i := 0; i < cfg.Inserters; i++ {
		go p.inserter()
	}
	go p.replayer()
	if cfg.FsyncInterval > 0 && !cfg.InMemoryRing {
		p.wg.Add(1)
		go p.syncer()
	}
	return p, nil
}

// Enqueue accepts e. On nil the event is in the ring (and the ring file): answer 2xx. It does not allocate or lock. After Close it
// answers ErrClosed, however late the call comes. A full ring refuses at once (EnqueueBy with no time to wait).
func (p *Pipeline) Enqueue(e *event.Event) error { return p.EnqueueBy(e, time.Time{}) }

func (p *Pipeline) enqueue(e *event.Event) error {
	if p.closing.Load() {
		enqueueRefused.WithLabelValues("closing").Inc()
		return ErrClosed
	}
	if p.quota.full() {
		enqueueRefused.WithLabelValues("spill_quota").Inc()
		return ErrOverload
	}
	var buf [event.MaxBinaryLen]byte
	ok, err := p.ring.Enqueue(e.AppendBinary(buf[:0]))
	if err != nil {
		return err
	}
	if !ok {
		return ErrFull // counted by the caller: EnqueueBy may still wait and get in
	}
	return nil // counted by Release
}

// Ready reports whether Enqueue can currently accept events, and why not.
func (p *Pipeline) Ready() (bool, string) {
	switch {
	case p.closing.Load():
		return false, "draining"
	case p.quota.full():
		return false, "spill quota reached"
	case p.ring.Len() > p.ring.Cap()-p.ring.Slots(event.MaxBinaryLen):
		// Not room for the largest event: smaller ones may still fit, but a balancer should look elsewhere.
		return false, "ring full"
	}
	return true, "ok"
}

// State is a snapshot for /readyz and logs.
type State struct {
	RingUsed, RingCap int
	SpillBytes        int64
	SpillSegments     int
	ClickHouseUp      bool
}

// State returns the current fill levels.
func (p *Pipeline) State() State {
	return State{
		RingUsed: p.ring.Len(), RingCap: p.ring.Cap(),
		SpillBytes: p.spill.Bytes(), SpillSegments: p.spill.Segments(), ClickHouseUp: p.health.live(),
	}
}

func (p *Pipeline) updateQuota() {
	p.quota.set(p.cfg.SpillMaxBytes > 0 && p.spill.Bytes() >= p.cfg.SpillMaxBytes)
}

// Close stops accepting, drains the ring into ClickHouse or spill, and stops. Whatever it cannot finish before ctx ends stays in the
// ring file and is recovered at the next start, so Close never loses an accepted event.
func (p *Pipeline) Close(ctx context.Context) error {
	var err error
	p.stopOnce.Do(func() {
		p.closing.Store(true)
		p.signalRoom()    // EnqueueBy waiters see closing and leave, so the wait for inflight below stays short
		close(p.replayCh) // the replayer leaves the spill for the next start
		close(p.stopCh)
		done := make(chan struct{})
		go func() { p.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			err = fmt.Errorf("pipeline drain: %w; unfinished events stay in the ring file for the next start", ctx.Err())
			p.cancel()
			<-done
		}
		p.cancel()
		// Every goroutine that reads the window has stopped: persist it for the next start.
		p.saveDedup()
		if e := p.spill.Close(); err == nil {
			err = e
		}
		// Enqueue calls that passed their closing check before it was set may still be writing into the ring.
		for p.inflight.Load() != 0 {
			runtime.Gosched()
		}
		if e := p.ring.Close(); err == nil {
			err = e
		}
	})
	return err
}
