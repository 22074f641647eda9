package testenv

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// Toxiproxy is an in-process Toxiproxy TCP proxy on loopback in front of one upstream (a ClickHouse native port, say): the test points
// the client at Addr and adds and removes network faults ("toxics") on the live connections while it runs. No API server is started;
// the test drives the proxy directly.
type Toxiproxy struct {
	Addr  string
	proxy *toxiproxy.Proxy
}

// Toxic is one fault. Type and Attributes are Toxiproxy's (reset_peer {timeout}, limit_data {bytes}, timeout {timeout}, latency
// {latency, jitter}, slicer {average_size, size_variation, delay}, bandwidth {rate}); Stream is "upstream" (client → server) or
// "downstream" (server → client, the default); Toxicity is the share of connections it applies to (0 means all).
type Toxic struct {
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Stream     string         `json:"stream,omitempty"`
	Toxicity   float32        `json:"toxicity,omitempty"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

// StartToxiproxy starts a proxy on a free loopback port to upstream and stops it when the test ends.
func StartToxiproxy(t testing.TB, name, upstream string) *Toxiproxy {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("toxiproxy %s → %s: %v", name, upstream, err)
	}
	t.Cleanup(p.Stop)
	return &Toxiproxy{Addr: p.Listen, proxy: p}
}

// Add puts a toxic on every current and future connection through the proxy.
func (x *Toxiproxy) Add(t testing.TB, tx Toxic) {
	t.Helper()
	if tx.Toxicity == 0 {
		tx.Toxicity = 1
	}
	b, err := json.Marshal(tx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x.proxy.Toxics.AddToxicJson(strings.NewReader(string(b))); err != nil {
		t.Fatalf("toxiproxy: add %s: %v", b, err)
	}
}

// Remove takes a toxic off again; connections it already closed stay closed.
func (x *Toxiproxy) Remove(t testing.TB, name string) {
	t.Helper()
	if err := x.proxy.Toxics.RemoveToxic(context.Background(), name); err != nil {
		t.Fatalf("toxiproxy: remove %s: %v", name, err)
	}
}

// During puts toxics on for d, then takes them off again.
func (x *Toxiproxy) During(t testing.TB, d time.Duration, toxics ...Toxic) {
	t.Helper()
	for _, tx := range toxics {
		x.Add(t, tx)
	}
	time.Sleep(d)
	for _, tx := range toxics {
		x.Remove(t, tx.Name)
	}
}
