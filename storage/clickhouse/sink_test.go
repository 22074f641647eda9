package clickhouse

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/adtracker/adtracker/ingest/event"
)

// The sink's strings alias one arena that the next insert overwrites; every row must still arrive with its own viewer, session and
// user agent, for batches of copies and of references (the pipeline's form) alike, through one Sink so the column set is reused.
func TestSinkStringsSurviveArenaReuse(t *testing.T) {
	db := migrated(t)
	ctx := context.Background()
	s := NewSink(db)
	want := map[string]string{} // viewer → "session|ua"
	mk := func(first, n int, refs bool) *event.Batch {
		t.Helper()
		var b event.Batch
		for i := first; i < first+n; i++ {
			var e event.Event
			e.ID[0], e.ID[1], e.ID[6], e.ID[15] = byte(i>>8), byte(i), 0x40, 0x5A
			e.Type, e.AdID, e.EventTime, e.ReceiveTime = event.TypeImpression, 3, 1745247600, 1745247600
			e.SetIP(net.ParseIP("198.51.100.9"))
			v, sess := fmt.Sprintf("viewer-%d", i), fmt.Sprintf("s%d", i/3)
			ua := "Mozilla/5.0 " + strings.Repeat(string(rune('a'+i%26)), i%200)
			e.SetViewerID([]byte(v))
			e.SetSessionID([]byte(sess))
			e.SetUserAgent([]byte(ua))
			want[v] = sess + "|" + ua
			if refs {
				b.AppendRef(e.AppendBinary(nil))
			} else {
				b.Append(&e)
			}
		}
		return &b
	}
	for _, b := range []*event.Batch{mk(0, 700, true), mk(700, 300, false), mk(1000, 50, true)} {
		if err := s.insert(ctx, b, 128); err != nil { // small chunks: the arena is reused within a batch too
			t.Fatal(err)
		}
	}
	rows, err := db.Conn.Query(ctx, "SELECT viewer_id, session_id, user_agent FROM events")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var v, sess, ua string
		if err := rows.Scan(&v, &sess, &ua); err != nil {
			t.Fatal(err)
		}
		if got := sess + "|" + ua; want[v] != got {
			t.Fatalf("viewer %q stored with %q, want %q", v, got, want[v])
		}
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != len(want) {
		t.Fatalf("%d rows stored, want %d", n, len(want))
	}
}
