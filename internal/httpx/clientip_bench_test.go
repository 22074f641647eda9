package httpx

import (
	"net"
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkClientIPForwarded is ClientIP for a pixel behind a trusted proxy: the peer is trusted, so the address comes from a
// one-entry X-Forwarded-For. Rate limiting and the pixel handler each call it once per request.
func BenchmarkClientIPForwarded(b *testing.B) {
	p, err := ParseProxies([]string{"127.0.0.1"})
	if err != nil {
		b.Fatal(err)
	}
	var ctx fasthttp.RequestCtx
	var req fasthttp.Request
	req.SetRequestURI("/t/impression?ad=123&sv=abc")
	req.Header.Set("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36")
	req.Header.Set("X-Forwarded-For", "203.0.113.77")
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4711}, nil)
	b.ReportAllocs()
	for b.Loop() {
		p.ClientIP(&ctx)
	}
}
