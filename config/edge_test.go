package config

import (
	"strings"
	"testing"
)

// The HTTP-edge keys: the read token never reaches the log, the rest parse from the environment and are validated.
func TestEdgeKeys(t *testing.T) {
	t.Setenv("ADTRACKER_HTTP_READ_TOKEN", "read-sekret")
	t.Setenv("ADTRACKER_HTTP_PUBLIC_READS", "true")
	t.Setenv("ADTRACKER_HTTP_METRICS_ADDR", "127.0.0.1:9100")
	t.Setenv("ADTRACKER_HTTP_READ_CORS_ORIGINS", "https://dash.example,https://b.example")
	t.Setenv("ADTRACKER_INGEST_MAX_BATCH_ITEMS", "500")
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.ReadToken != "read-sekret" || !c.HTTP.PublicReads || c.HTTP.MetricsAddr != "127.0.0.1:9100" ||
		strings.Join(c.HTTP.ReadCORS, " ") != "https://dash.example https://b.example" || c.Ingest.MaxBatchItems != 500 {
		t.Fatalf("loaded %+v / %+v", c.HTTP, c.Ingest)
	}
	if r := c.Redacted(); r["http.read_token"] != "[redacted]" {
		t.Fatalf("http.read_token in the log: %v", r["http.read_token"])
	}
	t.Setenv("ADTRACKER_INGEST_MAX_BATCH_ITEMS", "0")
	if _, err := Load(""); err == nil || !strings.Contains(err.Error(), "ingest.max_batch_items") {
		t.Fatalf("max_batch_items 0: %v", err)
	}
	t.Setenv("ADTRACKER_INGEST_MAX_BATCH_ITEMS", "500")
	t.Setenv("ADTRACKER_HTTP_READ_CORS_ORIGINS", "https://dash.example/path")
	if _, err := Load(""); err == nil || !strings.Contains(err.Error(), "http.read_cors_origins") {
		t.Fatalf("bad read origin: %v", err)
	}
}
