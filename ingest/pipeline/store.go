package pipeline

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/ingest/spill"
)

// The store policy: where a batch read from the ring goes. In order of preference ClickHouse, the spill, the dead-letter directory
// (for a batch ClickHouse refuses for good); when none of them can take it, the batch keeps its ring slots and is tried again.

func (p *Pipeline) inserter() {
	defer p.wg.Done()
	for j := range p.jobs {
		if p.store(j) {
			p.ring.Release(j.from, j.to)
			p.signalRoom()
		}
		// else: a hard stop; the slots stay published in the ring file and the next start recovers them.
		select {
		case p.freeJobs <- j:
		default:
		}
	}
}

// store puts a batch somewhere durable: ClickHouse, else spill, else the dead-letter directory. It returns true only when one of
// them holds the batch — if ClickHouse is down and the spill quota is reached, or ClickHouse refuses the batch and the disk is full,
// it keeps retrying while the ring fills and Enqueue answers 503, which is the backpressure the client sees. It returns false only
// when a hard stop interrupted it before the batch was safe; the batch then stays in the ring file for the next start.
func (p *Pipeline) store(j *job) bool {
	b := &j.b
	if b.N == 0 {
		return true
	}
	batchSize.Observe(float64(b.N))
	for attempt := 0; ; attempt++ {
		if p.ctx.Err() != nil {
			return false // hard stop: start nothing new
		}
		if p.health.live() {
			start := time.Now()
			err := p.insert(b)
			if err == nil {
				flushSeconds.Observe(time.Since(start).Seconds())
				batchesFlushed.WithLabelValues("inserted").Inc()
				rowsStored.WithLabelValues("inserted").Add(float64(b.N))
				p.Inserted.Add(int64(b.N))
				p.health.answered()
				return true
			}
			if Uncertain(err) {
				b.MaybeStored = true // kept in the spill or dead-letter record, so whoever re-inserts it checks first
			}
			if !Retryable(err) {
				insertErrors.WithLabelValues("permanent").Inc()
				if p.refused(b, err) {
					return true
				}
			} else {
				insertErrors.WithLabelValues("retryable").Inc()
				if p.health.failed() {
					p.log.Warn("clickhouse insert failed; spilling to disk until it answers", zap.Error(err))
				}
				if p.spillBatch(b) {
					return true
				}
			}
		} else if p.spillBatch(b) {
			return true
		}
		// Nothing can take it now. The slots stay held; wait and try again.
		select {
		case <-time.After(backoff(attempt, p.cfg.ReplayBackoff)):
		case <-p.ctx.Done():
			return false
		}
	}
}

// spillBatch appends a live batch to the spill within the quota and reports whether it is there.
func (p *Pipeline) spillBatch(b *event.Batch) bool {
	err := p.appendSpill(b, false)
	if err == nil {
		p.countSpilled(b)
		return true
	}
	if !errors.Is(err, spill.ErrFull) {
		p.log.Error("spill append failed; keeping the batch in the ring and retrying", zap.Error(err))
	}
	return false
}

// refused handles a batch ClickHouse refused for good: the dead-letter directory, else the spill past its quota (the replayer meets
// it again and dead-letters it once the disk has room). It reports whether either holds the batch; when not, the caller keeps it.
func (p *Pipeline) refused(b *event.Batch, cause error) bool {
	err := p.deadLetter(b, cause, reasonDeadLettered)
	if err == nil {
		return true
	}
	p.log.Error("dead-letter write failed; spilling the batch past the quota instead", zap.Error(err))
	if err := p.appendSpill(b, true); err != nil {
		p.log.Error("spill of a refused batch failed too; keeping it in the ring and retrying", zap.Int("rows", b.N), zap.Error(err))
		return false
	}
	p.countSpilled(b)
	return true
}

// countSpilled counts a live batch that went to the spill instead of ClickHouse.
func (p *Pipeline) countSpilled(b *event.Batch) {
	batchesFlushed.WithLabelValues("spilled").Inc()
	rowsStored.WithLabelValues("spilled").Add(float64(b.N))
	p.Spilled.Add(int64(b.N))
}

func (p *Pipeline) insert(b *event.Batch) error {
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.InsertTimeout)
	defer cancel()
	return p.sink.Insert(ctx, b)
}

// ping asks whether ClickHouse answers at all, to tell a bad batch from a bad server.
func (p *Pipeline) ping() error {
	ctx, cancel := context.WithTimeout(p.ctx, 2*time.Second)
	defer cancel()
	return p.sink.Ping(ctx)
}

// appendSpill writes b as one spill record. force ignores the quota (used for data that is already accepted and has nowhere else to go).
func (p *Pipeline) appendSpill(b *event.Batch, force bool) error {
	p.spillMu.Lock()
	defer p.spillMu.Unlock()
	if !force && p.cfg.SpillMaxBytes > 0 && p.spill.Bytes()+int64(b.Size()) > p.cfg.SpillMaxBytes {
		p.quota.set(true)
		return spill.ErrFull
	}
	err := p.spill.Append(b.MarshalRecord(make([]byte, 0, b.Size()+8)))
	p.updateQuota()
	return err
}
