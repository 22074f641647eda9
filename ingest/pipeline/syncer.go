package pipeline

import (
	"time"

	"go.uber.org/zap"
)

// syncer writes the ring's mirror every FsyncInterval (ring.Sync), which bounds what a machine crash (not a process crash: the
// page cache keeps the mapping) can lose. The spill fsyncs on its own schedule.
func (p *Pipeline) syncer() {
	defer p.wg.Done()
	t := time.NewTicker(p.cfg.FsyncInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := p.ring.Sync(); err != nil {
				p.log.Error("ring sync", zap.Error(err))
			}
		case <-p.replayCh:
			return
		}
	}
}
