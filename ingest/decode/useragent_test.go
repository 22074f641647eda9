package decode

import (
	"strings"
	"testing"

	"github.com/adtracker/adtracker/ingest/event"
)

// setUserAgentByByte is SetUserAgent without the word-at-a-time path: the reference FuzzSetUserAgent compares with.
func setUserAgentByByte(e *event.Event, ua []byte) {
	n := copyText(e.UserAgent[:], ua)
	sanitizeUA(e.UserAgent[:n])
	e.UALen = uint16(n)
}

func checkUserAgent(t *testing.T, ua string) {
	t.Helper()
	var got, want event.Event
	SetUserAgent(&got, []byte(ua))
	setUserAgentByByte(&want, []byte(ua))
	if got.UALen != want.UALen || got.UserAgent != want.UserAgent {
		t.Fatalf("%q: stored %q, byte by byte %q", ua, got.UA(), want.UA())
	}
}

// Each byte class the word test must catch, at every position of a word, and the length limit cutting inside a word.
func TestSetUserAgentWords(t *testing.T) {
	base := "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"
	for _, odd := range []string{"\x00", "\x1f", "\x7f", "\t", "\x80", "é", "\xff", "€", " ", "~"} {
		for at := 0; at < 17; at++ {
			checkUserAgent(t, base[:at]+odd+base[at:])
		}
	}
	for n := event.MaxUserAgentLen - 9; n <= event.MaxUserAgentLen+9; n++ {
		checkUserAgent(t, strings.Repeat("a", n))
		checkUserAgent(t, strings.Repeat("a", n-2)+"é")
	}
}

func FuzzSetUserAgent(f *testing.F) {
	f.Add("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15")
	f.Add("curl/8.5.0\x7f\x00\x1fé€\xff")
	f.Fuzz(checkUserAgent)
}

func BenchmarkSetUserAgent(b *testing.B) {
	ua := []byte("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36")
	var e event.Event
	b.ReportAllocs()
	for b.Loop() {
		SetUserAgent(&e, ua)
	}
}

func BenchmarkSetUserAgentByByte(b *testing.B) {
	ua := []byte("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36")
	var e event.Event
	b.ReportAllocs()
	for b.Loop() {
		setUserAgentByByte(&e, ua)
	}
}
