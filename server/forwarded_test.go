package server_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/adtracker/adtracker/ingest"
	"github.com/adtracker/adtracker/ingest/decode"
	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/internal/httpx"
	"github.com/adtracker/adtracker/ratelimit"
	"github.com/adtracker/adtracker/server"
)

type ipQueue struct {
	mu  sync.Mutex
	ips []string
}

func (q *ipQueue) Enqueue(e *event.Event) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.ips = append(q.ips, e.IPString())
	return nil
}

// A proxy that appends its own X-Forwarded-For line after the client's (HAProxy option forwardfor): over a real connection, the
// client's forged first line is neither stored nor used as the rate-limit key.
func TestForgedForwardedLineOverTheWire(t *testing.T) {
	proxies, err := httpx.ParseProxies([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	lim, err := ratelimit.New(ratelimit.Config{Ingest: ratelimit.Rule{RPS: 0.001, Burst: 1}, Proxies: proxies})
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Options{MaxBodyBytes: 1 << 20, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, Limiter: lim, Log: zap.NewNop()})
	q := &ipQueue{}
	(&ingest.Handlers{Decoder: &decode.Decoder{}, Queue: q, Catalog: oneAd{}, Proxies: proxies, IDs: event.NewIDs()}).Register(srv.Router)
	f := &full{srv: srv}
	url := f.listen(t)
	send := func(lines ...string) int {
		t.Helper()
		req, err := http.NewRequest("POST", url+"/ads/impression", strings.NewReader(`{"ad_id":1}`))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			req.Header.Add("X-Forwarded-For", l) // net/http writes one header line per value
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := send("6.6.6.6", "203.0.113.77"); got != 202 {
		t.Fatalf("first request: %d", got)
	}
	if got := send("6.6.6.7", "203.0.113.77"); got != 429 {
		t.Fatalf("a new forged first line bought a new rate-limit bucket: %d, want 429", got)
	}
	if got := send("6.6.6.6", "203.0.113.78"); got != 202 {
		t.Fatalf("another client behind the proxy: %d, want 202 (6.6.6.6 must not have been a bucket)", got)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if strings.Join(q.ips, " ") != "203.0.113.77 203.0.113.78" {
		t.Fatalf("stored addresses %v", q.ips)
	}
}
