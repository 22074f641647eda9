package screen

import "github.com/valyala/fasthttp"

// isPrefetch reports whether the request says it is fetched ahead of a view: Sec-Purpose (Chromium's speculation rules and
// link prefetch: "prefetch", "prefetch;prerender"), Purpose (older Chromium), X-Purpose (Safari's "preview" of top sites) or
// X-Moz (Firefox's "prefetch").
//
// One pass over the headers: four Peek calls would normalise and look up each name, ~8× the cost.
func isPrefetch(h *fasthttp.RequestHeader) bool {
	for k, v := range h.All() {
		switch len(k) {
		case len("Sec-Purpose"):
			if equalFoldASCII(k, "sec-purpose") && purposeIs(v, false) {
				return true
			}
		case len("Purpose"):
			if equalFoldASCII(k, "purpose") && purposeIs(v, false) {
				return true
			}
		case len("X-Purpose"):
			if equalFoldASCII(k, "x-purpose") && purposeIs(v, true) {
				return true
			}
		case len("X-Moz"):
			if equalFoldASCII(k, "x-moz") && purposeIs(v, false) {
				return true
			}
		}
	}
	return false
}

// purposeIs reports whether the first token of v (up to ';', ',' or a space, ASCII case-insensitive) is "prefetch", or also
// "preview" when preview is set.
func purposeIs(v []byte, preview bool) bool {
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	n := 0
	for n < len(v) && v[n] != ';' && v[n] != ',' && v[n] != ' ' && v[n] != '\t' {
		n++
	}
	tok := v[:n]
	return equalFoldASCII(tok, "prefetch") || (preview && equalFoldASCII(tok, "preview"))
}

func equalFoldASCII(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
