package decode

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// scanStringBytewise is scanString as it was before the word-at-a-time fast path: the reference the fast path must match.
func scanStringBytewise(b []byte, pos int) (raw []byte, esc, ok bool, end int) {
	i := pos + 1
	start := i
	for i < len(b) {
		c := b[i]
		switch {
		case plain[c]:
			i++
		case c == '"':
			return b[start:i], esc, true, i + 1
		case c == '\\':
			esc = true
			if i+1 >= len(b) {
				return nil, false, false, i
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return nil, false, false, i
				}
				i += 6
			default:
				return nil, false, false, i
			}
		case c < 0x20:
			return nil, false, false, i
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return nil, false, false, i
			}
			i += size
		}
	}
	return nil, false, false, i
}

func printableASCIIBytewise(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// checkScanString compares scanString on the string starting at b[0] (an opening quote) with the bytewise reference:
// the content, the escape flag, success, and where the scanner stopped (the byte after the closing quote, or the
// offending byte, which is what a 400's position names).
func checkScanString(t *testing.T, b []byte) {
	t.Helper()
	wantRaw, wantEsc, wantOK, wantEnd := scanStringBytewise(b, 0)
	s := jsonScanner{buf: b}
	raw, esc, ok := s.scanString()
	if ok != wantOK || esc != wantEsc || !bytes.Equal(raw, wantRaw) || s.pos != wantEnd {
		t.Fatalf("scanString(%q) = %q, esc %v, ok %v, pos %d; bytewise: %q, %v, %v, %d", b, raw, esc, ok, s.pos, wantRaw, wantEsc,
			wantOK, wantEnd)
	}
}

// Every byte that stops the fast path, at every offset of the first three words, after plain bytes of every value, with
// and without a closing quote (the tail shorter than a word runs bytewise).
func TestScanStringMatchesBytewise(t *testing.T) {
	stops := [][]byte{{'"'}, []byte(`\"`), []byte(`\\`), []byte(`\u00e9`), []byte(`\x`), []byte(`\u12`), {'\\'}, {0x00}, {0x1f},
		{0x7f}, []byte("é"), []byte("€"), []byte("😀"), {0xff}, {0xc3}, {0x80}, {0xed, 0xa0, 0x80}}
	for _, stop := range stops {
		for off := 0; off < 24; off++ {
			for _, filler := range []byte{' ', '!', 'a', '~', '#', '[', ']'} {
				for _, closed := range []bool{false, true} {
					b := append([]byte{'"'}, bytes.Repeat([]byte{filler}, off)...)
					b = append(b, stop...)
					b = append(b, "abcdefghijklmnop"...)
					if closed {
						b = append(b, '"', ',', '"', 'x')
					}
					checkScanString(t, b)
				}
			}
		}
	}
}

func TestScanStringMatchesBytewiseRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	alphabet := []byte("ab ~\x7f\"\\u0\x01\x1f\xc3\xa9\xe2\x82\xac\xff/nt")
	for range 200000 {
		b := make([]byte, 1+rng.IntN(40))
		b[0] = '"'
		for i := 1; i < len(b); i++ {
			if rng.IntN(4) == 0 {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			} else {
				b[i] = 'a' + byte(rng.IntN(26))
			}
		}
		checkScanString(t, b)
	}
}

func TestPrintableASCIIMatchesBytewise(t *testing.T) {
	for c := range 256 {
		for off := 0; off < 20; off++ {
			for n := off + 1; n <= 24; n++ {
				b := bytes.Repeat([]byte{'a'}, n)
				b[off] = byte(c)
				if got, want := printableASCII(b), printableASCIIBytewise(b); got != want {
					t.Fatalf("printableASCII(%q) = %v, want %v", b, got, want)
				}
			}
		}
	}
}

// BenchmarkScanString is the fast path against the bytewise reference on a typical user agent.
func BenchmarkScanString(b *testing.B) {
	ua := []byte(`"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",`)
	b.Run("words", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(ua)))
		for range b.N {
			s := jsonScanner{buf: ua}
			if _, _, ok := s.scanString(); !ok {
				b.Fatal("not a string")
			}
		}
	})
	b.Run("bytewise", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(ua)))
		for range b.N {
			if _, _, ok, _ := scanStringBytewise(ua, 0); !ok {
				b.Fatal("not a string")
			}
		}
	})
}
