package pipeline

import "sync/atomic"

// The pipeline's state machines, all in one place. Each is a small named type whose transitions are methods, so the rules below are
// the only way the state changes (TestStateTransitions walks every one).
//
// sinkState — where the inserters send live batches:
//
//	live ──(a live insert fails retryably)──▶ spilling
//	spilling ──(any insert succeeds, or Sink.Ping answers)──▶ live
//	live ──(a replayed record fails retryably but Sink.Ping answers)──▶ live   (the record is at fault, not ClickHouse)
//	spilling/live ──(a replayed record fails retryably and Sink.Ping fails)──▶ spilling
//
// The replayer probes with Ping whenever the state is spilling, also while a record it cannot insert sits at the head of the spill,
// so one bad record never keeps live traffic on disk. Health is about ClickHouse, not about one batch.
//
// quotaState — whether Enqueue accepts:
//
//	underQuota ──(spill bytes reach Config.SpillMaxBytes, or an append would pass it)──▶ atQuota
//	atQuota ──(acks shrink the spill below the quota)──▶ underQuota
//
// cursorState — what the replayer knows about the record at the head of the spill (see replayer.go):
//
//	start: uncertain, or allUncertain when the ack file was lost (reading restarted at the oldest segment)
//	clean/uncertain ──(an insert fails ambiguously, or an ack fails)──▶ uncertain
//	uncertain ──(a record is stored and acked, or skipped)──▶ clean
//	allUncertain ──(the reader reaches the end of the spill)──▶ clean
//
// A record read while uncertain or allUncertain is inserted with MaybeStored, so the sink skips the events already stored.

// sinkState says where live batches go. Read on every batch, written by inserters and the replayer: an atomic.
type sinkState uint32

const (
	sinkLive     sinkState = iota // insert into ClickHouse
	sinkSpilling                  // ClickHouse failed the last live insert: append to the spill until it answers again
)

func (s sinkState) String() string {
	if s == sinkLive {
		return "live"
	}
	return "spilling"
}

// sinkHealth holds a sinkState.
type sinkHealth struct{ v atomic.Uint32 }

func (h *sinkHealth) get() sinkState { return sinkState(h.v.Load()) }

// live reports whether live batches go to ClickHouse.
func (h *sinkHealth) live() bool { return h.get() == sinkLive }

// answered records that ClickHouse took an insert or a ping; it reports whether this ended a spilling period.
func (h *sinkHealth) answered() bool { return h.v.Swap(uint32(sinkLive)) != uint32(sinkLive) }

// failed records that ClickHouse itself is unreachable or refusing; it reports whether this started a spilling period.
func (h *sinkHealth) failed() bool { return h.v.Swap(uint32(sinkSpilling)) != uint32(sinkSpilling) }

// quotaState says whether the spill is at its quota. Read by Enqueue on every event: an atomic.
type quotaState uint32

const (
	underQuota quotaState = iota
	atQuota               // Enqueue answers ErrOverload
)

type quota struct{ v atomic.Uint32 }

func (q *quota) full() bool { return quotaState(q.v.Load()) == atQuota }

// set moves to atQuota when full, else to underQuota.
func (q *quota) set(full bool) {
	if full {
		q.v.Store(uint32(atQuota))
	} else {
		q.v.Store(uint32(underQuota))
	}
}

// cursorState is what the replayer knows about whether the next spill record may already be stored. Only the replayer uses it.
type cursorState uint8

const (
	cursorClean        cursorState = iota // the record was never inserted with an unknown outcome
	cursorUncertain                       // the last attempt at the head record, or an ack, failed ambiguously
	cursorAllUncertain                    // the ack position was lost: every record up to the end of the spill may be stored
)

func cursorAtStart(badAck bool) cursorState {
	if badAck {
		return cursorAllUncertain
	}
	// The first record may have been inserted by the previous process right before it died (insert done, ack not yet written).
	return cursorUncertain
}

// maybeStored reports whether the head record must be checked against ClickHouse before inserting it.
func (c cursorState) maybeStored() bool { return c != cursorClean }

// ambiguous: an insert failed after its data may have reached ClickHouse, or an ack was not written.
func (c cursorState) ambiguous() cursorState {
	if c == cursorAllUncertain {
		return c
	}
	return cursorUncertain
}

// done: the head record was stored and acked (or skipped); the next one was never attempted.
func (c cursorState) done() cursorState {
	if c == cursorAllUncertain {
		return c
	}
	return cursorClean
}

// caughtUp: the reader met the end of the spill; every record written before the start has been read and acked.
func (c cursorState) caughtUp() cursorState {
	if c == cursorAllUncertain {
		return cursorClean
	}
	return c
}
