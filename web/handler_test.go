package web_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/adtracker/adtracker/ingest/pipeline"
	"github.com/adtracker/adtracker/internal/httpx"
	"github.com/adtracker/adtracker/ratelimit"
	"github.com/adtracker/adtracker/server"
	"github.com/adtracker/adtracker/web"
)

const readToken = "dashboard-read"

// remoteServer serves the dashboard behind a trusted proxy on loopback, so a request with X-Forwarded-For comes from a remote
// client and the read routes need a token. classes is the server's route classifier.
func remoteServer(t *testing.T, classes func(method, pattern string) ratelimit.Class) string {
	t.Helper()
	proxies, err := httpx.ParseProxies([]string{"127.0.0.1/32"})
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Options{ReadTokens: []string{readToken}, Proxies: proxies, RouteClass: classes, Log: zap.NewNop()})
	st := web.NewStatus(web.Sources{
		State:    func() pipeline.State { return pipeline.State{RingCap: 1} },
		Accepted: func() int64 { return 0 }, Inserted: func() int64 { return 0 }, Spilled: func() int64 { return 0 },
	})
	web.NewHandler().Register(srv.Router, st)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(t.Context()) })
	return "http://" + ln.Addr().String()
}

type answer struct {
	status int
	header http.Header
	body   string
}

func fetch(t *testing.T, url string, headers ...string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, string(body)}
}

// The page and its files open for anyone (a remote user must load the page to type a token); /status needs the read token.
func TestDashboardAccess(t *testing.T) {
	base := remoteServer(t, web.RouteClass(ratelimit.ClassOf))
	for _, path := range []string{"/", "/assets/app.js", "/assets/app.css"} {
		if a := fetch(t, base+path); a.status != 200 {
			t.Errorf("GET %s from a remote client: %d %s, want 200 without a token", path, a.status, a.body)
		}
	}
	if a := fetch(t, base+"/status"); a.status != 401 || !strings.Contains(a.body, `"error"`) {
		t.Errorf("GET /status without a token: %d %s, want 401 JSON", a.status, a.body)
	}
	if a := fetch(t, base+"/status", "Authorization", "Bearer "+readToken); a.status != 200 || !strings.Contains(a.body, `"accepted_per_second"`) {
		t.Errorf("GET /status with the read token: %d %s", a.status, a.body)
	}
}

// Without web.RouteClass every GET is a guarded read: the page itself would answer 401 to a remote browser.
func TestDashboardAccessNeedsRouteClass(t *testing.T) {
	base := remoteServer(t, nil)
	if a := fetch(t, base+"/"); a.status != 401 {
		t.Fatalf("GET / with the default classes: %d, want 401 (else RouteClass is not what opens the page)", a.status)
	}
}

func TestDashboardFiles(t *testing.T) {
	base := remoteServer(t, web.RouteClass(ratelimit.ClassOf))
	cases := []struct{ path, contentType, contains string }{
		{"/", "text/html; charset=utf-8", `<script src="/assets/app.js" defer></script>`},
		{"/assets/app.js", "text/javascript; charset=utf-8", "'use strict'"},
		{"/assets/app.css", "text/css; charset=utf-8", "prefers-color-scheme: dark"},
	}
	for _, c := range cases {
		a := fetch(t, base+c.path)
		if a.status != 200 || a.header.Get("Content-Type") != c.contentType || !strings.Contains(a.body, c.contains) {
			t.Errorf("GET %s: %d %q, want 200 %q containing %q", c.path, a.status, a.header.Get("Content-Type"), c.contentType, c.contains)
		}
		csp := a.header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "http") {
			t.Errorf("GET %s: Content-Security-Policy %q: want this origin's scripts only", c.path, csp)
		}
		etag := a.header.Get("ETag")
		if etag == "" || a.header.Get("Cache-Control") != "no-cache" {
			t.Errorf("GET %s: ETag %q, Cache-Control %q", c.path, etag, a.header.Get("Cache-Control"))
			continue
		}
		if again := fetch(t, base+c.path, "If-None-Match", etag); again.status != fasthttp.StatusNotModified || again.body != "" {
			t.Errorf("GET %s with its ETag: %d, want 304 and no body", c.path, again.status)
		}
	}
	// The page lives at / only; unknown files are a JSON 404 naming the problem.
	for _, path := range []string{"/assets/index.html", "/assets/nope.js", "/assets/..%2fweb.go"} {
		if a := fetch(t, base+path); a.status != 404 || !strings.Contains(a.body, `"error"`) {
			t.Errorf("GET %s: %d %s, want a JSON 404", path, a.status, a.body)
		}
	}
}
