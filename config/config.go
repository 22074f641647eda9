// Package config loads adtracker's settings: defaults, then an optional YAML file, then ADTRACKER_* environment variables.
package config

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// Config is every setting. The mapstructure tags are the keys of the YAML file; ADTRACKER_ + the key upper-cased with dots as
// underscores is the environment name (http.max_body_bytes ↔ ADTRACKER_HTTP_MAX_BODY_BYTES).
type Config struct {
	HTTP struct {
		Addr           string        `mapstructure:"addr"`
		MaxBodyBytes   int           `mapstructure:"max_body_bytes"`
		BodyBuffer     int           `mapstructure:"body_buffer_bytes"`
		TrustedProxies []string      `mapstructure:"trusted_proxies"`
		ReadTimeout    time.Duration `mapstructure:"read_timeout"`
		WriteTimeout   time.Duration `mapstructure:"write_timeout"`
		IdleTimeout    time.Duration `mapstructure:"idle_timeout"`
		MaxConnsPerIP  int           `mapstructure:"max_conns_per_ip"`
		MaxHeaderBytes int           `mapstructure:"max_header_bytes"`
		Concurrency    int           `mapstructure:"concurrency"`
		CORSOrigins    []string      `mapstructure:"cors_origins"`
		ReadCORS       []string      `mapstructure:"read_cors_origins"`
		ReadToken      string        `mapstructure:"read_token"`
		PublicReads    bool          `mapstructure:"public_reads"`
		MetricsAddr    string        `mapstructure:"metrics_addr"`
		PublicURL      string        `mapstructure:"public_url"`
		Compress       bool          `mapstructure:"compress"`
	} `mapstructure:"http"`
	RateLimit struct {
		Ingest     RateRule `mapstructure:"ingest"`
		Query      RateRule `mapstructure:"query"`
		Admin      RateRule `mapstructure:"admin"`
		Exempt     []string `mapstructure:"exempt"`
		MaxClients int      `mapstructure:"max_clients"`
	} `mapstructure:"ratelimit"`
	ClickHouse struct {
		Addr        string `mapstructure:"addr"`
		Database    string `mapstructure:"database"`
		Username    string `mapstructure:"username"`
		Password    string `mapstructure:"password"`
		Cluster     string `mapstructure:"cluster"`
		Compression string `mapstructure:"compression"`
		ReadConns   int    `mapstructure:"read_conns"`
		WriteConns  int    `mapstructure:"write_conns"`
		NodeID      string `mapstructure:"node_id"`
	} `mapstructure:"clickhouse"`
	Postgres struct {
		DSN string `mapstructure:"dsn"`
	} `mapstructure:"postgres"`
	Log struct {
		Level  string `mapstructure:"level"`
		Format string `mapstructure:"format"`
	} `mapstructure:"log"`
	Admin struct {
		Token string `mapstructure:"token"`
	} `mapstructure:"admin"`
	Migrate struct {
		OnStart bool `mapstructure:"on_start"`
	} `mapstructure:"migrate"`
	Ingest struct {
		DataDir       string        `mapstructure:"data_dir"`
		BatchSize     int           `mapstructure:"batch_size"`
		FlushInterval time.Duration `mapstructure:"flush_interval"`
		Inserters     int           `mapstructure:"inserters"`
		InsertTimeout time.Duration `mapstructure:"insert_timeout"`
		RingCapacity  int           `mapstructure:"ring_capacity"`
		SpillMaxBytes int64         `mapstructure:"spill_max_bytes"`
		FsyncInterval time.Duration `mapstructure:"fsync_interval"`
		DedupWindow   int           `mapstructure:"dedup_window"`
		// A spill record ClickHouse refuses while it answers is quarantined after this many such failures or this long.
		ReplayMaxAttempts int           `mapstructure:"replay_max_attempts"`
		ReplayMaxAge      time.Duration `mapstructure:"replay_max_age"`
		MaxFutureSkew     time.Duration `mapstructure:"max_future_skew"`
		MaxAge            time.Duration `mapstructure:"max_age"`
		MaxBatchItems     int           `mapstructure:"max_batch_items"`
		Durable           bool          `mapstructure:"durable"`
		MemoryLimit       int64         `mapstructure:"memory_limit"`
		EnqueueWait       time.Duration `mapstructure:"enqueue_wait"`
	} `mapstructure:"ingest"`
	Query struct {
		MaxRange time.Duration `mapstructure:"max_range"`
		Timeout  time.Duration `mapstructure:"timeout"`
	} `mapstructure:"query"`
	Catalog struct {
		RefreshInterval time.Duration `mapstructure:"refresh_interval"`
	} `mapstructure:"catalog"`
	IVT struct {
		Enabled         bool          `mapstructure:"enabled"`
		DenyCIDRs       []string      `mapstructure:"deny_cidrs"`
		DenyUserAgents  []string      `mapstructure:"deny_user_agents"`
		ClickWindow     time.Duration `mapstructure:"click_window"`
		ClickTableBytes int           `mapstructure:"click_table_bytes"`
	} `mapstructure:"ivt"`
	Geo struct {
		MMDBPath string `mapstructure:"mmdb_path"`
	} `mapstructure:"geo"`
	Debug struct {
		PprofAddr string `mapstructure:"pprof_addr"`
	} `mapstructure:"debug"`
	Shutdown struct {
		Timeout time.Duration `mapstructure:"timeout"`
	} `mapstructure:"shutdown"`
}

// RateRule is one route class's per-client token bucket: RPS refills it up to Burst; RPS 0 disables the class.
type RateRule struct {
	RPS   float64 `mapstructure:"rps"`
	Burst int     `mapstructure:"burst"`
}

// Setting documents one key; Defaults is the single source for the README table and for viper.
type Setting struct {
	Key     string
	Default any
	Help    string
}

// Env returns the environment variable for the key.
func (s Setting) Env() string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(s.Key, ".", "_"))
}

// Settings lists every key with its default.
var Settings = []Setting{
	{"http.addr", ":8080", "listen address of the HTTP server"},
	{"http.max_body_bytes", 1 << 20, "largest request body; larger answers 413"},
	{"http.body_buffer_bytes", 8 << 20, "memory for request bodies over 8 KiB being read at once, all connections together (in power-of-two buffers from 16 KiB); a body waits for room, and gets 503 + Retry-After if none frees within read_timeout; at least max_body_bytes"},
	{"http.trusted_proxies", []string{}, "CIDRs or IPs of proxies whose X-Forwarded-For is believed (comma-separated in env)"},
	{"http.read_timeout", "10s", "time to read a whole request (slowloris bound)"},
	{"http.write_timeout", "10s", "time to write a response"},
	{"http.idle_timeout", "60s", "keep-alive idle time"},
	{"http.max_conns_per_ip", 0, "concurrent connections per client IP (0 = unlimited)"},
	{"http.max_header_bytes", 8192, "request line + headers; larger answers 431 (also the per-connection read buffer)"},
	{"http.concurrency", 50000, "connections served at once (~20 KB each); past it new connections get 503"},
	{"http.cors_origins", []string{"*"}, `origins browsers may call the ingest routes from ("https://player.example.com"), "*" for any, empty to disable CORS there`},
	{"http.read_cors_origins", []string{}, `origins browsers may call every other route from (catalogue, analytics, admin); empty sends no CORS headers there`},
	{"http.read_token", "", "bearer token for the read routes (GET /ads*, analytics, /metrics) from non-loopback clients; admin.token works too; empty: loopback only"},
	{"http.public_reads", false, "serve the read routes to everyone without a token (only behind a gateway that authenticates)"},
	{"http.public_url", "", "base URL players reach this service at (https://track.example.com); every URL in /vast answers starts with it; empty: derived from each request's Host (development only)"},
	{"http.compress", true, "gzip (else deflate, zstd) the answers of the VAST tags, GET /ads and the analytics for clients that accept it, at the fastest level: a VAST tag of ~6 KB goes out as ~1 KB for ~15-21 µs of CPU; ingest answers and pixels never are; false leaves it to a proxy"},
	{"http.metrics_addr", "", "separate listener for /metrics, unguarded (e.g. 10.0.0.5:9100); when set /metrics leaves http.addr; empty: /metrics on http.addr, guarded like reads"},
	{"ratelimit.ingest.rps", 50.0, "per-client requests/s on ingest routes (0 disables); a client is an IPv4 address or an IPv6 /64"},
	{"ratelimit.ingest.burst", 200, "per-client burst on ingest routes"},
	{"ratelimit.query.rps", 10.0, "per-client requests/s on GET /ads* and analytics (0 disables)"},
	{"ratelimit.query.burst", 20, "per-client burst on query routes"},
	{"ratelimit.admin.rps", 5.0, "per-client requests/s on ads writes (0 disables)"},
	{"ratelimit.admin.burst", 20, "per-client burst on admin routes"},
	{"ratelimit.exempt", []string{"127.0.0.0/8", "::1"}, "CIDRs or IPs never rate limited, e.g. server-to-server senders (comma-separated in env)"},
	{"ratelimit.max_clients", 1000000, "client buckets kept per route class (~32–64 bytes each); past it new clients pass unlimited"},
	{"clickhouse.addr", "127.0.0.1:9000", "ClickHouse native protocol address; a comma-separated list is tried in order (any node of a cluster)"},
	{"clickhouse.database", "adtracker", "ClickHouse database (created by migrate)"},
	{"clickhouse.username", "default", "ClickHouse user"},
	{"clickhouse.password", "", "ClickHouse password"},
	{"clickhouse.cluster", "", "remote_servers cluster name: replicated tables + Distributed tables (docs/scaling.md); empty = one server"},
	{"clickhouse.compression", "auto", "native protocol compression: lz4, none, or auto (none when every address is loopback, lz4 otherwise)"},
	{"clickhouse.read_conns", 8, "connections for reads: analytics and the stored-event check of replays (docs/clickhouse-writes.md)"},
	{"clickhouse.write_conns", 0, "connections for inserts only, so slow reads never hold them; 0 = ingest.inserters + 1 (the replayer's)"},
	{"clickhouse.node_id", "", "this node's name in insert query ids (letters, digits, _), unique per node and kept across restarts; empty = generated once and kept in the file node_id of ingest.data_dir"},
	{"postgres.dsn", "postgres://adtracker:adtracker@127.0.0.1:5432/adtracker?sslmode=disable", "Postgres connection string"},
	{"log.level", "info", "debug, info, warn or error"},
	{"log.format", "json", "json or console"},
	{"admin.token", "", "bearer token for the admin API; empty disables admin routes"},
	{"migrate.on_start", true, "apply pending migrations when serve starts"},
	{"ingest.data_dir", ".data/ingest", "ring file, spill segments and dead letters"},
	{"ingest.batch_size", 24576, "rows per ClickHouse insert (sent in 2048-row chunks, so the inserter's memory does not grow with it; the ring holds the batch until it is stored)"},
	{"ingest.flush_interval", "1s", "longest a partial batch waits for an inserter; when the input pauses for 10 ms, a batch of at least batch_size/4 events, or one after a flush_interval without inserts, leaves at once; while the inserter is busy the batch keeps filling instead"},
	{"ingest.inserters", 1, "parallel ClickHouse inserts (each holds a batch in memory and in the ring)"},
	{"ingest.insert_timeout", "10s", "an insert slower than this is abandoned and its batch spilled"},
	{"ingest.ring_capacity", 262144, "ring slots (power of two); 64 bytes each in the ring file (262144 = 16 MiB), and as much again in `ring.mirror`; an event takes ceil((8 + encoded size) / 56) slots, ~4 for typical events, at most 9; a batch also leaves once it spans half the ring, so keep it ≥ 8 × batch_size for full batches"},
	{"ingest.spill_max_bytes", int64(1 << 30), "spill quota; past it new events get 503 + Retry-After"},
	{"ingest.fsync_interval", "1s", "how often the ring's mirror and the spill are flushed to disk (bounds loss on a machine crash); `0` turns both off (no `ring.mirror`)"},
	{"ingest.dedup_window", 262144, "client event_ids remembered to drop retried duplicates (kept across a clean restart in data_dir/dedup)"},
	{"ingest.replay_max_attempts", 10, "a spill record ClickHouse refuses this many times while it answers ping is quarantined to the dead-letter directory (0: no count bound)"},
	{"ingest.replay_max_age", "15m", "a spill record ClickHouse keeps refusing this long (while it answers ping) is quarantined (0: no age bound)"},
	{"ingest.max_future_skew", "5m", "event timestamps further in the future are rejected"},
	{"ingest.max_age", "168h", "event timestamps older than this are rejected"},
	{"ingest.max_batch_items", 10000, "events in one POST /events; a batch with more is refused whole with 413 (errors are listed for its first 100 items only)"},
	{"ingest.enqueue_wait", "200ms", "how long a request whose event finds the ring full waits for an insert to free room before it is answered 503 + Retry-After (0: refuse at once)"},
	{"ingest.durable", true, "ring in a memory-mapped file (survives SIGKILL); false keeps it in process memory"},
	{"ingest.memory_limit", int64(64 << 20), "soft limit in bytes on the Go heap besides the ring (runtime/debug.SetMemoryLimit; an in-memory ring is added to it); GOMEMLIMIT overrides it; 0 disables"},
	{"query.max_range", "9600h", "longest analytics window (400 days); longer answers 400"},
	{"query.timeout", "10s", "ClickHouse time per analytics request; past it 503"},
	{"catalog.refresh_interval", "30s", "full reload of the ad catalogue snapshot (NOTIFY updates it in between)"},
	{"ivt.enabled", true, "flag invalid traffic at ingest (crawlers, prefetches, deny lists, duplicate clicks; README, \"Invalid traffic and enrichment\"); flagged events are stored with their reason and left out of the figures"},
	{"ivt.deny_cidrs", []string{}, "CIDRs or IPs whose events are flagged deny_ip, e.g. data centres (comma-separated in env)"},
	{"ivt.deny_user_agents", []string{}, "user agents containing one of these (ASCII case-insensitive substrings) are flagged deny_user_agent (comma-separated in env)"},
	{"ivt.click_window", "30m", "a client's further clicks on the same ad within this of its counted click are flagged duplicate_click (1 s resolution; 0 disables)"},
	{"ivt.click_table_bytes", 8 << 20, "memory remembering counted clicks, per process: 64-byte buckets of 7 clicks (8 MiB = 917504 clicks); when a bucket is full its oldest click is forgotten"},
	{"geo.mmdb_path", "", "MaxMind-format country or city database (.mmdb: GeoLite2, DB-IP Lite) for the country column; empty leaves country empty"},
	{"debug.pprof_addr", "", "address for net/http/pprof profiles (e.g. 127.0.0.1:6060); empty disables"},
	{"shutdown.timeout", "30s", "time to drain the ring on SIGTERM; what is left stays in the ring file"},
}

// Load builds the configuration. path may be empty. A YAML file with a key that is not a setting is an error naming the key, because
// a misspelt key silently falling back to a default is how production outages start.
func Load(path string) (*Config, error) {
	v := viper.New()
	for _, s := range Settings {
		v.SetDefault(s.Key, s.Default)
		if err := v.BindEnv(s.Key, s.Env()); err != nil {
			return nil, err
		}
	}
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config file: %w", err)
		}
		file := viper.New()
		file.SetConfigType("yaml")
		if err := file.ReadConfig(bytes.NewReader(raw)); err != nil {
			return nil, fmt.Errorf("config file %s: not valid YAML: %w", path, err)
		}
		if unknown := unknownKeys(file.AllKeys()); len(unknown) > 0 {
			return nil, fmt.Errorf("config file %s: unknown key %s (see the configuration table in README.md)", path, strings.Join(unknown, ", "))
		}
		v.SetConfigType("yaml")
		if err := v.ReadConfig(bytes.NewReader(raw)); err != nil {
			return nil, fmt.Errorf("config file %s: %w", path, err)
		}
	}
	var c Config
	err := v.Unmarshal(&c, func(dc *mapstructure.DecoderConfig) {
		dc.ErrorUnused = true
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
		)
	})
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return &c, c.validate()
}

func unknownKeys(keys []string) []string {
	known := map[string]bool{}
	for _, s := range Settings {
		known[s.Key] = true
	}
	var out []string
	for _, k := range keys {
		if !known[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func (c *Config) validate() error {
	switch {
	case c.Log.Format != "json" && c.Log.Format != "console":
		return fmt.Errorf("config: log.format must be json or console, not %q", c.Log.Format)
	case c.Ingest.RingCapacity < 2 || c.Ingest.RingCapacity&(c.Ingest.RingCapacity-1) != 0:
		return fmt.Errorf("config: ingest.ring_capacity must be a power of two, not %d", c.Ingest.RingCapacity)
	case c.ClickHouse.Compression != "auto" && c.ClickHouse.Compression != "lz4" && c.ClickHouse.Compression != "none":
		return fmt.Errorf("config: clickhouse.compression must be auto, lz4 or none, not %q", c.ClickHouse.Compression)
	case c.Ingest.BatchSize < 1:
		return fmt.Errorf("config: ingest.batch_size must be positive")
	case c.Ingest.FlushInterval <= 0:
		return fmt.Errorf("config: ingest.flush_interval must be positive")
	case c.HTTP.MaxBodyBytes < 1024:
		return fmt.Errorf("config: http.max_body_bytes must be at least 1024")
	case c.HTTP.BodyBuffer < c.HTTP.MaxBodyBytes:
		return fmt.Errorf("config: http.body_buffer_bytes (%d) must be at least http.max_body_bytes (%d)", c.HTTP.BodyBuffer, c.HTTP.MaxBodyBytes)
	case c.HTTP.MaxHeaderBytes < 1024:
		return fmt.Errorf("config: http.max_header_bytes must be at least 1024")
	case c.HTTP.Concurrency < 1:
		return fmt.Errorf("config: http.concurrency must be positive")
	case c.Ingest.MaxBatchItems < 1:
		return fmt.Errorf("config: ingest.max_batch_items must be positive")
	case c.RateLimit.MaxClients < 1:
		return fmt.Errorf("config: ratelimit.max_clients must be positive")
	case c.ClickHouse.ReadConns < 1:
		return fmt.Errorf("config: clickhouse.read_conns must be positive")
	case c.ClickHouse.WriteConns < 0:
		return fmt.Errorf("config: clickhouse.write_conns must not be negative (0 = ingest.inserters + 1)")
	case c.ClickHouse.NodeID != "" && !nodeIDRE.MatchString(c.ClickHouse.NodeID):
		return fmt.Errorf("config: clickhouse.node_id %q: use 1-64 letters, digits and underscores", c.ClickHouse.NodeID)
	case c.IVT.ClickWindow < 0:
		return fmt.Errorf("config: ivt.click_window must not be negative (0 disables the duplicate-click check)")
	case c.IVT.ClickTableBytes < 64:
		return fmt.Errorf("config: ivt.click_table_bytes must be at least 64 (one bucket)")
	case c.Ingest.EnqueueWait < 0 || c.Ingest.EnqueueWait > 10*time.Second:
		return fmt.Errorf("config: ingest.enqueue_wait must be between 0 (refuse at once) and 10s, not %s", c.Ingest.EnqueueWait)
	case c.Ingest.ReplayMaxAttempts < 0 || c.Ingest.ReplayMaxAge < 0:
		return fmt.Errorf("config: ingest.replay_max_attempts and ingest.replay_max_age must not be negative (0 disables the bound)")
	}
	for _, r := range []struct {
		name string
		rule RateRule
	}{{"ingest", c.RateLimit.Ingest}, {"query", c.RateLimit.Query}, {"admin", c.RateLimit.Admin}} {
		if r.rule.RPS < 0 || r.rule.Burst < 0 {
			return fmt.Errorf("config: ratelimit.%s.rps and ratelimit.%s.burst must not be negative", r.name, r.name)
		}
	}
	for _, l := range []struct {
		key  string
		list []string
	}{{"http.cors_origins", c.HTTP.CORSOrigins}, {"http.read_cors_origins", c.HTTP.ReadCORS}} {
		key := l.key
		for _, o := range l.list {
			o = strings.TrimSpace(o)
			if o == "" || o == "*" {
				continue
			}
			// An origin is scheme://host[:port] and nothing else; a path here would never match a browser's Origin header.
			rest, ok := strings.CutPrefix(o, "https://")
			if !ok {
				rest, ok = strings.CutPrefix(o, "http://")
			}
			if !ok || rest == "" || strings.ContainsAny(strings.TrimSuffix(rest, "/"), "/?#* ") {
				return fmt.Errorf("config: %s: %q is not an origin like https://player.example.com (or *)", key, o)
			}
		}
	}
	return nil
}

// nodeIDRE is what storage/clickhouse accepts as a node id: no '-', which separates the parts of an insert's query id.
var nodeIDRE = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

// ClickHouseWriteConns is the size of the insert pool: clickhouse.write_conns, or one connection per inserter plus one for the
// replayer, which inserts spill records and pings while the inserters run.
func (c *Config) ClickHouseWriteConns() int {
	if c.ClickHouse.WriteConns > 0 {
		return c.ClickHouse.WriteConns
	}
	return max(c.Ingest.Inserters, 1) + 1
}

// Redacted returns the settings as key → value with secrets masked, for the startup log line.
func (c *Config) Redacted() map[string]any {
	out := map[string]any{}
	var walk func(prefix string, v reflect.Value, t reflect.Type)
	walk = func(prefix string, v reflect.Value, t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			key := f.Tag.Get("mapstructure")
			if prefix != "" {
				key = prefix + "." + key
			}
			if f.Type.Kind() == reflect.Struct {
				walk(key, v.Field(i), f.Type)
				continue
			}
			val := v.Field(i).Interface()
			switch {
			case secretKey(key):
				if val != "" {
					val = "[redacted]"
				}
			case strings.HasSuffix(key, "dsn"):
				val = redactDSN(val.(string))
			}
			if d, ok := val.(time.Duration); ok {
				val = d.String()
			}
			out[key] = val
		}
	}
	walk("", reflect.ValueOf(*c), reflect.TypeOf(*c))
	return out
}

// secretKey reports whether a setting holds a secret as a whole (clickhouse.password, admin.token, any later *.password/*.token).
func secretKey(key string) bool {
	last := key[strings.LastIndexByte(key, '.')+1:]
	return strings.Contains(last, "password") || strings.Contains(last, "token") || strings.Contains(last, "secret")
}

// secretParams are connection-string parameters whose values are secrets (libpq, pgx, clickhouse-go spellings).
var secretParams = map[string]bool{"password": true, "sslpassword": true, "pass": true, "passwd": true, "pwd": true, "secret": true, "token": true}

// redactDSN masks the secrets of a connection string for the log: the password of URL userinfo (scheme://user:pw@host), secret
// query parameters (?password=…, &sslpassword=…) and secret keys of a key=value DSN (host=h password='a b'). What it cannot read
// as either form is hidden whole rather than guessed at.
func redactDSN(dsn string) string {
	if dsn == "" {
		return ""
	}
	if i := strings.Index(dsn, "://"); i >= 0 {
		return redactURL(dsn[:i+3], dsn[i+3:])
	}
	if !strings.Contains(dsn, "=") {
		return dsn // a bare host or path carries no secret
	}
	out, ok := redactKeyValues(dsn)
	if !ok {
		return "[redacted: not a key=value connection string]"
	}
	return out
}

// redactURL masks the userinfo password and secret query parameters. The userinfo ends at the last '@' before the query, so a
// password holding '@' or '/' is still masked whole; a path with an '@' makes it mask more than the password, never less.
func redactURL(scheme, rest string) string {
	query := ""
	hasQuery := false
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		rest, query, hasQuery = rest[:q], rest[q+1:], true
	}
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		user := rest[:at]
		if c := strings.IndexByte(user, ':'); c >= 0 {
			user = user[:c] + ":[redacted]"
		}
		rest = user + rest[at:]
	}
	if hasQuery {
		parts := strings.Split(query, "&")
		for i, p := range parts {
			k, _, found := strings.Cut(p, "=")
			if uk, err := url.QueryUnescape(k); err == nil {
				k = uk
			}
			if found && secretParams[strings.ToLower(strings.TrimSpace(k))] {
				parts[i] = p[:strings.IndexByte(p, '=')] + "=[redacted]"
			}
		}
		rest += "?" + strings.Join(parts, "&")
	}
	return scheme + rest
}

// redactKeyValues masks secret values of a libpq key=value string: keys and values separated by '=' with optional spaces, values
// bare or single-quoted with backslash escapes. ok is false when the string does not scan as that form.
func redactKeyValues(s string) (string, bool) {
	var b strings.Builder
	i := 0
	for i < len(s) {
		if s[i] == ' ' || s[i] == '\t' || s[i] == '\n' {
			b.WriteByte(s[i])
			i++
			continue
		}
		eq := strings.IndexByte(s[i:], '=')
		if eq <= 0 {
			return "", false
		}
		key := strings.TrimSpace(s[i : i+eq])
		if key == "" || strings.ContainsAny(key, " \t'") {
			return "", false
		}
		b.WriteString(s[i : i+eq+1])
		i += eq + 1
		for i < len(s) && s[i] == ' ' {
			b.WriteByte(' ')
			i++
		}
		start := i
		if i < len(s) && s[i] == '\'' {
			i++
			for i < len(s) && s[i] != '\'' {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(s) {
				return "", false // unterminated quote: the rest may all be the secret
			}
			i++
		} else {
			for i < len(s) && s[i] != ' ' && s[i] != '\t' && s[i] != '\n' {
				i++
			}
		}
		if secretParams[strings.ToLower(key)] {
			b.WriteString("[redacted]")
		} else {
			b.WriteString(s[start:i])
		}
	}
	return b.String(), true
}
