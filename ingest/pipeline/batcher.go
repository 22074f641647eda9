package pipeline

import (
	"time"

	"github.com/adtracker/adtracker/ingest/event"
)

// The batcher polls the ring and naps when it finds nothing to read. Timings of the loop, all measured from the first poll that
// found the ring empty (the input's pause):
const (
	// pauseFlush: a partial batch leaves without waiting out FlushInterval once the input pauses this long, so the last events
	// before a lull reach ClickHouse ~10 ms later instead of up to FlushInterval later. Only a batch of at least a quarter of
	// BatchSize, or the first batch after FlushInterval without an insert, leaves early: sparse traffic must not become a stream of
	// tiny inserts, which ClickHouse handles badly, so small inserts still come at most once per FlushInterval.
	pauseFlush = 10 * time.Millisecond
	// quietCheckpoint: while the input pauses, the duplicate window is offered to a checkpoint this often, so the last ids before a
	// lull reach a checkpoint too, not only those followed by another flush.
	quietCheckpoint = 100 * time.Millisecond
	// drainQuiet: at stop, the batcher drains until the ring is empty or has had nothing new for this long.
	drainQuiet = 200 * time.Millisecond
)

// How long the batcher naps. Nobody waits on the batcher (a batch leaves at most every FlushInterval and the ring holds seconds of
// traffic), so a nap costs no latency; what it costs is CPU. A nap that ends while the process has nothing else to do wakes a
// thread, and the runtime's poller and monitor thread with it, which costs far more than the timer: at moderate rates, where the
// process idles between requests, 1 ms naps cost the server several per cent of its CPU against 5 ms naps (BENCHMARKS.md, "Design
// measurements"). Under load the other way round: a batcher napping 5 ms woke late after an insert freed a full ring, and batch
// traffic stored less per second. So the nap is busyNap while the input is busy and quietNap otherwise (napFor).
const (
	busyNap  = time.Millisecond
	quietNap = 5 * time.Millisecond
	// busyRate: records per millisecond of the last nap (20,000 a second) from which the input counts as busy.
	busyRate = 20
)

// napFor is the next nap after one of length last during which got records arrived, with used of the ring's capacity slots taken.
// Busy is a high arrival rate, or a ring at least half full: then an insert holds half the ring and the batcher must keep the next
// batch moving, or producers wait for slots.
func napFor(got int, last time.Duration, used, capacity int) time.Duration {
	if int64(got)*int64(time.Millisecond) >= busyRate*int64(last) || 2*used >= capacity {
		return busyNap
	}
	return quietNap
}

// batcher is the ring's single consumer.
func (p *Pipeline) batcher() {
	defer p.wg.Done()
	defer close(p.jobs)
	defer p.stopDedupCheckpoints() // the batcher owns the window: no copy of it can be taken after this
	var j *job
	var started time.Time
	lastFlush := time.Now() // a process that just started has not inserted for a while, but a small batch still waits its turn
	// The input's pause: lastRead is when a poll last found records, got how many since the last nap.
	lastRead, got, nap, nextCheckpoint := lastFlush, 0, busyNap, quietCheckpoint
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
	// Records are read dupGroup at a time so that the duplicate window can load the table entries of the whole group together
	// (seenGroup); each is then handled alone, in ring order.
	var claims [dupGroup]struct{ from, to uint64 }
	var datas [dupGroup][]byte
	var dups [dupGroup]bool
	for {
		n := 0
		for ; n < dupGroup; n++ {
			from, to, data, ok := p.ring.Next()
			if !ok {
				break
			}
			claims[n].from, claims[n].to, datas[n] = from, to, data
		}
		if n > 0 {
			p.dedup.seenGroup(datas[:n], dups[:n])
			for i := range n {
				got++
				if j == nil {
					j = p.newJob()
					j.b.Reset()
					j.from = claims[i].from
					j.records = 0
					started = time.Now()
				}
				j.records++
				j.to = claims[i].to // the claim's slots, with any padding before the record: released with the batch
				if dups[i] {
					duplicatesDropped.Inc()
					p.Duplicates.Add(1)
				} else {
					// A reference, not a copy: the slots are not released before the batch is stored, spilled or dead-lettered.
					j.b.AppendRef(datas[i])
				}
				// Duplicates count too: they hold ring slots until their job is released, and a client replaying one id in a
				// loop would otherwise fill the ring with a batch that never reaches BatchSize (everyone gets 503 until the
				// flush interval).
				// And a job leaves once it spans half the ring, whatever BatchSize says: a batch stays in the ring until it is
				// stored, so one that cannot fit beside the batch being inserted would fill the ring and hold every producer at
				// 503 until the flush interval (a ring configured smaller than two batches, or events longer than the defaults
				// assume).
				if j.records >= p.cfg.BatchSize || j.to-j.from >= uint64(p.ring.Cap()/2) { // records ≥ j.b.N
					flush(true)
				}
			}
			continue
		}
		now := time.Now()
		if got > 0 {
			lastRead, nextCheckpoint = now, quietCheckpoint
		}
		quiet := now.Sub(lastRead)
		if j != nil && (now.Sub(started) >= p.cfg.FlushInterval ||
			(quiet >= pauseFlush && (j.b.N >= p.cfg.BatchSize/4 || now.Sub(lastFlush) >= p.cfg.FlushInterval))) {
			flush(false)
		}
		select {
		case <-p.stopCh:
			// Enqueue refuses new events before stopCh closes, but a producer that passed the check just before may still be
			// publishing: drain until the ring stays empty for a moment.
			if p.ring.Len() == 0 || quiet > drainQuiet {
				flush(true)
				return
			}
		default:
		}
		if quiet >= nextCheckpoint {
			p.checkpointDedup(now)
			nextCheckpoint += quietCheckpoint
		}
		nap = napFor(got, nap, p.ring.Len(), p.ring.Cap())
		got = 0
		time.Sleep(nap)
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
