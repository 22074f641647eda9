package pipeline

import (
	"errors"
	"time"

	"github.com/adtracker/adtracker/ingest/event"
)

// Waiting for room. The ring frees space in large steps: an insert's whole batch (up to half the ring) at once. A producer refused in
// between and told to come back later (503, Retry-After) leaves that space unused until its retry, while the inserter, with nothing
// queued, waits for the ring to fill again; and every refused request has been read and partly decoded for nothing. So EnqueueBy
// lets a producer wait a bounded time for the next release instead of being refused at once.
//
// The signal is a channel that is closed, and replaced, at every release and at Close. A waiter loads the channel before it tries
// the ring: a release after that load closes that very channel, so no release between the try and the wait is missed.

// roomSignal is the current "space was freed" channel.
type roomSignal struct{ ch chan struct{} }

func (p *Pipeline) initRoom() {
	p.room.Store(&roomSignal{ch: make(chan struct{})})
}

// signalRoom wakes every waiter: slots were released, or the pipeline is closing. Once per insert, never per event.
func (p *Pipeline) signalRoom() {
	close(p.room.Swap(&roomSignal{ch: make(chan struct{})}).ch)
}

// EnqueueBy is Enqueue, except that while the ring is full it waits for a release until deadline, and only then answers ErrFull.
// Every other refusal (closing, spill quota) is immediate. A deadline in the past makes it Enqueue.
func (p *Pipeline) EnqueueBy(e *event.Event, deadline time.Time) error {
	if !p.Hold() {
		enqueueRefused.WithLabelValues("closing").Inc()
		return ErrClosed
	}
	n := 0
	defer func() { p.Release(n) }()
	err := p.EnqueueHeld(e, deadline)
	if err == nil {
		n = 1
	}
	return err
}

// Hold announces a producer that is about to enqueue, for as many events as it likes, until Release: a batch request announces
// itself once instead of once per event, and every announcement is an atomic add on a line all cores write. It reports false,
// holding nothing, once the pipeline is closing (the caller counts the refusal: EnqueueBy does). Close unmaps the ring only when no
// producer holds, and spins until then, so a holder must Release (deferred, so a panic cannot leave Close waiting) and must not
// hold across anything that blocks — a request's own decoding and enqueues are fine: once closing, EnqueueHeld refuses at once.
func (p *Pipeline) Hold() bool {
	// Checked before and after announcing (enqueue checks again): once closing is set, new producers return here without
	// touching inflight, so Close waits only for the few that were already past this line.
	if p.closing.Load() {
		return false
	}
	p.inflight.Add(1)
	return true
}

// Release ends a Hold; enqueued is how many events EnqueueHeld accepted during it (counted here, once per hold, for the same
// reason as the hold itself).
func (p *Pipeline) Release(enqueued int) {
	if enqueued > 0 {
		eventsEnqueued.Add(float64(enqueued))
	}
	p.inflight.Add(-1)
}

// EnqueueHeld is EnqueueBy for a producer inside Hold and Release.
func (p *Pipeline) EnqueueHeld(e *event.Event, deadline time.Time) error {
	var t *time.Timer
	for {
		room := p.room.Load().ch
		err := p.enqueue(e)
		if !errors.Is(err, ErrFull) {
			if t != nil {
				t.Stop()
			}
			return err
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			enqueueRefused.WithLabelValues("ring_full").Inc()
			return err
		}
		if t == nil {
			t = time.NewTimer(wait) // only on a full ring: the path that would otherwise answer 503
		} else {
			t.Reset(wait)
		}
		enqueueWaits.Inc()
		select {
		case <-room:
		case <-t.C:
		}
	}
}
