package httpx

import (
	"bytes"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/valyala/fasthttp"
)

// MinCompressBytes is the smallest answer Compress compresses: below it gzip's 18 bytes of framing and the CPU buy little.
const MinCompressBytes = 512

// Compress wraps h so that its answer goes out gzipped (at the fastest level) when the request accepts gzip, the answer is
// text, JSON or XML of at least MinCompressBytes, and has no Content-Encoding yet. Every answer of a wrapped route says
// "Vary: Accept-Encoding", compressed or not, so a shared cache keeps the two apart.
//
// fasthttp.CompressHandlerLevel is not used: it compresses on a pool of other goroutines (its "stackless" writer), which
// costs ~23 µs for a 6 KB VAST tag against ~15 µs here (vast.BenchmarkServeAdGzip, 2026-12-08), and it reads Accept-Encoding by
// substring, so "deflate,gzip" and "GZIP" get nothing while "gzip;q=0" is honoured only by accident.
func Compress(h fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		h(ctx)
		resp := &ctx.Response
		resp.Header.Add(fasthttp.HeaderVary, fasthttp.HeaderAcceptEncoding)
		if resp.IsBodyStream() || len(resp.Header.ContentEncoding()) > 0 || len(resp.Body()) < MinCompressBytes ||
			!compressible(resp.Header.ContentType()) || !AcceptsGzip(ctx.Request.Header.PeekAll(fasthttp.HeaderAcceptEncoding)) {
			return
		}
		buf := gzipBufs.Get().(*bytes.Buffer)
		defer gzipBufs.Put(buf)
		buf.Reset()
		zw := gzipWriters.Get().(*gzip.Writer)
		defer gzipWriters.Put(zw)
		zw.Reset(buf)
		if _, err := zw.Write(resp.Body()); err != nil || zw.Close() != nil {
			return // a bytes.Buffer does not fail; the answer stays uncompressed if it ever did
		}
		resp.SetBody(buf.Bytes()) // copied into the response's own buffer
		resp.Header.Set(fasthttp.HeaderContentEncoding, "gzip")
	}
}

var (
	gzipWriters = sync.Pool{New: func() any {
		zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed) // a valid level: no error
		return zw
	}}
	gzipBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}
)

// compressible is text/*, and JSON or XML under application/ (what the compressed routes answer; not images or octets).
func compressible(contentType []byte) bool {
	mt, _, _ := bytes.Cut(contentType, []byte(";"))
	mt = bytes.TrimSpace(mt)
	return bytes.HasPrefix(mt, []byte("text/")) || bytes.HasPrefix(mt, []byte("application/")) &&
		(bytes.HasSuffix(mt, []byte("json")) || bytes.HasSuffix(mt, []byte("xml")) || bytes.Equal(mt, []byte("application/javascript")))
}

// AcceptsGzip reads the Accept-Encoding field (all its lines; RFC 9110 §12.5.3): gzip is acceptable when "gzip" or "x-gzip"
// is listed with a q-value above zero, or "*" is and gzip is not listed. Names are case-insensitive; an element whose q-value
// does not parse counts as refused. No field, or an empty one, accepts nothing but identity.
func AcceptsGzip(lines [][]byte) bool {
	named, star := 0, 0 // 0: absent, 1: acceptable, -1: refused
	for _, line := range lines {
		for len(line) > 0 {
			var elem []byte
			elem, line, _ = bytes.Cut(line, []byte(","))
			coding, params, _ := bytes.Cut(elem, []byte(";"))
			coding = bytes.TrimSpace(coding)
			ok := 1
			if !qAboveZero(params) {
				ok = -1
			}
			switch {
			case bytes.EqualFold(coding, []byte("gzip")) || bytes.EqualFold(coding, []byte("x-gzip")):
				if named == 0 || ok < 0 {
					named = ok // a refusal wins over a repetition that accepts
				}
			case bytes.Equal(coding, []byte("*")):
				star = ok
			}
		}
	}
	if named != 0 {
		return named > 0
	}
	return star > 0
}

// qAboveZero reads an element's parameters (" q=0.5"): true without a q parameter, false for q=0 (0, 0., 0.0…) or one that
// does not parse (RFC 9110 §12.4.2: 0 to 1, at most three decimals).
func qAboveZero(params []byte) bool {
	for len(params) > 0 {
		var p []byte
		p, params, _ = bytes.Cut(params, []byte(";"))
		name, v, _ := bytes.Cut(bytes.TrimSpace(p), []byte("="))
		if !bytes.EqualFold(bytes.TrimSpace(name), []byte("q")) {
			continue
		}
		v = bytes.TrimSpace(v)
		if len(v) == 0 || (v[0] != '0' && v[0] != '1') || len(v) > 5 || len(v) > 1 && v[1] != '.' {
			return false
		}
		nonZero := v[0] == '1'
		for _, c := range v[min(2, len(v)):] {
			if c < '0' || c > '9' || v[0] == '1' && c != '0' { // digits only, and 1 only as 1.000
				return false
			}
			nonZero = nonZero || c != '0'
		}
		return nonZero
	}
	return true
}
