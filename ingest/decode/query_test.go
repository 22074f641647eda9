package decode

import (
	"fmt"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// scanAll is queryScanner's reading of q as "key=value" lines.
func scanAll(q string) []string {
	var out []string
	s := queryScanner{rest: []byte(q)}
	for k, v, ok := s.next(); ok; k, v, ok = s.next() {
		out = append(out, fmt.Sprintf("%q=%q", k, v))
	}
	return out
}

// argsAll is fasthttp's reading of q, the one queryScanner must match.
func argsAll(q string) []string {
	var args fasthttp.Args
	args.Parse(q)
	var out []string
	for k, v := range args.All() {
		out = append(out, fmt.Sprintf("%q=%q", k, v))
	}
	return out
}

func checkQuery(t *testing.T, q string) {
	t.Helper()
	got, want := scanAll(q), argsAll(q)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%q: scanner reads %v, fasthttp's Args %v", q, got, want)
	}
}

// The edges of fasthttp's query reading: empty parameters, keys without '=', '=' in values, '+', valid, invalid and cut-short
// percent escapes (a '+' after a cut-short '%' stays a '+').
func TestQueryScannerMatchesArgs(t *testing.T) {
	for _, q := range []string{
		"", "&", "&&", "=", "==", "a", "a=", "=b", "a=b=c", "a&b", "a=1&&b=2&", "&a=1",
		"t=2025-04-21T15%3A00%3A00Z", "a+b=c+d", "v=%", "v=%4", "v=%4+", "v=%+4", "v=%zz+1", "v=%e2%82%ac", "%61=1", "v=%GG%41",
		"ad_id=1&t=[TIMESTAMP]&pt=00%3A00%3A07.500&cb=48261537", "v=%00%0a",
	} {
		checkQuery(t, q)
	}
}

// Decoded values stay valid while later ones are decoded, also past the end of the scanner's buffer.
func TestQueryScannerKeepsDecoded(t *testing.T) {
	long := strings.Repeat("%41", 200) // 600 bytes: past the buffer's end once the first 500 are taken
	s := queryScanner{rest: []byte("a=%42%43&b=" + strings.Repeat("%44", 250) + "&c=" + long + "&d=%45")}
	var vals []string
	var kept [][]byte
	for _, v, ok := s.next(); ok; _, v, ok = s.next() {
		vals = append(vals, string(v))
		kept = append(kept, v)
	}
	for i := range kept {
		if string(kept[i]) != vals[i] {
			t.Fatalf("value %d changed from %q to %q by the later decodes", i, vals[i], kept[i])
		}
	}
	if want := []string{"BC", strings.Repeat("D", 250), strings.Repeat("A", 200), "E"}; fmt.Sprint(vals) != fmt.Sprint(want) {
		t.Fatalf("values %q, want %q", vals, want)
	}
}

func FuzzQueryScanner(f *testing.F) {
	f.Add("ad_id=1&t=2025-04-21T15%3A00%3A00Z&pt=12.5&vid=v+1&cb=1")
	f.Add("a=%4&&=b&%zz")
	f.Fuzz(checkQuery)
}

func BenchmarkQueryScanner(b *testing.B) {
	q := []byte("ad_id=1&t=2025-04-21T15%3A00%3A00.020Z&pt=00%3A00%3A12.500&vid=viewer&sid=session&eid=0190b3b2-7c4e-7a1b-9c3d-5e6f7a8b9c0d&cb=12345678")
	b.ReportAllocs()
	for b.Loop() {
		s := queryScanner{rest: q}
		for _, _, ok := s.next(); ok; _, _, ok = s.next() {
		}
	}
}

// BenchmarkQueryArgs is what the scanner replaced: fasthttp parsing the same query into Args (each parameter copied).
func BenchmarkQueryArgs(b *testing.B) {
	q := []byte("ad_id=1&t=2025-04-21T15%3A00%3A00.020Z&pt=00%3A00%3A12.500&vid=viewer&sid=session&eid=0190b3b2-7c4e-7a1b-9c3d-5e6f7a8b9c0d&cb=12345678")
	var args fasthttp.Args
	b.ReportAllocs()
	for b.Loop() {
		args.ParseBytes(q)
		for range args.All() {
		}
	}
}
