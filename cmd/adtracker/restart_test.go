package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A client that sent an event with its own event_id, got 2xx, and retries it after the server was SIGTERMed and restarted (a
// deploy) must not get it stored twice: the duplicate window is saved at shutdown and loaded at start.
func TestE2EClientRetryAfterSIGTERMRestartStoredOnce(t *testing.T) {
	s := newStack(t, "ADTRACKER_SHUTDOWN_TIMEOUT=10s")
	s.start()
	prefix := fmt.Sprintf("%08x", time.Now().UnixNano()&0xffffffff)
	ids := make([]string, 50)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-0000-4000-8000-%012x", prefix, i)
	}
	send := func(id string) {
		t.Helper()
		body := fmt.Sprintf(`{"ad_id":%d,"event_id":%q,"ip":"198.51.100.7"}`, 1, id)
		resp, err := http.Post(s.url+"/ads/impression", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("POST %s: %s", id, resp.Status)
		}
	}
	for _, id := range ids {
		send(id)
	}
	if code, _ := s.term(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	s.start()
	for _, id := range ids { // the client's retries: it did not trust the first answers
		send(id)
	}
	// A clean stop stores everything that was accepted, so after it ClickHouse holds the final counts.
	if code, _ := s.term(); code != 0 {
		t.Fatalf("exit code %d after the second SIGTERM", code)
	}
	c := s.conn()
	rows, err := c.Query(context.Background(), "SELECT toString(event_id), count() FROM events GROUP BY event_id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	stored := map[string]uint64{}
	for rows.Next() {
		var id string
		var n uint64
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		stored[id] = n
	}
	for _, id := range ids {
		if stored[id] != 1 {
			t.Errorf("event %s stored %d times, want once", id, stored[id])
		}
	}
	s.logMu.Lock()
	restored := strings.Contains(s.logs.String(), "duplicate window restored")
	s.logMu.Unlock()
	if !restored {
		t.Error("the restart did not log restoring the duplicate window")
	}
}
