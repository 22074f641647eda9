// Package pipeline moves accepted events from the ring into ClickHouse: it batches, inserts, spills to disk when ClickHouse cannot take
// a batch, replays the spill, and recovers what a killed process left in the ring file.
//
// The life of an event: Enqueue copies it into the ring's slots (the 2xx is answered after that) → the batcher reads records in order
// into a Batch → an inserter calls Sink.Insert; on success, or once the batch is in a spill segment or the dead-letter directory, the
// batch's slots are released. Until then the event is in the ring file, so at every instant an answered event is in exactly one
// durable place that a restart reads back: the ring file, a spill segment, or ClickHouse.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/adtracker/adtracker/ingest"
	"github.com/adtracker/adtracker/ingest/ring"
	"github.com/adtracker/adtracker/ingest/spill"
)

// Sink is what the pipeline needs from ClickHouse. Insert must store the whole batch or nothing; its error says whether trying again
// can help (see Retryable) and whether the batch may have been stored anyway (see Uncertain). A batch with MaybeStored set must be
// filtered against what is already stored.
type Sink interface {
	Insert(ctx context.Context, b *ingest.Batch) error
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
	FsyncInterval time.Duration // ring msync and spill fsync period; bounds what a machine crash can lose
	DedupWindow   int           // client event_ids remembered for duplicate detection
	ReplayBackoff time.Duration // first wait after a failed replay; doubles up to 10 s
	InMemoryRing  bool          // no ring file: faster, but a killed process loses its ring (benchmarks only)
}

// Defaults returns the configuration the server starts with.
func Defaults() Config {
	return Config{
		// 16 MiB of ring file (64 bytes per slot with its sequence word) holding ~64k events of the load generator's traffic
		// (~200 encoded bytes: 4.2 slots). 56 rather than 64 keeps the file a power of two; against 248 (one slot for events up
		// to 240 bytes, 4 % denser on that traffic) it degrades gently with longer events (TestRingDensity).
		RingCapacity:  1 << 18,
		SlotSize:      56,
		BatchSize:     24576,
		FlushInterval: 500 * time.Millisecond,
		Inserters:     1,
		InsertTimeout: 10 * time.Second,
		SpillMaxBytes: 1 << 30,
		SpillSegment:  64 << 20,
		FsyncInterval: time.Second,
		DedupWindow:   1 << 18,
		ReplayBackoff: 200 * time.Millisecond,
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
	halt    atomic.Bool // tests: the batcher stops at once without flushing, as if the process died
	healthy atomic.Bool // ClickHouse answered the last insert or probe; when false, batches go straight to spill
	overQ   atomic.Bool // spill at quota

	jobs     chan *job
	freeJobs chan *job // batches between uses; see newJob
	dedup    *window
	wg       sync.WaitGroup
	stopOnce sync.Once
	stopCh   chan struct{} // closes: batcher drains and exits
	replayCh chan struct{} // closes: replayer exits
	ctx      context.Context
	cancel   context.CancelFunc

	// counts for the shutdown summary and tests
	Inserted, Spilled, Replayed, DeadLettered, Duplicates, Recovered atomic.Int64
	spillMu                                                          sync.Mutex // serialises Append with quota bypass
}

type job struct {
	b        ingest.Batch
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
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "deadletter"), 0o750); err != nil {
		return nil, err
	}
	sq, err := spill.Open(filepath.Join(cfg.Dir, "spill"), spill.Options{
		SegmentBytes: cfg.SpillSegment, MaxBytes: 0, FsyncInterval: cfg.FsyncInterval,
	})
	if err != nil {
		return nil, fmt.Errorf("spill: %w", err)
	}
	ropt := ring.Options{Capacity: cfg.RingCapacity, SlotSize: cfg.SlotSize}
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
	if r.MaxRecord() < ingest.MaxBinaryLen {
		_ = r.Close()
		_ = sq.Close()
		return nil, fmt.Errorf("ring of %d slots of %d bytes holds records up to %d bytes; events need %d",
			cfg.RingCapacity, cfg.SlotSize, r.MaxRecord(), ingest.MaxBinaryLen)
	}
	p := &Pipeline{
		cfg: cfg, log: log, ring: r, spill: sq, sink: sink,
		jobs:     make(chan *job, cfg.Inserters),
		dedup:    newWindow(cfg.DedupWindow),
		stopCh:   make(chan struct{}),
		replayCh: make(chan struct{}),
	}
	// At most 2×Inserters+1 jobs exist at once (one filling, Inserters queued, Inserters inserting); all are kept for reuse.
	p.freeJobs = make(chan *job, 2*cfg.Inserters+1)
	p.healthy.Store(true)
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if len(recs) > 0 || rst.Corrupt > 0 {
		if err := p.recover(recs); err != nil {
			_ = r.Close()
			_ = sq.Close()
			return nil, err
		}
		log.Warn("recovered events accepted before an unclean stop", zap.Int("events", len(recs)), zap.Int("corrupt_slots", rst.Corrupt))
	}
	if st := sq.Stats(); st.CorruptRegions > 0 || st.TornTails > 0 || st.MissingSegments > 0 || st.BadAck > 0 {
		log.Warn("spill damage found at start; intact records will be replayed",
			zap.Uint64("corrupt_regions", st.CorruptRegions), zap.Uint64("corrupt_bytes", st.CorruptBytes),
			zap.Uint64("torn_tails", st.TornTails), zap.Uint64("missing_segments", st.MissingSegments), zap.Uint64("bad_ack", st.BadAck))
	}
	r.Reset()
	p.updateQuota()
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

// recover moves records found in the ring file into spill segments, marked MaybeStored: the process may have inserted some of them
// before it died, so the replayer filters them by event_id. Only after the spill is synced may the ring be reset.
func (p *Pipeline) recover(recs []ring.Record) error {
	var b ingest.Batch
	var e ingest.Event
	flush := func() error {
		if b.N == 0 {
			return nil
		}
		b.MaybeStored = true
		if err := p.spill.Append(b.MarshalRecord(nil)); err != nil {
			return fmt.Errorf("recover ring into spill: %w", err)
		}
		b.Reset()
		return nil
	}
	for _, rc := range recs {
		if _, err := e.DecodeBinary(rc.Data); err != nil {
			spillCorrupt.Inc()
			continue
		}
		b.AppendEncoded(rc.Data)
		// A client whose request was in flight when the process died got no answer and will retry with the same event_id;
		// remembering recovered ids makes that retry a duplicate the batcher drops.
		p.dedup.seen(rc.Data)
		if b.N >= p.cfg.BatchSize {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	p.Recovered.Add(int64(len(recs)))
	recoveredRows.Add(float64(len(recs)))
	return p.spill.Sync()
}

// Enqueue accepts e. On nil the event is in the ring (and the ring file): answer 2xx. It does not allocate or lock.
func (p *Pipeline) Enqueue(e *ingest.Event) error {
	if p.closing.Load() {
		enqueueRefused.WithLabelValues("closing").Inc()
		return ErrClosed
	}
	if p.overQ.Load() {
		enqueueRefused.WithLabelValues("spill_quota").Inc()
		return ErrOverload
	}
	var buf [ingest.MaxBinaryLen]byte
	ok, err := p.ring.Enqueue(e.AppendBinary(buf[:0]))
	if err != nil {
		return err
	}
	if !ok {
		enqueueRefused.WithLabelValues("ring_full").Inc()
		return ErrFull
	}
	eventsEnqueued.Inc()
	return nil
}

// Ready reports whether Enqueue can currently accept events, and why not.
func (p *Pipeline) Ready() (bool, string) {
	switch {
	case p.closing.Load():
		return false, "draining"
	case p.overQ.Load():
		return false, "spill quota reached"
	case p.ring.Len() > p.ring.Cap()-p.ring.Slots(ingest.MaxBinaryLen):
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
		SpillBytes: p.spill.Bytes(), SpillSegments: p.spill.Segments(), ClickHouseUp: p.healthy.Load(),
	}
}

func (p *Pipeline) updateQuota() {
	p.overQ.Store(p.cfg.SpillMaxBytes > 0 && p.spill.Bytes() >= p.cfg.SpillMaxBytes)
}

// idleFlushNaps is how long (in the batcher's 1 ms naps) the input must pause before a partial batch leaves without waiting out
// FlushInterval, so the last events before a lull reach ClickHouse ~10 ms later instead of up to FlushInterval later. Only a batch
// of at least a quarter of BatchSize, or the first batch after FlushInterval without an insert, leaves early: sparse traffic must
// not become a stream of tiny inserts, which ClickHouse handles badly, so small inserts still come at most once per FlushInterval.
const idleFlushNaps = 10

// batcher is the ring's single consumer.
func (p *Pipeline) batcher() {
	defer p.wg.Done()
	defer close(p.jobs)
	var j *job
	var started time.Time
	lastFlush := time.Now() // a process that just started has not inserted for a while, but a small batch still waits its turn
	idle := 0
	flush := func() {
		if j == nil {
			return
		}
		p.jobs <- j
		j = nil
		lastFlush = time.Now()
	}
	for {
		if p.halt.Load() {
			return
		}
		from, to, data, ok := p.ring.Next()
		if ok {
			idle = 0
			if j == nil {
				j = p.newJob()
				j.b.Reset()
				j.from = from
				j.records = 0
				started = time.Now()
			}
			j.records++
			j.to = to // the claim's slots, with any padding before the record: released with the batch
			if p.dedup.seen(data) {
				duplicatesDropped.Inc()
				p.Duplicates.Add(1)
			} else {
				// A reference, not a copy: the slots are not released before the batch is stored, spilled or dead-lettered.
				j.b.AppendRef(data)
			}
			// Duplicates count too: they hold ring slots until their job is released, and a client replaying one id in a
			// loop would otherwise fill the ring with a batch that never reaches BatchSize (everyone gets 503 until the
			// flush interval).
			// And a job leaves once it spans half the ring, whatever BatchSize says: a batch stays in the ring until it is
			// stored, so one that cannot fit beside the batch being inserted would fill the ring and hold every producer at 503
			// until the flush interval (a ring configured smaller than two batches, or events longer than the defaults assume).
			if j.records >= p.cfg.BatchSize || j.to-j.from >= uint64(p.ring.Cap()/2) { // records ≥ j.b.N
				flush()
			}
			continue
		}
		if j != nil && (time.Since(started) >= p.cfg.FlushInterval ||
			(idle >= idleFlushNaps && (j.b.N >= p.cfg.BatchSize/4 || time.Since(lastFlush) >= p.cfg.FlushInterval))) {
			flush()
		}
		select {
		case <-p.stopCh:
			// Enqueue refuses new events before stopCh closes, but a producer that passed the check just before may still be
			// publishing: drain until the ring stays empty for a moment.
			if p.ring.Len() == 0 || idle > 200 {
				flush()
				return
			}
		default:
		}
		idle++
		// Nothing to read. Nobody waits on the batcher — a batch leaves at most every FlushInterval and the ring holds
		// seconds of traffic — so a millisecond nap costs no latency, and saves the context switches that a tight poll
		// showed in profiles (7 % of the server's CPU in scheduling).
		time.Sleep(time.Millisecond)
	}
}

// newJob returns a free job. A list rather than a sync.Pool, which every GC empties: the batch's slice of references is sized for a
// whole batch and would be allocated again several times a second under load.
func (p *Pipeline) newJob() *job {
	select {
	case j := <-p.freeJobs:
		return j
	default:
		return &job{b: ingest.Batch{Refs: make([][]byte, 0, min(p.cfg.BatchSize, 1<<16))}}
	}
}

func (p *Pipeline) inserter() {
	defer p.wg.Done()
	for j := range p.jobs {
		if p.store(j) {
			p.ring.Release(j.from, j.to)
		}
		// else: a hard stop; the slots stay published in the ring file and the next start recovers them.
		select {
		case p.freeJobs <- j:
		default:
		}
	}
}

// store puts a batch somewhere durable: ClickHouse, else spill, else the dead-letter directory. It returns only when one of them
// holds the batch — if ClickHouse is down and the spill quota is reached, it keeps retrying while the ring fills and Enqueue answers
// 503, which is the backpressure the client sees. It returns false only when a hard stop interrupted it before the batch was safe.
func (p *Pipeline) store(j *job) bool {
	b := &j.b
	if b.N == 0 {
		return true
	}
	batchSize.Observe(float64(b.N))
	for attempt := 0; ; attempt++ {
		if p.healthy.Load() {
			start := time.Now()
			err := p.insert(b)
			if err == nil {
				flushSeconds.Observe(time.Since(start).Seconds())
				batchesFlushed.WithLabelValues("inserted").Inc()
				rowsStored.WithLabelValues("inserted").Add(float64(b.N))
				p.Inserted.Add(int64(b.N))
				p.healthy.Store(true)
				return true
			}
			if Uncertain(err) {
				b.MaybeStored = true // kept in the spill or dead-letter record, so whoever re-inserts it checks first
			}
			if !Retryable(err) {
				insertErrors.WithLabelValues("permanent").Inc()
				p.deadLetter(b, err)
				return true
			}
			insertErrors.WithLabelValues("retryable").Inc()
			if p.healthy.Swap(false) {
				p.log.Warn("clickhouse insert failed; spilling to disk until it answers", zap.Error(err))
			}
		}
		if err := p.appendSpill(b, false); err == nil {
			batchesFlushed.WithLabelValues("spilled").Inc()
			rowsStored.WithLabelValues("spilled").Add(float64(b.N))
			p.Spilled.Add(int64(b.N))
			return true
		} else if !errors.Is(err, spill.ErrFull) {
			p.log.Error("spill append failed; keeping the batch in the ring and retrying", zap.Error(err))
		}
		// Neither ClickHouse nor the spill can take it now. The slots stay held; wait and try both again.
		select {
		case <-time.After(backoff(attempt, p.cfg.ReplayBackoff)):
		case <-p.ctx.Done():
			// Hard stop: the batch stays in the ring file and is recovered at the next start.
			return false
		}
	}
}

func (p *Pipeline) insert(b *ingest.Batch) error {
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.InsertTimeout)
	defer cancel()
	return p.sink.Insert(ctx, b)
}

// appendSpill writes b as one spill record. force ignores the quota (used for data that is already accepted and has nowhere else to go).
func (p *Pipeline) appendSpill(b *ingest.Batch, force bool) error {
	p.spillMu.Lock()
	defer p.spillMu.Unlock()
	if !force && p.cfg.SpillMaxBytes > 0 && p.spill.Bytes()+int64(b.Size()) > p.cfg.SpillMaxBytes {
		p.overQ.Store(true)
		return spill.ErrFull
	}
	err := p.spill.Append(b.MarshalRecord(make([]byte, 0, b.Size()+8)))
	p.updateQuota()
	return err
}

// deadLetter keeps a batch ClickHouse refused for a reason retrying cannot fix (schema mismatch), with the server's message, so an
// operator can fix the schema and re-ingest it (`adtracker deadletter replay`). It never blocks later data.
func (p *Pipeline) deadLetter(b *ingest.Batch, cause error) {
	name := fmt.Sprintf("%020d", time.Now().UnixNano())
	dir := filepath.Join(p.cfg.Dir, "deadletter")
	rec := b.MarshalRecord(nil)
	err := writeFileSync(filepath.Join(dir, name+".batch"), rec)
	if err == nil {
		err = writeFileSync(filepath.Join(dir, name+".error.txt"), []byte(cause.Error()+"\n"))
	}
	if err != nil {
		// Last resort: the spill keeps it (forced past the quota) so nothing is dropped silently.
		p.log.Error("dead-letter write failed; spilling instead", zap.Error(err))
		if err := p.appendSpill(b, true); err != nil {
			p.log.Error("spill of dead-letter batch failed", zap.Error(err))
		}
		return
	}
	batchesFlushed.WithLabelValues("dead_lettered").Inc()
	rowsStored.WithLabelValues("dead_lettered").Add(float64(b.N))
	p.DeadLettered.Add(int64(b.N))
	p.log.Error("clickhouse refused a batch permanently; kept in dead-letter directory",
		zap.String("file", filepath.Join(dir, name+".batch")), zap.Int("rows", b.N), zap.Error(cause))
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// replayer drains the spill into ClickHouse in order. The first record after start may have been inserted by the previous process
// right before it died (insert done, ack not yet written), so it is treated as MaybeStored; so is any record whose insert failed
// ambiguously. When the spill is empty and ClickHouse was marked down, it probes so live batches resume direct inserts.
func (p *Pipeline) replayer() {
	defer p.wg.Done()
	uncertain := true
	// A lost or damaged ack file means the spill restarts from its first record, some of which were stored already.
	allUncertain := p.spill.Stats().BadAck > 0
	attempt := 0
	var b ingest.Batch
	for {
		select {
		case <-p.replayCh:
			return
		default:
		}
		rec, pos, err := p.spill.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				p.log.Error("spill read", zap.Error(err))
			}
			if !p.healthy.Load() {
				ctx, cancel := context.WithTimeout(p.ctx, 2*time.Second)
				if p.sink.Ping(ctx) == nil {
					p.healthy.Store(true)
					p.log.Info("clickhouse answers again")
				}
				cancel()
			}
			p.sleep(100 * time.Millisecond)
			continue
		}
		if err := b.UnmarshalRecord(rec); err != nil {
			spillCorrupt.Inc()
			p.log.Error("undecodable spill record skipped", zap.Error(err))
			p.ackSkipped(pos)
			continue
		}
		if uncertain || allUncertain {
			b.MaybeStored = true
		}
		err = p.insert(&b)
		switch {
		case err == nil:
			if err := p.spill.Ack(pos); err != nil {
				// The rows are stored but the spill does not know: read the record again and let the stored-id filter skip it.
				p.log.Error("spill ack failed; will re-check the record against ClickHouse", zap.Error(err))
				uncertain = true
				p.spill.Rewind()
				p.sleep(backoff(attempt, p.cfg.ReplayBackoff))
				attempt++
				continue
			}
			rowsStored.WithLabelValues("replayed").Add(float64(b.N))
			p.Replayed.Add(int64(b.N))
			p.updateQuota()
			p.healthy.Store(true)
			uncertain, attempt = false, 0
		case !Retryable(err):
			insertErrors.WithLabelValues("permanent").Inc()
			p.deadLetter(&b, err)
			p.ackSkipped(pos)
			p.updateQuota()
			uncertain, attempt = false, 0
		default:
			insertErrors.WithLabelValues("retryable").Inc()
			p.healthy.Store(false)
			if Uncertain(err) {
				uncertain = true
			}
			p.spill.Rewind()
			p.sleep(backoff(attempt, p.cfg.ReplayBackoff))
			attempt++
		}
	}
}

// ackSkipped acks a spill record that will never be inserted (undecodable or dead-lettered). A failed ack is logged and
// otherwise harmless: the next successful ack covers this record, and until then a restart meets it again and skips it
// again.
func (p *Pipeline) ackSkipped(pos spill.Position) {
	if err := p.spill.Ack(pos); err != nil {
		p.log.Error("spill ack of a skipped record failed", zap.Error(err))
	}
}

func (p *Pipeline) sleep(d time.Duration) {
	select {
	case <-time.After(d):
	case <-p.replayCh:
	}
}

func backoff(attempt int, base time.Duration) time.Duration {
	if base <= 0 {
		base = 200 * time.Millisecond
	}
	d := base << min(attempt, 6)
	return min(d, 10*time.Second)
}

func (p *Pipeline) syncer() {
	defer p.wg.Done()
	t := time.NewTicker(p.cfg.FsyncInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := p.ring.Sync(); err != nil {
				p.log.Error("ring msync", zap.Error(err))
			}
		case <-p.replayCh:
			return
		}
	}
}

// Close stops accepting, drains the ring into ClickHouse or spill, and stops. Whatever it cannot finish before ctx ends stays in the
// ring file and is recovered at the next start, so Close never loses an accepted event.
func (p *Pipeline) Close(ctx context.Context) error {
	var err error
	p.stopOnce.Do(func() {
		p.closing.Store(true)
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
		if e := p.spill.Close(); err == nil {
			err = e
		}
		if e := p.ring.Close(); err == nil {
			err = e
		}
	})
	return err
}
