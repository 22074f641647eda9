package clickhouse

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/adtracker/adtracker/ingest/event"
)

// The sink's strings alias the batch being inserted, and its column sets are reused from chunk to chunk and insert to insert;
// every row must still arrive with its own strings (viewer, session, user agent, and the enrichment: OS, browser, country,
// device), for batches of copies and of references (the pipeline's form) alike, through one Sink.
func TestSinkStringsSurviveColumnReuse(t *testing.T) {
	db := migrated(t)
	ctx := context.Background()
	s := NewSink(db)
	want := map[string]string{} // viewer → "session|ua|os|browser|country|device"
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
			os, browser, country := "", "", ""
			if i%4 != 0 { // every fourth not enriched: empty strings between filled ones
				os, browser = fmt.Sprintf("os-%d", i%7), fmt.Sprintf("br-%d", i%11)
				country = string([]byte{byte('a' + i%26), byte('a' + i/26%26)})
				e.Device = event.Device(1 + i%int(event.NumDevices-1))
				e.SetOS(os)
				e.SetBrowser(browser)
				e.SetCountry(country)
				country = strings.ToUpper(country)
			}
			want[v] = strings.Join([]string{sess, ua, os, browser, country, e.Device.String()}, "|")
			if refs {
				b.AppendRef(e.AppendBinary(nil))
			} else {
				b.Append(&e)
			}
		}
		return &b
	}
	for _, b := range []*event.Batch{mk(0, 700, true), mk(700, 300, false), mk(1000, 50, true)} {
		if err := s.insert(ctx, b, 128); err != nil { // small chunks: the column set is reused within a batch too
			t.Fatal(err)
		}
	}
	rows, err := db.Conn.Query(ctx, "SELECT viewer_id, session_id, user_agent, os, browser, country, device_type FROM events")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var v, sess, ua, os, browser, country, device string
		if err := rows.Scan(&v, &sess, &ua, &os, &browser, &country, &device); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join([]string{sess, ua, os, browser, country, device}, "|"); want[v] != got {
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
