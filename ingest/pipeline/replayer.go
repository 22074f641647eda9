package pipeline

import (
	"errors"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/ingest/spill"
)

// headRecord counts the failures of the record at the head of the spill that were the record's fault (ClickHouse answered Ping
// right after), for the poison-record bound. Kept in memory only: a restart gives the record a fresh count, which only delays its
// quarantine.
type headRecord struct {
	pos       spill.Position
	attempts  int
	firstFail time.Time
}

// fail counts a record-specific failure of the record ending at pos and reports whether it has now used up its bounds. A failure
// that only waited for an earlier insert of the record to end (waiting) starts the age clock but is not an attempt: a slow server
// finishing a late commit is not a poison record.
func (h *headRecord) fail(pos spill.Position, now time.Time, maxAttempts int, maxAge time.Duration, waiting bool) bool {
	if h.pos != pos || h.firstFail.IsZero() {
		*h = headRecord{pos: pos, firstFail: now}
	}
	if !waiting {
		h.attempts++
	}
	return (maxAttempts > 0 && h.attempts >= maxAttempts) || (maxAge > 0 && now.Sub(h.firstFail) >= maxAge)
}

// replayer drains the spill into ClickHouse in order; see cursorState in state.go for when a record is inserted as MaybeStored.
// A record that fails retryably while ClickHouse answers Ping is the record's problem, not ClickHouse's: live batches keep going to
// ClickHouse, and after Config.ReplayMaxAttempts such failures (or ReplayMaxAge) the record is quarantined to the dead-letter
// directory so later records keep replaying. While ClickHouse is marked down it probes, so live batches resume direct inserts.
func (p *Pipeline) replayer() {
	defer p.wg.Done()
	cursor := cursorAtStart(p.spill.Stats().BadAck > 0)
	attempt := 0
	var head headRecord
	var b event.Batch
	retry := func() {
		p.spill.Rewind()
		p.sleep(backoff(attempt, p.cfg.ReplayBackoff))
		attempt++
	}
	for {
		select {
		case <-p.replayCh:
			return
		default:
		}
		rec, pos, err := p.spill.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				cursor = cursor.caughtUp()
			} else {
				p.log.Error("spill read", zap.Error(err))
			}
			if !p.health.live() && p.ping() == nil && p.health.answered() {
				p.log.Info("clickhouse answers again")
			}
			p.sleep(100 * time.Millisecond)
			continue
		}
		if err := b.UnmarshalRecord(rec); err != nil {
			spillCorrupt.Inc()
			notStored(reasonSpillCorrupt, 1)
			p.log.Error("undecodable spill record skipped: its events are lost", zap.String("dir", p.spill.Path()),
				zap.Stringer("position", pos), zap.Error(err))
			p.ackSkipped(pos)
			cursor = cursor.done()
			continue
		}
		if cursor.maybeStored() {
			b.MaybeStored = true
		}
		err = p.insert(&b)
		switch {
		case err == nil:
			if err := p.spill.Ack(pos); err != nil {
				// The rows are stored but the spill does not know: read the record again and let the stored-id filter skip it.
				p.log.Error("spill ack failed; will re-check the record against ClickHouse", zap.Error(err))
				cursor = cursor.ambiguous()
				retry()
				continue
			}
			rowsStored.WithLabelValues("replayed").Add(float64(b.N))
			p.Replayed.Add(int64(b.N))
			p.updateQuota()
			p.health.answered()
			cursor, attempt, head = cursor.done(), 0, headRecord{}
		case !Retryable(err):
			insertErrors.WithLabelValues("permanent").Inc()
			if werr := p.deadLetter(&b, err, reasonDeadLettered); werr != nil {
				// Not written: keep the record at the head and try again (the disk may have room later).
				p.log.Error("dead-letter write of a refused spill record failed; it stays in the spill", zap.Error(werr))
				retry()
				continue
			}
			p.ackSkipped(pos)
			p.updateQuota()
			cursor, attempt, head = cursor.done(), 0, headRecord{}
		default:
			insertErrors.WithLabelValues("retryable").Inc()
			if Uncertain(err) {
				cursor = cursor.ambiguous()
			}
			if p.ping() != nil {
				// ClickHouse itself is failing: not the record's fault, so its count does not grow.
				if p.health.failed() {
					p.log.Warn("clickhouse is not answering; live batches spill until it does", zap.Error(err))
				}
				retry()
				continue
			}
			p.health.answered()
			if head.fail(pos, time.Now(), p.cfg.ReplayMaxAttempts, p.cfg.ReplayMaxAge, Waiting(err)) {
				cause := fmt.Errorf("refused %d times over %s while ClickHouse answered; last error: %w",
					head.attempts, time.Since(head.firstFail).Round(time.Millisecond), err)
				werr := p.deadLetter(&b, cause, reasonQuarantined)
				if werr == nil {
					p.ackSkipped(pos)
					p.updateQuota()
					cursor, attempt, head = cursor.done(), 0, headRecord{}
					continue
				}
				p.log.Error("quarantine write failed; the record stays at the head of the spill", zap.Error(werr))
			}
			retry()
		}
	}
}

// ackSkipped acks a spill record that will never be inserted (undecodable, dead-lettered or quarantined). A failed ack is logged and
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
