package clickhouse

import (
	"context"
	"sync"

	"github.com/google/uuid"

	"github.com/adtracker/adtracker/ingest"
)

// insertEvents lists the columns explicitly: 18.16 rejects a PrepareBatch without a column list ("expected 0 arguments").
const insertEvents = "INSERT INTO events (event_id, type, ad_id, event_time, receive_time, ip, user_agent, playback_ms, viewer_id, session_id)"

// Sink inserts batches of events into the events table; materialized views fan them out to the rollups in the same insert.
type Sink struct {
	db   *DB
	pool sync.Pool // *columns, reused between inserts so a steady stream of batches does not allocate per event
}

// NewSink returns a sink over db.
func NewSink(db *DB) *Sink {
	return &Sink{db: db, pool: sync.Pool{New: func() any { return new(columns) }}}
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
	arena       []byte // backing bytes for ips
	strs        map[string]string
}

// intern returns b as a string, sharing one copy per distinct value: a batch of 50k events has a few hundred distinct user agents
// (and sessions repeat across a player's events), so this turns 50k string allocations per batch into a few hundred. The map lookup
// with string(b) does not allocate.
func (c *columns) intern(b []byte) string {
	if s, ok := c.strs[string(b)]; ok {
		return s
	}
	if c.strs == nil || len(c.strs) > 4096 {
		c.strs = make(map[string]string, 256)
	}
	s := string(b)
	c.strs[s] = s
	return s
}

func (c *columns) reset() {
	c.ids, c.types, c.adIDs = c.ids[:0], c.types[:0], c.adIDs[:0]
	c.eventTimes, c.receiveTime, c.ips = c.eventTimes[:0], c.receiveTime[:0], c.ips[:0]
	c.uas, c.playback, c.viewers, c.sessions = c.uas[:0], c.playback[:0], c.viewers[:0], c.sessions[:0]
	c.arena = c.arena[:0]
}

func (c *columns) fill(b *ingest.Batch, skip map[ingest.UUID]struct{}) error {
	c.reset()
	if cap(c.arena) < b.N*16 {
		c.arena = make([]byte, 0, b.N*16)
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
		c.uas = append(c.uas, c.intern(e.UA()))
		c.playback = append(c.playback, e.PlaybackMs)
		c.viewers = append(c.viewers, string(e.ViewerID()))
		c.sessions = append(c.sessions, c.intern(e.SessionID()))
		return nil
	})
}

// Ping checks that ClickHouse answers.
func (s *Sink) Ping(ctx context.Context) error { return classify("ping", s.db.Ping(ctx), false) }

// Insert stores b in one INSERT (one block, so ClickHouse applies it to events and to every materialized view atomically per part).
// A batch marked MaybeStored is first filtered by event_id against what is already stored. Errors are *Error.
func (s *Sink) Insert(ctx context.Context, b *ingest.Batch) error {
	var skip map[ingest.UUID]struct{}
	if b.MaybeStored {
		var err error
		if skip, err = s.Stored(ctx, b); err != nil {
			return err
		}
	}
	c := s.pool.Get().(*columns)
	defer s.pool.Put(c)
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
