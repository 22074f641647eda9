package server

import (
	"bytes"
	"compress/gzip"
	"io"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// Options.Compress: the routes it names answer gzip to a client that accepts it, and only those, and only then; the client
// gets back exactly the body the handler wrote.
func TestCompressedRoutes(t *testing.T) {
	xml := "<?xml version=\"1.0\"?><VAST>" + strings.Repeat("<Tracking event=\"start\"><![CDATA[https://t.example/t/start?sv=x]]></Tracking>", 40) + "</VAST>"
	answer := func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/xml")
		ctx.SetBodyString(xml)
	}
	s := newTestServer(t, Options{Compress: func(method, pattern string) bool { return pattern == "/vast/{id}" }}, func(s *Server) {
		s.Router.GET("/vast/{id}", answer)
		s.Router.GET("/other", answer)
		s.Router.GET("/small/{id}", func(ctx *fasthttp.RequestCtx) { ctx.SetContentType("application/xml"); ctx.SetBodyString("<VAST/>") })
		s.Router.GET("/gif", func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("image/gif")
			ctx.SetBodyString(strings.Repeat("G", 1000))
		})
	})
	get := func(uri string, headers ...string) *fasthttp.RequestCtx {
		t.Helper()
		return request(s.h, "127.0.0.1", "GET", uri, headers...) // loopback: these paths fall in the guarded read class
	}

	ctx := get("/vast/1", "Accept-Encoding", "gzip, deflate, br, zstd") // what Chromium sends
	if ctx.Response.StatusCode() != fasthttp.StatusOK {
		t.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	if enc := string(ctx.Response.Header.ContentEncoding()); enc != "gzip" {
		t.Fatalf("Content-Encoding %q, want gzip", enc)
	}
	if vary := ctx.Response.Header.PeekAll("Vary"); !bytes.Contains(bytes.Join(vary, []byte(",")), []byte("Accept-Encoding")) {
		t.Fatalf("Vary %q does not name Accept-Encoding", vary)
	}
	zr, err := gzip.NewReader(bytes.NewReader(ctx.Response.Body()))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil || string(plain) != xml {
		t.Fatalf("decompressed %d bytes (%v), want the %d written", len(plain), err, len(xml))
	}
	if n := len(ctx.Response.Body()); n*3 > len(xml) {
		t.Fatalf("%d bytes compressed to %d", len(xml), n)
	}

	for _, c := range []struct {
		uri, acceptEncoding, why string
	}{
		{"/vast/1", "", "the client did not ask"},
		{"/vast/1", "identity", "the client asked for none"},
		{"/vast/1", "gzip;q=0", "the client refused gzip"},
		{"/other", "gzip", "a route Compress does not name"},
		{"/small/1", "gzip", "under 200 bytes"},
	} {
		ctx := get(c.uri, "Accept-Encoding", c.acceptEncoding)
		if enc := ctx.Response.Header.ContentEncoding(); len(enc) != 0 {
			t.Errorf("%s, Accept-Encoding %q (%s): Content-Encoding %q", c.uri, c.acceptEncoding, c.why, enc)
		}
		if body := string(ctx.Response.Body()); body != xml && c.uri != "/small/1" {
			t.Errorf("%s, Accept-Encoding %q: body changed", c.uri, c.acceptEncoding)
		}
	}
}
