package clickhouse

import (
	"context"
	"unsafe"

	"github.com/google/uuid"

	"github.com/adtracker/adtracker/ingest"
)

// insertEvents lists the columns explicitly: 18.16 rejects a PrepareBatch without a column list ("expected 0 arguments").
const insertEvents = "INSERT INTO events (event_id, type, ad_id, event_time, receive_time, ip, user_agent, playback_ms, viewer_id, session_id)"

// Sink inserts batches of events into the events table; materialized views fan them out to the rollups in the same insert.
type Sink struct {
	db *DB
	// free holds column sets between inserts. Not a sync.Pool: every GC empties a pool, and under load the collector runs several
	// times a second, so a pool handed out fresh multi-MB column sets for most inserts. The pipeline runs a few inserts at once, so
	// a few sets are kept for good; a surplus one is left to the collector.
	free chan *columns
}

// NewSink returns a sink over db.
func NewSink(db *DB) *Sink {
	return &Sink{db: db, free: make(chan *columns, 4)}
}

type columns struct {
	ev          ingest.Event
	ids         []uuid.UUID
	types       []int8
	adIDs       []uint64
	eventTimes  []int64
	receiveTime []int64
	ips         [][]byte
	uas         []string
	playback    []uint32
	viewers     []string
	sessions    []string
	// arena backs the ips and strings above. It is sized before the fill so it never moves while one is in progress, and the
	// strings alias it (unsafe.String) instead of being allocated one by one: per batch that is one buffer instead of ~2 allocations
	// per event, which the garbage collector noticed (the inserter's allocations were most of what drove GC in batch runs). The
	// driver copies every value into its own column buffers inside Append, so nothing reads the arena after Insert returns, and the
	// next fill may overwrite it.
	arena []byte
}

func (c *columns) reset() {
	c.ids, c.types, c.adIDs = c.ids[:0], c.types[:0], c.adIDs[:0]
	c.eventTimes, c.receiveTime, c.ips = c.eventTimes[:0], c.receiveTime[:0], c.ips[:0]
	c.uas, c.playback, c.viewers, c.sessions = c.uas[:0], c.playback[:0], c.viewers[:0], c.sessions[:0]
	c.arena = c.arena[:0]
}

// str copies b into the arena and returns it as a string aliasing the arena. The arena has room (see fill), so append never
// reallocates and earlier strings stay valid.
func (c *columns) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	start := len(c.arena)
	c.arena = append(c.arena, b...)
	return unsafe.String(&c.arena[start], len(b)) //nolint:gosec // G103: the arena is not written again before the driver copied it
}

func (c *columns) fill(b *ingest.Batch, skip map[ingest.UUID]struct{}) error {
	c.reset()
	// Every string and address of an event is inside its encoding, so the encoded size plus 16 bytes of address per event bounds
	// what the arena receives.
	if need := b.Size() + b.N*16; cap(c.arena) < need {
		c.arena = make([]byte, 0, need)
	}
	return b.Each(&c.ev, func(e *ingest.Event) error {
		if _, dup := skip[e.ID]; dup {
			return nil
		}
		c.ids = append(c.ids, uuid.UUID(e.ID))
		c.types = append(c.types, int8(e.Type))
		c.adIDs = append(c.adIDs, e.AdID)
		c.eventTimes = append(c.eventTimes, e.EventTime)
		c.receiveTime = append(c.receiveTime, e.ReceiveTime)
		start := len(c.arena)
		c.arena = append(c.arena, e.IP[:]...)
		c.ips = append(c.ips, c.arena[start:len(c.arena):len(c.arena)])
		c.uas = append(c.uas, c.str(e.UA()))
		c.playback = append(c.playback, e.PlaybackMs)
		c.viewers = append(c.viewers, c.str(e.ViewerID()))
		c.sessions = append(c.sessions, c.str(e.SessionID()))
		return nil
	})
}

// Ping checks that ClickHouse answers.
func (s *Sink) Ping(ctx context.Context) error { return classify("ping", s.db.Ping(ctx), false) }

// Insert stores b in one INSERT (one block, so ClickHouse applies it to events and to every materialized view atomically per part).
// A batch marked MaybeStored is first filtered by event_id against what is already stored. Errors are *Error.
//
// The batch goes to the driver as one block, not in chunks with batch.Flush (the server would squash the blocks of one INSERT into
// one part, and the driver would reuse its buffers for every chunk): Flush, unlike Send, does not watch the context, so a frozen
// server would hold the inserter past ingest.insert_timeout instead of letting the batch spill.
func (s *Sink) Insert(ctx context.Context, b *ingest.Batch) error {
	var skip map[ingest.UUID]struct{}
	if b.MaybeStored {
		var err error
		if skip, err = s.Stored(ctx, b); err != nil {
			return err
		}
	}
	var c *columns
	select {
	case c = <-s.free:
	default:
		c = new(columns)
	}
	defer func() {
		select {
		case s.free <- c:
		default:
		}
	}()
	if err := c.fill(b, skip); err != nil {
		return &Error{Op: "decode batch", Permanent: true, Err: err}
	}
	if len(c.ids) == 0 {
		return nil
	}
	batch, err := s.db.Conn.PrepareBatch(insertContext(ctx, s.db.cfg.Cluster), insertEvents)
	if err != nil {
		return classify("prepare insert", err, false)
	}
	defer batch.Abort()
	for i, col := range []any{c.ids, c.types, c.adIDs, c.eventTimes, c.receiveTime, c.ips, c.uas, c.playback, c.viewers, c.sessions} {
		if err := batch.Column(i).Append(col); err != nil {
			return classify("append column", err, false)
		}
	}
	return classify("insert", batch.Send(), true)
}
