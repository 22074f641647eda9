package server

import (
	"context"
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/adtracker/adtracker/internal/httpx"
)

// accessRoutes are one route of each kind, recording which handlers ran.
func accessRoutes(ran map[string]int) func(*Server) {
	return func(s *Server) {
		for _, p := range []string{"/ads", "/ads/{id}", "/ads/analytics", "/ads/{id}/timeseries"} {
			s.Router.GET(p, func(ctx *fasthttp.RequestCtx) { ran[p]++; ctx.SetBodyString("data") })
		}
		s.Router.POST("/ads", func(ctx *fasthttp.RequestCtx) { ran["POST /ads"]++; ctx.SetStatusCode(201) })
		s.Router.POST("/ads/click", func(ctx *fasthttp.RequestCtx) { ran["/ads/click"]++; ctx.SetStatusCode(202) })
		s.Router.GET("/t/{event}", func(ctx *fasthttp.RequestCtx) { ran["/t/{event}"]++ })
		s.Router.GET("/c/{id}", func(ctx *fasthttp.RequestCtx) { ran["/c/{id}"]++; ctx.SetStatusCode(302) })
	}
}

func TestReadAccess(t *testing.T) {
	proxies, err := httpx.ParseProxies([]string{"127.0.0.1", "10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	ran := map[string]int{}
	ts := newTestServer(t, Options{ReadTokens: []string{"", "read-secret", " admin-secret "}, Proxies: proxies}, accessRoutes(ran))
	f := func(peer, method, uri string, want int, headers ...string) {
		t.Helper()
		before := len(ran)
		total := 0
		for _, n := range ran {
			total += n
		}
		ctx := request(ts.h, peer, method, uri, headers...)
		if got := ctx.Response.StatusCode(); got != want {
			t.Fatalf("%s %s %s %q: %d %s, want %d", peer, method, uri, headers, got, ctx.Response.Body(), want)
		}
		after := 0
		for _, n := range ran {
			after += n
		}
		if want == 401 {
			var body struct{ Error, Field string }
			if err := json.Unmarshal(ctx.Response.Body(), &body); err != nil || body.Field != "Authorization" || body.Error == "" ||
				string(ctx.Response.Header.Peek("WWW-Authenticate")) != `Bearer realm="adtracker"` {
				t.Fatalf("401 answer %s (%v)\n%s", ctx.Response.Body(), err, ctx.Response.Header.String())
			}
			if after != total {
				t.Fatalf("%s %s: the handler ran although the answer was 401", method, uri)
			}
		} else if want != 404 && uri != "/metrics" && uri != "/healthz" && after != total+1 {
			t.Fatalf("%s %s: handler ran %d times (routes seen %d)", method, uri, after-total, before)
		}
	}
	remote := "198.51.100.4"
	for _, uri := range []string{"/ads", "/ads/7", "/ads/analytics?from=x", "/ads/7/timeseries", "/metrics"} {
		f(remote, "GET", uri, 401)
		f(remote, "GET", uri, 401, "Authorization", "Bearer wrong")
		f(remote, "GET", uri, 401, "Authorization", "Basic read-secret")
		f(remote, "GET", uri, 401, "Authorization", "read-secret")
		f(remote, "GET", uri, 200, "Authorization", "Bearer read-secret")
		f(remote, "GET", uri, 200, "Authorization", "bearer  admin-secret")
		f("127.0.0.1", "GET", uri, 200) // make run: loopback needs no token
	}
	// Players are never asked for a token; admin writes check admin.token themselves; health stays open.
	f(remote, "POST", "/ads/click", 202)
	f(remote, "GET", "/t/start", 200)
	f(remote, "GET", "/c/1", 302)
	f(remote, "POST", "/ads", 201)
	f(remote, "GET", "/healthz", 200)
	f(remote, "GET", "/nope", 404)
	// Loopback means this host: through a trusted local proxy the remote client needs a token; the host itself does not.
	f("127.0.0.1", "GET", "/ads", 401, "X-Forwarded-For", "203.0.113.5")
	f("127.0.0.1", "GET", "/ads", 200, "X-Forwarded-For", "203.0.113.5", "Authorization", "Bearer read-secret")
	f("127.0.0.1", "GET", "/ads", 200, "X-Forwarded-For", "127.0.0.1")
	// A remote trusted proxy cannot vouch for a loopback client; an untrusted one's header is ignored.
	f("10.1.2.3", "GET", "/ads", 401, "X-Forwarded-For", "127.0.0.1")
	f(remote, "GET", "/ads", 401, "X-Forwarded-For", "127.0.0.1")
}

func TestReadAccessWithoutTokensAndPublic(t *testing.T) {
	closed := newTestServer(t, Options{}, accessRoutes(map[string]int{}))
	ctx := request(closed.h, "198.51.100.4", "GET", "/ads/analytics", "Authorization", "Bearer anything")
	var body struct{ Error string }
	if ctx.Response.StatusCode() != 401 || json.Unmarshal(ctx.Response.Body(), &body) != nil || body.Error != errReadNoToken {
		t.Fatalf("no token configured: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	var req fasthttp.Request
	req.SetRequestURI("/ads/analytics")
	v6 := new(fasthttp.RequestCtx)
	v6.Init(&req, &net.TCPAddr{IP: net.IPv6loopback, Port: 40000}, nil)
	if closed.h(v6); v6.Response.StatusCode() != 200 {
		t.Fatalf("IPv6 loopback: %d %s", v6.Response.StatusCode(), v6.Response.Body())
	}
	open := newTestServer(t, Options{PublicReads: true}, accessRoutes(map[string]int{}))
	if ctx := request(open.h, "198.51.100.4", "GET", "/ads/analytics"); ctx.Response.StatusCode() != 200 {
		t.Fatalf("http.public_reads: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
}

// With a separate metrics listener /metrics leaves the main port and is served, unguarded, on its own.
func TestSeparateMetricsListener(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := New(Options{Registry: reg, SeparateMetrics: true, Log: zap.NewNop()})
	if ctx := request(s.Handler(), "127.0.0.1", "GET", "/metrics"); ctx.Response.StatusCode() != 404 {
		t.Fatalf("/metrics on the main router: %d", ctx.Response.StatusCode())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.ServeMetrics(ln) }()
	url := "http://" + ln.Addr().String()
	status, body, err := fasthttp.Get(nil, url+"/metrics")
	if err != nil || status != 200 || len(body) == 0 {
		t.Fatalf("metrics listener: %d %.200s %v", status, body, err)
	}
	if status, _, _ := fasthttp.Get(nil, url+"/ads"); status != 404 {
		t.Fatalf("metrics listener serves /ads: %d", status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
