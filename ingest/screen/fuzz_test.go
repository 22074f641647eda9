package screen

import (
	"bytes"
	"strings"
	"testing"
)

// purposeIs against a plain reference: the first token, trimmed, compared case-insensitively.
func FuzzPurpose(f *testing.F) {
	for _, s := range []string{"prefetch", " Prefetch;prerender", "preview", "prefetched", "", ";", "PREFETCH, x", "pre\tfetch"} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, v []byte, preview bool) {
		got := purposeIs(v, preview)
		s := strings.TrimLeft(string(v), " \t")
		if i := strings.IndexAny(s, "; ,\t"); i >= 0 {
			s = s[:i]
		}
		want := asciiLower(s) == "prefetch" || (preview && asciiLower(s) == "preview")
		if got != want {
			t.Fatalf("%q (preview %v): %v, want %v", v, preview, got, want)
		}
	})
}

// The deny match is an ASCII case-insensitive substring test, whatever bytes the user agent holds.
func FuzzDenyUserAgent(f *testing.F) {
	f.Add([]byte("Mozilla/5.0 BadBot/1"), "badbot")
	f.Add([]byte("\xff\xfeÉVIL"), "évil")
	f.Fuzz(func(t *testing.T, ua []byte, pattern string) {
		if len(ua) > 256 || strings.TrimSpace(pattern) == "" {
			return
		}
		a := newAgentVerdicts([]string{pattern}, 16, nil)
		got := a.compute(ua) == agentDenied
		want := bytes.Contains([]byte(asciiLower(string(ua))), []byte(asciiLower(strings.TrimSpace(pattern))))
		if got != want {
			t.Fatalf("%q in %q: %v, want %v", pattern, ua, got, want)
		}
	})
}

// asciiLower lowers ASCII letters byte by byte (strings.ToLower and strings.Map would rewrite invalid UTF-8).
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
