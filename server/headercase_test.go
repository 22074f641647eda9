package server

import (
	"fmt"
	"testing"

	"github.com/valyala/fasthttp"
)

// Header names are case-insensitive on the wire; the middleware looks them up in fasthttp's canonical form (PeekCanonical),
// which is what fasthttp stores whatever case the client or a handler used. Over a real connection, all lower case: the
// request id is echoed, the origin is recognised, and a JSON route's own cache-control is kept.
func TestMiddlewareHeaderNamesAnyCase(t *testing.T) {
	origins := []string{"https://player.example.com"}
	addr, _ := listen(t, Options{CORSOrigins: origins, ReadCORSOrigins: origins}, func(s *Server) {
		s.Router.GET("/cached", func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("application/json")
			ctx.Response.Header.Set("cache-control", "max-age=60")
			ctx.SetBodyString(`{}`)
		})
	})
	for _, names := range [][2]string{{"x-request-id", "origin"}, {"X-REQUEST-ID", "ORIGIN"}, {"X-Request-Id", "Origin"}} {
		c := dial(t, addr)
		if _, err := fmt.Fprintf(c, "GET /cached HTTP/1.1\r\nhost: tracker\r\n%s: case-%s\r\n%s: https://player.example.com\r\nconnection: close\r\n\r\n",
			names[0], names[0], names[1]); err != nil {
			t.Fatal(err)
		}
		r := readResponse(t, c)
		if r.status != 200 || r.header.Get("X-Request-Id") != "case-"+names[0] ||
			r.header.Get("Access-Control-Allow-Origin") != "https://player.example.com" || r.header.Get("Cache-Control") != "max-age=60" {
			t.Fatalf("headers named %v: %d, X-Request-Id %q, Access-Control-Allow-Origin %q, Cache-Control %q", names, r.status,
				r.header.Get("X-Request-Id"), r.header.Get("Access-Control-Allow-Origin"), r.header.Get("Cache-Control"))
		}
	}
}
