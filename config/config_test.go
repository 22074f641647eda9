package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaults(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Addr != ":8080" || c.ClickHouse.Addr != "127.0.0.1:9000" || c.ClickHouse.Database != "adtracker" ||
		c.Log.Format != "json" || !c.Migrate.OnStart || c.Ingest.FlushInterval != time.Second ||
		c.Ingest.MaxAge != 7*24*time.Hour || c.HTTP.MaxBodyBytes != 1<<20 || !c.Ingest.Durable ||
		c.HTTP.BodyBuffer != 8<<20 {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestPrecedence(t *testing.T) {
	p := write(t, "http:\n  addr: \":9999\"\nlog:\n  level: debug\ningest:\n  flush_interval: 2s\n")
	t.Setenv("ADTRACKER_LOG_LEVEL", "warn")
	t.Setenv("ADTRACKER_HTTP_TRUSTED_PROXIES", "10.0.0.0/8,127.0.0.1")
	t.Setenv("ADTRACKER_INGEST_BATCH_SIZE", "123")
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Addr != ":9999" || c.Log.Level != "warn" || c.Ingest.FlushInterval != 2*time.Second || c.Ingest.BatchSize != 123 {
		t.Fatalf("precedence: addr %q level %q flush %v batch %d", c.HTTP.Addr, c.Log.Level, c.Ingest.FlushInterval, c.Ingest.BatchSize)
	}
	if strings.Join(c.HTTP.TrustedProxies, "|") != "10.0.0.0/8|127.0.0.1" {
		t.Fatalf("trusted proxies from env: %q", c.HTTP.TrustedProxies)
	}
}

func TestBadConfig(t *testing.T) {
	f := func(body, want string) {
		t.Helper()
		_, err := Load(write(t, body))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Load(%q) err = %v, want it to mention %q", body, err, want)
		}
	}
	f("http:\n  adr: x\n", "unknown key http.adr")
	f("bogus: 1\n", "unknown key bogus")
	f("http: [unclosed\n", "not valid YAML")
	f("log:\n  format: xml\n", "log.format")
	f("ingest:\n  ring_capacity: 1000\n", "power of two")
	f("clickhouse:\n  compression: zstd\n", "clickhouse.compression must be auto, lz4 or none")
	f("ingest:\n  flush_interval: soon\n", "flush_interval")
	f("ratelimit:\n  ingest:\n    rps: -1\n", "ratelimit.ingest")
	f("ratelimit:\n  query:\n    burst: -5\n", "ratelimit.query")
	f("ratelimit:\n  ingest:\n    rsp: 5\n", "unknown key ratelimit.ingest.rsp")
	f("http:\n  cors_origins: [\"https://a.example/player.html\"]\n", "http.cors_origins")
	f("http:\n  cors_origins: [\"player.example.com\"]\n", "http.cors_origins")
	f("http:\n  max_header_bytes: 100\n", "max_header_bytes")
	f("http:\n  max_body_bytes: 16777216\n", "http.body_buffer_bytes (8388608) must be at least http.max_body_bytes (16777216)")
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestEnvNamesAndRedaction(t *testing.T) {
	for _, s := range Settings {
		if !strings.HasPrefix(s.Env(), "ADTRACKER_") || strings.Contains(s.Env(), ".") {
			t.Fatalf("env name %q", s.Env())
		}
	}
	t.Setenv("ADTRACKER_ADMIN_TOKEN", "sekret")
	t.Setenv("ADTRACKER_POSTGRES_DSN", "postgres://u:pw@h:5432/db")
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	r := c.Redacted()
	if r["admin.token"] != "[redacted]" || r["postgres.dsn"] != "postgres://u:[redacted]@h:5432/db" || r["http.addr"] != ":8080" {
		t.Fatalf("redacted: %v", r)
	}
	if len(r) != len(Settings) {
		t.Fatalf("Redacted has %d keys, Settings %d: the struct and the table disagree", len(r), len(Settings))
	}
}

func TestOperationsSettings(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	// Defaults sized for players: many clients behind one NAT share an address, so the ingest limit is per-address generous.
	if c.RateLimit.Ingest != (RateRule{RPS: 50, Burst: 200}) || c.RateLimit.Query != (RateRule{RPS: 10, Burst: 20}) ||
		c.RateLimit.Admin != (RateRule{RPS: 5, Burst: 20}) || strings.Join(c.RateLimit.Exempt, ",") != "127.0.0.0/8,::1" ||
		c.RateLimit.MaxClients != 1000000 || strings.Join(c.HTTP.CORSOrigins, ",") != "*" || c.HTTP.MaxHeaderBytes != 8192 ||
		c.HTTP.Concurrency != 50000 {
		t.Fatalf("defaults: %+v %+v", c.RateLimit, c.HTTP)
	}
	p := write(t, "ratelimit:\n  ingest:\n    rps: 2.5\n    burst: 10\n  admin:\n    rps: 0\nhttp:\n  cors_origins: [\"https://a.example\", \"http://localhost:3000/\"]\n")
	t.Setenv("ADTRACKER_RATELIMIT_QUERY_RPS", "0.5")
	t.Setenv("ADTRACKER_RATELIMIT_EXEMPT", "10.0.0.0/8, 192.0.2.7")
	c, err = Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.RateLimit.Ingest != (RateRule{RPS: 2.5, Burst: 10}) || c.RateLimit.Admin.RPS != 0 || c.RateLimit.Query.RPS != 0.5 ||
		len(c.RateLimit.Exempt) != 2 || strings.Join(c.HTTP.CORSOrigins, "|") != "https://a.example|http://localhost:3000/" {
		t.Fatalf("loaded: %+v %+v", c.RateLimit, c.HTTP.CORSOrigins)
	}
	r := c.Redacted()
	if r["ratelimit.ingest.rps"] != 2.5 || r["ratelimit.query.burst"] != 20 {
		t.Fatalf("redacted view of nested keys: %v %v", r["ratelimit.ingest.rps"], r["ratelimit.query.burst"])
	}
}

func TestRedactDSN(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"postgres://u:pw@h:5432/db", "postgres://u:[redacted]@h:5432/db"},
		{"postgres://u@h/db", "postgres://u@h/db"},
		{"postgres://h/db?sslmode=disable", "postgres://h/db?sslmode=disable"},
		{"postgresql://u:p@ss/w0rd@h1:5432,h2:5433/db?sslmode=require", "postgresql://u:[redacted]@h1:5432,h2:5433/db?sslmode=require"},
		{"postgres://h/db?password=secret", "postgres://h/db?password=[redacted]"},
		{"postgres://u@h/db?sslmode=disable&password=secret&application_name=a@b", "postgres://u@h/db?sslmode=disable&password=[redacted]&application_name=a@b"},
		{"postgres://u:pw@h/db?PassWord=x&sslpassword=y", "postgres://u:[redacted]@h/db?PassWord=[redacted]&sslpassword=[redacted]"},
		{"postgres://h/db?pass%77ord=x", "postgres://h/db?pass%77ord=[redacted]"},
		{"clickhouse://default:chpw@127.0.0.1:9000/adtracker?dial_timeout=1s", "clickhouse://default:[redacted]@127.0.0.1:9000/adtracker?dial_timeout=1s"},
		{"tcp://127.0.0.1:9000?username=u&password=chpw", "tcp://127.0.0.1:9000?username=u&password=[redacted]"},
		{"host=localhost user=u password=secret dbname=d", "host=localhost user=u password=[redacted] dbname=d"},
		{"host=h password = 'a b\\' c' sslmode=disable", "host=h password = [redacted] sslmode=disable"},
		{"password=secret", "password=[redacted]"},
		{"host=h sslpassword=k", "host=h sslpassword=[redacted]"},
		{"host=h password='unterminated", "[redacted: not a key=value connection string]"},
		{"secret garbage password=x", "[redacted: not a key=value connection string]"},
		{"127.0.0.1:5432", "127.0.0.1:5432"},
	} {
		got := redactDSN(c.in)
		if got != c.want {
			t.Errorf("redactDSN(%q) = %q, want %q", c.in, got, c.want)
		}
		for _, secret := range []string{"pw", "secret", "chpw", "p@ss", "w0rd", "a b"} {
			if strings.Contains(c.in, secret) && strings.Contains(got, secret) && !strings.Contains(c.want, secret) {
				t.Errorf("redactDSN(%q) leaks %q", c.in, secret)
			}
		}
	}
}

func TestClickHouseSettings(t *testing.T) {
	t.Setenv("ADTRACKER_CLICKHOUSE_PASSWORD", "chpw")
	t.Setenv("ADTRACKER_POSTGRES_DSN", "host=h user=u password=pgpw")
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.ClickHouse.ReadConns != 8 || c.ClickHouse.WriteConns != 0 || c.ClickHouse.NodeID != "" || c.ClickHouseWriteConns() != c.Ingest.Inserters+1 {
		t.Fatalf("defaults: %+v, write pool %d", c.ClickHouse, c.ClickHouseWriteConns())
	}
	r := c.Redacted()
	if r["clickhouse.password"] != "[redacted]" || r["postgres.dsn"] != "host=h user=u password=[redacted]" {
		t.Fatalf("redacted: %v %v", r["clickhouse.password"], r["postgres.dsn"])
	}
	c, err = Load(write(t, "clickhouse:\n  write_conns: 5\n  read_conns: 3\n  node_id: edge_7\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.ClickHouseWriteConns() != 5 || c.ClickHouse.ReadConns != 3 || c.ClickHouse.NodeID != "edge_7" {
		t.Fatalf("loaded: %+v", c.ClickHouse)
	}
	for body, want := range map[string]string{
		"clickhouse:\n  read_conns: 0\n":    "clickhouse.read_conns",
		"clickhouse:\n  write_conns: -1\n":  "clickhouse.write_conns",
		"clickhouse:\n  node_id: edge-7\n":  "clickhouse.node_id",
		"clickhouse:\n  node_id: \"a'b\"\n": "clickhouse.node_id",
	} {
		if _, err := Load(write(t, body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load(%q): %v, want an error naming %s", body, err, want)
		}
	}
}
