package clickhouse

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/adtracker/adtracker/ingest/event"
)

// storedChunk bounds the IN list so the query stays under 18.16's default max_query_size (256 KiB): 2000 UUIDs ≈ 80 KB of text.
const storedChunk = 2000

// Stored returns the event_ids of b that are already in the events table. It first waits until no insert whose outcome is unknown
// can still commit (settle, latecommit.go), so the answer is final. It narrows by ad_id and event_time (the sorting key) so it
// reads only the granules those events could be in.
func (s *Sink) Stored(ctx context.Context, b *event.Batch) (map[event.UUID]struct{}, error) {
	if err := s.settle(ctx); err != nil {
		return nil, err
	}
	ads := map[uint64]struct{}{}
	var ids []string
	var minT, maxT int64
	var ev event.Event
	err := b.Each(&ev, func(e *event.Event) error {
		ads[e.AdID] = struct{}{}
		ids = append(ids, e.ID.String())
		if minT == 0 || e.EventTime < minT {
			minT = e.EventTime
		}
		if e.EventTime > maxT {
			maxT = e.EventTime
		}
		return nil
	})
	if err != nil {
		return nil, &Error{Op: "decode batch", Permanent: true, Err: err}
	}
	out := map[event.UUID]struct{}{}
	if len(ids) == 0 {
		return out, nil
	}
	var adList strings.Builder
	for id := range ads {
		if adList.Len() > 0 {
			adList.WriteByte(',')
		}
		fmt.Fprintf(&adList, "%d", id)
	}
	var queries []string
	for start := 0; start < len(ids); start += storedChunk {
		end := min(start+storedChunk, len(ids))
		// Values are our own UUIDs and integers formatted above, never client text, so building the lists is safe; binding 2000
		// parameters would cost more than the query.
		queries = append(queries, fmt.Sprintf("SELECT event_id FROM %%s WHERE ad_id IN (%s) AND event_time >= toDateTime(%d) AND event_time <= toDateTime(%d) AND event_id IN ('%s')",
			adList.String(), minT, maxT, strings.Join(ids[start:end], "','")))
	}
	if s.db.cfg.Cluster != "" {
		return out, s.db.storedOnCluster(ctx, queries, out)
	}
	one := replica{addr: s.db.cfg.Addr, conn: s.db.Conn}
	for _, q := range queries {
		if err := storedOn(ctx, one, fmt.Sprintf(q, "events"), out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func storedOn(ctx context.Context, r replica, q string, out map[event.UUID]struct{}) error {
	rows, err := r.conn.Query(ctx, q)
	if err != nil {
		return classify("check stored on "+r.addr, err, false)
	}
	defer rows.Close()
	for rows.Next() {
		var u uuid.UUID
		if err := rows.Scan(&u); err != nil {
			return classify("check stored on "+r.addr, err, false)
		}
		out[event.UUID(u)] = struct{}{}
	}
	return classify("check stored on "+r.addr, rows.Err(), false)
}
