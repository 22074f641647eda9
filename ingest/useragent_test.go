package ingest

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/adtracker/adtracker/ingest/event"
)

// The User-Agent header is stored exactly as the same text sent in the JSON user_agent field (json.Marshal writes control
// characters as \u escapes and invalid UTF-8 as U+FFFD, which is what a client could send).
func TestUserAgentHeaderCleanedLikeJSON(t *testing.T) {
	long := strings.Repeat("a", event.MaxUserAgentLen-1) + "é" // the last rune straddles the limit
	for _, ua := range []string{
		"Mozilla/5.0 (X11; Linux x86_64)",
		"evil\x1b[31mred\x1b[0m\x7f",
		"tab\there\x01\x02",
		"bad \xff\xfe utf-8 \xc3",
		"snow ☃ and 😀",
		long,
		strings.Repeat("😀", 100),
		strings.Repeat("\xff", 200),
	} {
		q := &fakeQueue{}
		r := newTestHandlers(q)
		do(r, "POST", "/ads/impression", "application/json", `{"ad_id":1}`, "User-Agent", ua)
		field, _ := json.Marshal(ua)
		do(r, "POST", "/ads/impression", "application/json", `{"ad_id":1,"user_agent":`+string(field)+`}`)
		if len(q.events) != 2 {
			t.Fatalf("%q: %d events stored", ua, len(q.events))
		}
		fromHeader, fromJSON := q.events[0].UA(), q.events[1].UA()
		if string(fromHeader) != string(fromJSON) {
			t.Errorf("User-Agent %q stored as %q, the JSON field as %q", ua, fromHeader, fromJSON)
		}
		if !utf8.Valid(fromHeader) || strings.ContainsAny(string(fromHeader), "\x00\x01\x02\x1b\x7f\t") || len(fromHeader) == 0 {
			t.Errorf("User-Agent %q stored as %q", ua, fromHeader)
		}
	}
}
