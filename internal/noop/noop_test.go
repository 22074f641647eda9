package noop

import (
	"net"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestAnswers202ToAnything(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer()
	go func() { _ = Serve(srv, ln) }() // returns only at Shutdown
	defer srv.Shutdown()
	f := func(method, uri, body string) {
		t.Helper()
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.Header.SetMethod(method)
		req.SetRequestURI("http://" + ln.Addr().String() + uri)
		req.SetBodyString(body)
		if err := fasthttp.Do(req, resp); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode() != 202 || len(resp.Body()) != 0 {
			t.Fatalf("%s %s: %d %q, want 202 and no body", method, uri, resp.StatusCode(), resp.Body())
		}
	}
	f("POST", "/ads/click", `{"ad_id":1}`)
	f("POST", "/events", "{}\n{}\n")
	f("GET", "/t/impression?ad_id=1", "")
}
