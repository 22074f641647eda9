package clickhouse

import (
	"context"
	"errors"
	"time"
	"unsafe"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"

	"github.com/adtracker/adtracker/ingest/event"
)

// insertEvents lists the columns explicitly: 18.16 rejects a PrepareBatch without a column list ("expected 0 arguments").
const insertEvents = "INSERT INTO events (event_id, type, ad_id, event_time, receive_time, ip, user_agent, playback_ms, viewer_id, session_id," +
	" ivt, device_type, os, browser, country)"

// Sink inserts batches of events into the events table; materialized views fan them out to the rollups in the same insert.
type Sink struct {
	db *DB
	// free holds column sets between inserts. Not a sync.Pool: every GC empties a pool, and under load the collector runs several
	// times a second, so a pool handed out fresh multi-MB column sets for most inserts. The pipeline runs a few inserts at once, so
	// a few sets are kept for good; a surplus one is left to the collector.
	free chan *columns
	ids  *queryIDs
	// late holds the query ids of this process's inserts that ended uncertain; see settle.
	late lateInserts
	// down remembers hosts that refuse connections; settle ignores one that has refused for downGrace (see downHosts).
	down      downHosts
	downGrace time.Duration
	// settleWait is how long settle waits for an earlier insert to end before it tries KILL QUERY.
	settleWait time.Duration
}

// defaultSettleWait lets a slow server finish an insert it has all the data of (the usual late commit) before settle kills it.
const defaultSettleWait = 5 * time.Second

// NewSink returns a sink over db's write pool; its stored-event check uses the read pool.
func NewSink(db *DB) *Sink {
	return &Sink{db: db, free: make(chan *columns, 4), ids: newQueryIDs(db.cfg.NodeID), settleWait: defaultSettleWait,
		downGrace: defaultDownGrace}
}

type columns struct {
	v           event.View
	ids         []uuid.UUID
	types       []int8
	adIDs       []uint64
	eventTimes  []int64
	receiveTime []int64
	// The addresses and strings alias the batch being inserted (ring slots, or the Data of a replayed batch) instead of copies:
	// the batch stays unchanged until Insert has returned, and the driver copies every value into its own column buffers inside
	// Append. Reading each event in place (event.View) spares a copy of every string into an Event and another into an arena, the
	// inserter's share of the batch profile (BENCHMARKS.md, issue 20 after session 21).
	ips       [][]byte
	uas       []string
	playback  []uint32
	viewers   []string
	sessions  []string
	ivt       []int8
	devices   []string // Device.String(): constants
	oses      []string
	browsers  []string
	countries []string
}

func (c *columns) reset() {
	c.ids, c.types, c.adIDs = c.ids[:0], c.types[:0], c.adIDs[:0]
	c.eventTimes, c.receiveTime, c.ips = c.eventTimes[:0], c.receiveTime[:0], c.ips[:0]
	c.uas, c.playback, c.viewers, c.sessions = c.uas[:0], c.playback[:0], c.viewers[:0], c.sessions[:0]
	c.ivt, c.devices, c.oses, c.browsers, c.countries = c.ivt[:0], c.devices[:0], c.oses[:0], c.browsers[:0], c.countries[:0]
}

// forget drops the aliases into the batch, so column sets kept for the next insert do not point into ring slots that get reused
// or pin a replayed batch's Data.
func (c *columns) forget() {
	c.reset()
	clear(c.ips[:cap(c.ips)])
	for _, col := range c.strings() {
		clear(col[:cap(col)])
	}
	c.v = event.View{}
}

// strings returns the String columns in the order of insertStrColumns.
func (c *columns) strings() [len(insertStrColumns)][]string {
	return [...][]string{c.uas, c.viewers, c.sessions, c.devices, c.oses, c.browsers, c.countries}
}

// alias returns b as a string sharing its bytes (see columns: the batch outlives every use of it).
func alias(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b)) //nolint:gosec // G103: the batch is not written before the driver copied it
}

// fill reads b into the columns, skipping the events in skip, and hands them over every chunk rows (and once at the end with
// what is left, possibly nothing); the columns are reused for the next chunk, so they stay the size of one chunk however large
// the batch.
func (c *columns) fill(b *event.Batch, skip map[event.UUID]struct{}, chunk int, send func(*columns) error) error {
	c.reset()
	err := b.EachView(&c.v, func(v *event.View) error {
		if _, dup := skip[v.ID]; dup {
			return nil
		}
		if len(c.ids) == chunk {
			if err := send(c); err != nil {
				return err
			}
			c.reset()
		}
		c.ids = append(c.ids, uuid.UUID(v.ID))
		c.types = append(c.types, int8(v.Type))
		c.adIDs = append(c.adIDs, v.AdID)
		c.eventTimes = append(c.eventTimes, v.EventTime)
		c.receiveTime = append(c.receiveTime, v.ReceiveTime)
		c.ips = append(c.ips, v.IP)
		c.uas = append(c.uas, alias(v.UA))
		c.playback = append(c.playback, v.PlaybackMs)
		c.viewers = append(c.viewers, alias(v.Viewer))
		c.sessions = append(c.sessions, alias(v.Session))
		c.ivt = append(c.ivt, int8(v.IVT))
		c.devices = append(c.devices, v.Device.String())
		c.oses = append(c.oses, alias(v.OS))
		c.browsers = append(c.browsers, alias(v.Browser))
		c.countries = append(c.countries, alias(v.CountryCode()))
		return nil
	})
	if err != nil {
		return err
	}
	return send(c)
}

// Ping checks that ClickHouse answers on the write pool, the one inserts use.
func (s *Sink) Ping(ctx context.Context) error { return classify("ping", s.db.write.Ping(ctx), false) }

// insertChunk is how many rows go to the driver at a time. ClickHouse squashes the blocks of one INSERT into one part (up to
// min_insert_block_size_rows, 1,048,576 by default; checked on 18.16 by TestSinkChunksMakeOnePart), so chunks change nothing in
// what is stored — one part per table and insert, written when the INSERT ends — while the driver's block and our columns stay
// one chunk big. The driver builds a new block for every INSERT, so the chunk size sets most of the garbage an insert leaves, and
// with it how often the collector runs; time per event hardly depends on it (`go test -bench SinkInsert`; BENCHMARKS.md, "Design
// measurements").
const insertChunk = 2048

// Insert stores b in one INSERT, sent in chunks of insertChunk rows; ClickHouse applies it to events and to every materialized
// view when the INSERT ends. A batch marked MaybeStored is first filtered by event_id against what is already stored, once no
// earlier uncertain insert can still commit (settle). Every INSERT carries its own query id (queryid.go). Errors are *Error.
//
// The driver's Flush does not watch the context; a server that stops reading is caught by the connection's write deadline
// (Config.WriteTimeout), and the context is checked between chunks.
func (s *Sink) Insert(ctx context.Context, b *event.Batch) error {
	return s.insert(ctx, b, insertChunk)
}

func (s *Sink) insert(ctx context.Context, b *event.Batch, chunk int) error {
	var skip map[event.UUID]struct{}
	if b.MaybeStored {
		var err error
		if skip, err = s.Stored(ctx, b); err != nil {
			return err
		}
	}
	id, seq := s.ids.next()
	err := s.send(ctx, b, skip, chunk, id)
	var e *Error
	if errors.As(err, &e) && e.Uncertain {
		s.late.add(seq)
	}
	return err
}

// send runs one INSERT with query id id.
func (s *Sink) send(ctx context.Context, b *event.Batch, skip map[event.UUID]struct{}, chunk int, id string) error {
	var c *columns
	select {
	case c = <-s.free:
	default:
		c = new(columns)
	}
	defer func() {
		c.forget()
		select {
		case s.free <- c:
		default:
		}
	}()
	var batch driver.Batch
	defer func() {
		if batch != nil {
			_ = batch.Abort()
		}
	}()
	flushed := false
	send := func(c *columns) error {
		if len(c.ids) == 0 {
			return nil
		}
		if batch == nil {
			var err error
			qctx := ch.Context(insertContext(ctx, s.db.cfg.Cluster), ch.WithQueryID(id))
			setStrHints(c) // the block PrepareBatch builds starts its String columns at this chunk's size (colstr.go)
			if batch, err = s.db.write.PrepareBatch(qctx, insertEvents); err != nil {
				batch = nil
				return classify("prepare insert", err, false)
			}
		} else if err := ctx.Err(); err != nil {
			return classify("insert", err, true)
		}
		for i, col := range []any{c.ids, c.types, c.adIDs, c.eventTimes, c.receiveTime, c.ips, c.uas, c.playback, c.viewers, c.sessions,
			c.ivt, c.devices, c.oses, c.browsers, c.countries} {
			if err := batch.Column(i).Append(col); err != nil {
				return classify("append column", err, flushed)
			}
		}
		// Every chunk but the last goes out now; the last one leaves with Send, which also ends the INSERT.
		if len(c.ids) == chunk {
			// Uncertain from the first flush on: the server stores nothing before the INSERT ends, but a batch over
			// min_insert_block_size_rows would already have a part written.
			flushed = true
			if err := batch.Flush(); err != nil {
				return classify("insert", err, true)
			}
		}
		return nil
	}
	if err := c.fill(b, skip, chunk, send); err != nil {
		var e *Error
		if errors.As(err, &e) {
			return err
		}
		return &Error{Op: "decode batch", Permanent: true, Uncertain: flushed, Err: err}
	}
	if batch == nil {
		return nil // every event was already stored
	}
	err := batch.Send()
	batch = nil
	return classify("insert", err, true)
}
