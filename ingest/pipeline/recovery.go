package pipeline

import (
	"fmt"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/ingest/ring"
)

// recoverRing moves records found in the ring file into spill segments, marked MaybeStored: the process may have inserted some of
// them before it died, so the replayer filters them by event_id. Only after the spill is synced may the ring be reset. Claims whose
// checksum failed (only a machine crash causes that) and records that do not decode are counted as not stored and logged.
func (p *Pipeline) recoverRing(recs []ring.Record, st ring.RecoverStats) error {
	var b event.Batch
	var e event.Event
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
	undecodable := 0
	for _, rc := range recs {
		if n, err := e.DecodeBinary(rc.Data); err != nil || n != len(rc.Data) {
			undecodable++
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
	good := len(recs) - undecodable
	p.Recovered.Add(int64(good))
	recoveredRows.Add(float64(good))
	if err := p.spill.Sync(); err != nil {
		return err
	}
	file := filepath.Join(p.cfg.Dir, "ring")
	if lost := undecodable + st.Corrupt; lost > 0 {
		spillCorrupt.Add(float64(undecodable))
		notStored(reasonRingCorrupt, lost)
		p.log.Error("events in the ring file are damaged and cannot be stored (a machine crash tore them)",
			zap.String("file", file), zap.Int("corrupt_claims", st.Corrupt), zap.Int("undecodable_records", undecodable))
	}
	p.log.Warn("recovered events accepted before an unclean stop", zap.String("file", file), zap.Int("events", good))
	return nil
}
