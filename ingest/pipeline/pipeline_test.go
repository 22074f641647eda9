package pipeline

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/internal/testenv"
)

// fakeSink stores event ids; it can be switched down (retryable errors), to fail ambiguously, or to refuse permanently.
type fakeSink struct {
	mu        sync.Mutex
	stored    map[event.UUID]int
	down      bool
	permanent bool
	uncertain bool   // store the batch, then report a timeout
	poisonAd  uint64 // a batch holding an event of this ad fails retryably every time (0: none)
	poisoned  int    // inserts refused because of poisonAd
	inserts   int
}

type sinkErr struct{ perm, unc bool }

func (e sinkErr) Error() string     { return "fake sink error" }
func (e sinkErr) Retryable() bool   { return !e.perm }
func (e sinkErr) IsUncertain() bool { return e.unc }

func newFake() *fakeSink { return &fakeSink{stored: map[event.UUID]int{}} }

func (f *fakeSink) Insert(ctx context.Context, b *event.Batch) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inserts++
	if f.down {
		return sinkErr{}
	}
	if f.permanent {
		return sinkErr{perm: true}
	}
	var e event.Event
	if f.poisonAd != 0 {
		poison := errors.New("poison")
		if err := b.Each(&e, func(e *event.Event) error {
			if e.AdID == f.poisonAd {
				return poison
			}
			return nil
		}); errors.Is(err, poison) {
			f.poisoned++
			return sinkErr{}
		}
	}
	err := b.Each(&e, func(e *event.Event) error {
		if b.MaybeStored && f.stored[e.ID] > 0 {
			return nil // the real sink filters MaybeStored batches by event_id
		}
		f.stored[e.ID]++
		return nil
	})
	if err != nil {
		return err
	}
	if f.uncertain {
		f.uncertain = false
		return sinkErr{unc: true}
	}
	return nil
}

func (f *fakeSink) Ping(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return sinkErr{}
	}
	return nil
}

func (f *fakeSink) set(fn func(f *fakeSink)) {
	f.mu.Lock()
	fn(f)
	f.mu.Unlock()
}

// count returns how many distinct ids are stored and whether any is stored twice.
func (f *fakeSink) count() (n int, dups int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.stored {
		n++
		if c > 1 {
			dups++
		}
	}
	return
}

func testConfig(t *testing.T) Config {
	c := Defaults()
	c.Dir = t.TempDir()
	c.RingCapacity = 1 << 12
	c.BatchSize = 100
	c.FlushInterval = 10 * time.Millisecond
	c.InsertTimeout = time.Second
	c.ReplayBackoff = 10 * time.Millisecond
	c.FsyncInterval = 50 * time.Millisecond
	return c
}

func mkEvent(i int, clientID bool) *event.Event {
	e := &event.Event{Type: event.TypeImpression, AdID: uint64(i%5 + 1), EventTime: 1745247600, ReceiveTime: 1745247600}
	e.ID[0], e.ID[1], e.ID[2], e.ID[3] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
	e.ID[15] = 0xAA
	if clientID {
		e.Flags |= event.FlagClientID
	}
	return e
}

// crash stops p as a killed process would: the hard stop comes first, so no batch is stored or released after it, and the
// duplicate window is not saved. What was in the ring stays in the ring file for the next Open.
func crash(t *testing.T, p *Pipeline) {
	t.Helper()
	p.closing.Store(true)
	p.cancel()
	close(p.replayCh)
	close(p.stopCh)
	p.wg.Wait()
	if err := p.ring.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.spill.Close(); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func enqueueN(t *testing.T, p *Pipeline, from, n int, clientID bool) {
	t.Helper()
	for i := from; i < from+n; i++ {
		for {
			err := p.Enqueue(mkEvent(i, clientID))
			if err == nil {
				break
			}
			if !errors.Is(err, ErrFull) {
				t.Fatalf("enqueue %d: %v", i, err)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

func TestInsertsEverything(t *testing.T) {
	sink := newFake()
	p, err := Open(testConfig(t), sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	enqueueN(t, p, 0, 5000, false)
	waitFor(t, "5000 stored", func() bool { n, _ := sink.count(); return n == 5000 })
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, d := sink.count(); n != 5000 || d != 0 {
		t.Fatalf("stored %d, %d duplicates", n, d)
	}
}

// ClickHouse down: batches go to spill; when it returns, the replayer drains the spill and every event is stored exactly once.
func TestSpillWhileDownThenReplay(t *testing.T) {
	sink := newFake()
	sink.down = true
	cfg := testConfig(t)
	p, err := Open(cfg, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	enqueueN(t, p, 0, 3000, false)
	waitFor(t, "everything spilled", func() bool { return p.Spilled.Load() == 3000 })
	if p.State().SpillBytes == 0 {
		t.Fatal("nothing in spill while down")
	}
	sink.set(func(f *fakeSink) { f.down = false })
	waitFor(t, "replay", func() bool { n, _ := sink.count(); return n == 3000 })
	waitFor(t, "spill drained", func() bool { st := p.State(); return st.SpillSegments == 1 && st.SpillBytes <= 8 })
	enqueueN(t, p, 3000, 100, false)
	waitFor(t, "live inserts resume", func() bool { n, _ := sink.count(); return n == 3100 })
	p.Close(context.Background())
	if _, d := sink.count(); d != 0 {
		t.Fatalf("%d duplicates", d)
	}
}

// At the spill quota Enqueue refuses with ErrOverload (→ 503) instead of growing without bound; space comes back after replay.
func TestSpillQuotaRefuses(t *testing.T) {
	sink := newFake()
	sink.down = true
	cfg := testConfig(t)
	cfg.SpillMaxBytes = 20 << 10
	p, err := Open(cfg, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	accepted := 0
	var refused error
	for i := 0; i < 100000 && refused == nil; i++ {
		if err := p.Enqueue(mkEvent(i, false)); err != nil {
			refused = err
			break
		}
		accepted++
		if i%100 == 0 {
			time.Sleep(2 * time.Millisecond) // let batches reach the spill
		}
	}
	if !errors.Is(refused, ErrOverload) && !errors.Is(refused, ErrFull) {
		t.Fatalf("after %d events: %v, want ErrOverload or ErrFull", accepted, refused)
	}
	if ok, _ := p.Ready(); ok && errors.Is(refused, ErrOverload) {
		t.Fatal("Ready while over quota")
	}
	sink.set(func(f *fakeSink) { f.down = false })
	waitFor(t, "all accepted stored", func() bool { n, _ := sink.count(); return n == accepted })
	waitFor(t, "quota released", func() bool { return p.Enqueue(mkEvent(1<<30, false)) == nil })
	p.Close(context.Background())
	if n, d := sink.count(); n != accepted+1 || d != 0 {
		t.Fatalf("stored %d of %d, %d duplicates", n, accepted+1, d)
	}
}

func TestPermanentErrorGoesToDeadLetter(t *testing.T) {
	sink := newFake()
	sink.permanent = true
	cfg := testConfig(t)
	p, err := Open(cfg, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	enqueueN(t, p, 0, 250, false)
	waitFor(t, "dead-lettered", func() bool { return p.DeadLettered.Load() == 250 })
	sink.set(func(f *fakeSink) { f.permanent = false })
	enqueueN(t, p, 250, 10, false) // later data is not blocked
	waitFor(t, "later data stored", func() bool { n, _ := sink.count(); return n == 10 })
	p.Close(context.Background())
	files, _ := filepath.Glob(filepath.Join(cfg.Dir, "deadletter", "*.batch"))
	msgs, _ := filepath.Glob(filepath.Join(cfg.Dir, "deadletter", "*.error.txt"))
	if len(files) == 0 || len(files) != len(msgs) {
		t.Fatalf("dead-letter files %d, messages %d", len(files), len(msgs))
	}
	total := 0
	for _, f := range files {
		b, err := ReadDeadLetter(f)
		if err != nil {
			t.Fatal(err)
		}
		total += b.N
	}
	if total != 250 {
		t.Fatalf("dead letters hold %d events, want 250", total)
	}
}

func TestClientRetriesAreDeduplicated(t *testing.T) {
	sink := newFake()
	p, err := Open(testConfig(t), sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	enqueueN(t, p, 0, 500, true)
	enqueueN(t, p, 0, 500, true)  // the same client ids again
	enqueueN(t, p, 0, 500, false) // server-made ids are never compared (they cannot repeat)
	waitFor(t, "stored", func() bool { return p.Duplicates.Load() == 500 })
	p.Close(context.Background())
	if n, d := sink.count(); n != 500 || d != 500 {
		// the 500 server-id events reuse the test's ids, so the fake counts them as second copies: 500 distinct, 500 seen twice
		t.Fatalf("distinct %d, twice %d", n, d)
	}
}

// An insert that fails after the data reached the server must not be counted twice when it is retried from spill.
func TestUncertainInsertNotDoubleCounted(t *testing.T) {
	sink := newFake()
	sink.uncertain = true
	p, err := Open(testConfig(t), sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	enqueueN(t, p, 0, 100, false)
	waitFor(t, "replayed", func() bool { return p.Replayed.Load() == 100 })
	p.Close(context.Background())
	if n, d := sink.count(); n != 100 || d != 0 {
		t.Fatalf("stored %d, %d duplicates", n, d)
	}
}

// Close with ClickHouse down: everything accepted ends in spill, and a new pipeline on the same directory replays it.
func TestCloseSpillsAndNextStartReplays(t *testing.T) {
	sink := newFake()
	sink.down = true
	cfg := testConfig(t)
	p, err := Open(cfg, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	enqueueN(t, p, 0, 1000, false)
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Enqueue(mkEvent(1, false)); !errors.Is(err, ErrClosed) {
		t.Fatalf("enqueue after close: %v", err)
	}
	sink.set(func(f *fakeSink) { f.down = false })
	p2, err := Open(cfg, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "replay after restart", func() bool { n, _ := sink.count(); return n == 1000 })
	p2.Close(context.Background())
	if _, d := sink.count(); d != 0 {
		t.Fatalf("%d duplicates", d)
	}
}

// restartAndStore starts the pipeline again after a crash and checks that it recovers n events from the ring and that the sink
// then holds n events, none twice.
func restartAndStore(t *testing.T, cfg Config, sink *fakeSink, n int) {
	t.Helper()
	p, err := Open(cfg, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Recovered.Load(); got != int64(n) {
		t.Fatalf("recovered %d, want %d", got, n)
	}
	waitFor(t, "recovered events stored", func() bool { stored, _ := sink.count(); return stored == n })
	p.Close(context.Background())
	if stored, d := sink.count(); stored != n || d != 0 {
		t.Fatalf("%d stored, %d duplicates after recovery; want %d, none", stored, d, n)
	}
}

// A process that dies with events in the ring (simulated: the ring file is left unreleased because Close is never called and the
// sink never answered) hands them to the next start, which stores each exactly once even when some were already stored.
func TestRecoverFromRingFile(t *testing.T) {
	cfg := testConfig(t)
	cfg.FlushInterval = time.Hour // nothing leaves the ring by itself
	cfg.BatchSize = 1 << 20
	sink := newFake()
	p, err := Open(cfg, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	enqueueN(t, p, 0, 700, false)
	// Pretend the first 300 had been inserted just before the crash.
	for i := 0; i < 300; i++ {
		sink.stored[mkEvent(i, false).ID] = 1
	}
	// "Crash": stop the goroutines without storing or releasing, then unmap; the ring file keeps all 700 published.
	crash(t, p)

	restartAndStore(t, cfg, sink, 700)
}

// A machine crash: the disk holds the ring file as the start left it (empty) and the mirror as of the last sync (ring.Sync, what
// the syncer calls every FsyncInterval). The next boot stores exactly what was published before that sync, once, even where
// some of it had reached the sink; what came after the sync is the documented loss (README, "Machine crash").
func TestMachineCrashRecoversFromMirror(t *testing.T) {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Skip("no boot id here: the ring cannot tell a process crash from a machine crash")
	}
	cfg := testConfig(t)
	cfg.FlushInterval = time.Hour // nothing leaves the ring by itself
	cfg.BatchSize = 1 << 20
	cfg.FsyncInterval = time.Hour // the only sync is the test's
	sink := newFake()
	p, err := Open(cfg, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	ringPath := filepath.Join(cfg.Dir, "ring")
	emptyRing, err := os.ReadFile(ringPath)
	if err != nil {
		t.Fatal(err)
	}
	// The next boot has another id: the header of the ring file on disk names this one.
	at := bytes.Index(emptyRing[:4096], bytes.TrimSpace(boot))
	if at < 0 {
		t.Fatal("the ring header does not name this boot")
	}
	copy(emptyRing[at:], "00000000-0000-4000-8000-000000000000")
	enqueueN(t, p, 0, 500, false)
	if err := p.ring.Sync(); err != nil {
		t.Fatal(err)
	}
	mirror, err := os.ReadFile(ringPath + ".mirror")
	if err != nil {
		t.Fatal(err)
	}
	enqueueN(t, p, 500, 200, false) // after the last sync: lost with the page cache
	for i := 0; i < 100; i++ {
		sink.stored[mkEvent(i, false).ID] = 1 // inserted just before the crash
	}
	crash(t, p)
	if err := os.WriteFile(ringPath, emptyRing, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ringPath+".mirror", mirror, 0o600); err != nil {
		t.Fatal(err)
	}

	restartAndStore(t, cfg, sink, 500) // the events published before the sync
	for i := 0; i < 500; i++ {
		if sink.stored[mkEvent(i, false).ID] != 1 {
			t.Fatalf("event %d stored %d times", i, sink.stored[mkEvent(i, false).ID])
		}
	}
}

// enqueueBenchPipeline opens the pipeline both enqueue benchmarks run against. Its ring has room for a few hundred ms of their
// rate, so producers measure the enqueue path, not spinning on a full ring while the batcher catches up (with a small ring they
// spend most of the time refused). Their event encodes to 67 bytes, 2 slots of 56: 131k events.
func enqueueBenchPipeline(b *testing.B) *Pipeline {
	cfg := Defaults()
	cfg.Dir = b.TempDir()
	cfg.BatchSize = 10000
	cfg.RingCapacity = 1 << 18
	p, err := Open(cfg, &nopSink{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close(context.Background()) })
	b.ReportAllocs()
	b.ResetTimer()
	return p
}

func BenchmarkEnqueue(b *testing.B) {
	p := enqueueBenchPipeline(b)
	e := mkEvent(1, false)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			for p.Enqueue(e) != nil {
			}
		}
	})
}

// BenchmarkEnqueueHeld is BenchmarkEnqueue the way a batch request enqueues: one Hold and Release around 1,000 events, against
// BenchmarkEnqueue's announcement per event. The difference is what holding saves per event when the producers run on every core.
func BenchmarkEnqueueHeld(b *testing.B) {
	p := enqueueBenchPipeline(b)
	e := mkEvent(1, false)
	b.RunParallel(func(pb *testing.PB) {
		for more := true; more; {
			if !p.Hold() {
				b.Error("Hold refused")
				return
			}
			n := 0
			for ; n < 1000; n++ {
				if more = pb.Next(); !more {
					break
				}
				for p.EnqueueHeld(e, time.Time{}) != nil {
				}
			}
			p.Release(n)
		}
	})
}

type nopSink struct{}

func (nopSink) Insert(context.Context, *event.Batch) error { return nil }
func (nopSink) Ping(context.Context) error                 { return nil }

// A client that sent an event right before a crash got no answer and retries it after the restart: the recovered copy and the retry
// must not both be stored.
func TestRetryAfterCrashIsDuplicate(t *testing.T) {
	cfg := testConfig(t)
	cfg.FlushInterval = time.Hour
	cfg.BatchSize = 1 << 20
	sink := newFake()
	p, err := Open(cfg, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	enqueueN(t, p, 0, 50, true)
	crash(t, p)

	cfg.FlushInterval = 10 * time.Millisecond
	p2, err := Open(cfg, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	enqueueN(t, p2, 0, 50, true) // the retries
	waitFor(t, "recovered stored", func() bool { n, _ := sink.count(); return n == 50 })
	waitFor(t, "retries dropped", func() bool { return p2.Duplicates.Load() == 50 })
	p2.Close(context.Background())
	if n, d := sink.count(); n != 50 || d != 0 {
		t.Fatalf("stored %d, %d twice", n, d)
	}
}

// A ring geometry whose largest record is shorter than the largest event would refuse some events with ErrTooLarge at run time;
// Open refuses it instead.
func TestRingTooSmallForEvents(t *testing.T) {
	f := func(capacity, slotSize int, ok bool) {
		t.Helper()
		cfg := testConfig(t)
		cfg.RingCapacity, cfg.SlotSize = capacity, slotSize
		p, err := Open(cfg, newFake(), nil)
		if (err == nil) != ok {
			t.Fatalf("ring %d × %d: err %v", capacity, slotSize, err)
		}
		if p != nil {
			p.Close(context.Background())
		}
	}
	// A record may take half the slots: MaxRecord = capacity/2 × slot size − 8; events need event.MaxBinaryLen (505).
	f(32, 56, true)  // 888
	f(16, 56, false) // 440
	f(2, 1024, true) // 1016
	f(2, 512, false) // 504
}

// A client replaying the same event_id in a loop must not fill the ring: the duplicates are dropped, but they hold ring slots until
// their job is released, so the job has to leave when it has read BatchSize records, not only BatchSize new events. With a flush
// interval of an hour nothing else would release them.
func TestDuplicatesDoNotHoldTheRing(t *testing.T) {
	sink := newFake()
	cfg := testConfig(t)
	cfg.FlushInterval = time.Hour
	p, err := Open(cfg, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	const copies = 20 * (1 << 12) // many times what the ring holds
	refused := 0
	for i := 0; i < copies; {
		err := p.Enqueue(mkEvent(7, true))
		switch {
		case err == nil:
			i++
			refused = 0
		case errors.Is(err, ErrFull):
			if refused++; refused > 5000 { // 5 s of a full ring with nothing stored to wait for
				t.Fatalf("ring full after %d copies of one event_id (%d duplicates dropped): duplicates hold the ring", i, p.Duplicates.Load())
			}
			time.Sleep(time.Millisecond)
		default:
			t.Fatal(err)
		}
	}
	waitFor(t, "duplicates counted", func() bool { return p.Duplicates.Load() == copies-1 })
	if n, d := sink.count(); n != 1 || d != 0 {
		t.Fatalf("stored %d distinct ids, %d more than once; want the one event once", n, d)
	}
}

// A ring too small for two batches (a configuration that counts events where it should count slots, or events longer than the
// defaults assume) must still move: a batch leaves once it spans half the ring, instead of filling the ring and holding every
// producer at 503 until the flush interval, here an hour.
func TestRingSmallerThanABatchStillFlows(t *testing.T) {
	sink := newFake()
	cfg := testConfig(t)
	cfg.FlushInterval = time.Hour
	cfg.BatchSize = 1 << 20 // far more events than the 4096-slot ring holds
	p, err := Open(cfg, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	const n = 20000
	refused := 0
	for i := 0; i < n; {
		err := p.Enqueue(mkEvent(i, true))
		switch {
		case err == nil:
			i++
			refused = 0
		case errors.Is(err, ErrFull):
			if refused++; refused > 5000 {
				t.Fatalf("ring full for 5 s after %d events with %d stored: a batch larger than the ring holds it", i, p.Inserted.Load())
			}
			time.Sleep(time.Millisecond)
		default:
			t.Fatal(err)
		}
	}
	// The last, partial batch waits for the flush interval; everything before it is stored.
	waitFor(t, "batches stored", func() bool { return p.Inserted.Load() >= n-int64(p.ring.Cap()) })
	if _, d := sink.count(); d != 0 {
		t.Fatalf("%d events stored twice", d)
	}
}

// When the input pauses, a partial batch of at least a quarter of BatchSize leaves at once instead of waiting out FlushInterval
// (here an hour); a smaller one keeps waiting, so sparse traffic does not become a stream of tiny inserts.
func TestIdleFlush(t *testing.T) {
	open := func(flushInterval time.Duration) (*Pipeline, *fakeSink) {
		t.Helper()
		sink := newFake()
		cfg := testConfig(t)
		cfg.FlushInterval = flushInterval
		cfg.BatchSize = 400
		p, err := Open(cfg, sink, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close(context.Background()) })
		return p, sink
	}
	f := func(n int, wantStored bool) {
		t.Helper()
		p, sink := open(time.Hour)
		enqueueN(t, p, 0, n, true)
		within := 5 * time.Second
		if !wantStored {
			// Ten times the idle pause: long enough for an idle flush to have happened if the rule allowed one.
			within = 10 * pauseFlush
		}
		if storedWithin(sink, n, within) != wantStored {
			got, _ := sink.count()
			t.Fatalf("%d events with BatchSize 400: %d stored after the input paused, want stored=%v", n, got, wantStored)
		}
	}
	f(100, true) // a quarter of the batch
	f(399, true) // just short of a full batch
	f(99, false) // below a quarter: waits for FlushInterval
	f(1, false)

	// A small batch after a FlushInterval without inserts leaves at the pause too; the next small one waits its FlushInterval.
	const interval = 2 * time.Second
	p, sink := open(interval)
	time.Sleep(interval + 100*time.Millisecond)
	enqueueN(t, p, 0, 10, true)
	if !storedWithin(sink, 10, interval/2) {
		t.Fatal("a small batch after a quiet FlushInterval was not inserted at the pause")
	}
	enqueueN(t, p, 10, 10, true)
	if storedWithin(sink, 20, interval/4) {
		t.Fatal("a second small batch right after an insert did not wait for FlushInterval")
	}
	if !storedWithin(sink, 20, 2*interval) {
		t.Fatal("the second small batch was not inserted after FlushInterval")
	}
}

// storedWithin polls the sink until it holds at least n distinct events or d has passed.
func storedWithin(sink *fakeSink, n int, d time.Duration) bool {
	for end := time.Now().Add(d); ; time.Sleep(time.Millisecond) {
		if got, _ := sink.count(); got >= n {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

// BenchmarkIdlePipeline is what an open pipeline with no traffic costs: CPU-ms per second of wall time: the batcher's naps (a timer
// and a wakeup each; quietNap when idle), the syncers and the replayer's polls. One op is 100 ms idle.
// Default configuration, apart from the data dir.
func BenchmarkIdlePipeline(b *testing.B) {
	cfg := Defaults()
	cfg.Dir = b.TempDir()
	p, err := Open(cfg, newFake(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	time.Sleep(100 * time.Millisecond) // past start-up
	cpu, start := testenv.ProcessCPU(b), time.Now()
	for b.Loop() {
		time.Sleep(100 * time.Millisecond)
	}
	b.ReportMetric(float64(testenv.ProcessCPU(b)-cpu)/float64(time.Since(start))*1000, "cpu-ms/s")
}
