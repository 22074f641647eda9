package pipeline

import (
	"time"

	"github.com/adtracker/adtracker/ingest/event"
)

// idleFlushNaps is how long (in the batcher's 1 ms naps) the input must pause before a partial batch leaves without waiting out
// FlushInterval, so the last events before a lull reach ClickHouse ~10 ms later instead of up to FlushInterval later. Only a batch
// of at least a quarter of BatchSize, or the first batch after FlushInterval without an insert, leaves early: sparse traffic must
// not become a stream of tiny inserts, which ClickHouse handles badly, so small inserts still come at most once per FlushInterval.
const idleFlushNaps = 10

// After longNapAfter naps in a row with nothing to read (about a second), the batcher naps longNap instead of 1 ms: each nap costs
// ~25–30 µs of CPU here (a timer, a wakeup of the runtime's poller, a futex), so an idle server spent about half its idle CPU
// napping (BENCHMARKS.md, "Design measurements": BenchmarkIdlePipeline). Only after a long quiet stretch: a 5 ms nap all the time
// made the batcher late after every insert that freed a full ring, and batch traffic stored less per second.
const (
	longNap      = 5 * time.Millisecond
	longNapAfter = 1000
)

// batcher is the ring's single consumer.
func (p *Pipeline) batcher() {
	defer p.wg.Done()
	defer close(p.jobs)
	defer p.stopDedupCheckpoints() // the batcher owns the window: no copy of it can be taken after this
	var j *job
	var started time.Time
	lastFlush := time.Now() // a process that just started has not inserted for a while, but a small batch still waits its turn
	idle := 0
	// flush hands the filling job to an inserter. wait says whether the batcher waits for one: a job that may not grow any
	// further (BatchSize, half the ring, the drain at stop) waits; one that leaves early for freshness (FlushInterval, a pause in
	// the input) goes only to an inserter that is free now, and otherwise keeps filling.
	flush := func(wait bool) {
		if j == nil {
			return
		}
		if wait {
			p.jobs <- j
		} else {
			select {
			case p.jobs <- j:
			default:
				return
			}
		}
		j = nil
		lastFlush = time.Now()
		p.checkpointDedup(lastFlush)
	}
	for {
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
				flush(true)
			}
			continue
		}
		if j != nil && (time.Since(started) >= p.cfg.FlushInterval ||
			(idle >= idleFlushNaps && (j.b.N >= p.cfg.BatchSize/4 || time.Since(lastFlush) >= p.cfg.FlushInterval))) {
			flush(false)
		}
		select {
		case <-p.stopCh:
			// Enqueue refuses new events before stopCh closes, but a producer that passed the check just before may still be
			// publishing: drain until the ring stays empty for a moment.
			if p.ring.Len() == 0 || idle > 200 {
				flush(true)
				return
			}
		default:
		}
		idle++
		if idle%100 == 0 {
			// Input paused: the last ids before a lull reach a checkpoint too, not only those followed by another flush.
			p.checkpointDedup(time.Now())
		}
		// Nothing to read. Nobody waits on the batcher — a batch leaves at most every FlushInterval and the ring holds
		// seconds of traffic — so a millisecond nap costs no latency, and saves the context switches of a tight poll, which
		// showed in profiles as scheduling (BENCHMARKS.md, "Design measurements").
		if idle >= longNapAfter {
			time.Sleep(longNap)
		} else {
			time.Sleep(time.Millisecond)
		}
	}
}

// newJob returns a free job. A list rather than a sync.Pool, which every GC empties: the batch's slice of references is sized for a
// whole batch and would be allocated again several times a second under load.
func (p *Pipeline) newJob() *job {
	select {
	case j := <-p.freeJobs:
		return j
	default:
		return &job{b: event.Batch{Refs: make([][]byte, 0, min(p.cfg.BatchSize, 1<<16))}}
	}
}
