package main

// End-to-end tests: the real binary as a child process against a real Postgres (ADTRACKER_TEST_PG_DSN) and a private ClickHouse
// child process, so faults — ClickHouse killed, adtracker SIGKILLed or SIGTERMed — are real.

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/valyala/fasthttp"

	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/internal/testenv"
	"github.com/adtracker/adtracker/storage/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func adtrackerBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "adtracker-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "adtracker")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// stack is one adtracker under test with its own ClickHouse and data directory.
type stack struct {
	t       *testing.T
	ch      *testenv.ClickHouseProc
	env     []string
	dataDir string
	url     string
	srv     *exec.Cmd
	logs    *bytes.Buffer
	logMu   sync.Mutex
}

func newStack(t *testing.T, extraEnv ...string) *stack {
	t.Helper()
	chp := testenv.StartClickHouse(t)
	dsn := pgtest.DSN(t)
	s := &stack{t: t, ch: chp, dataDir: t.TempDir()}
	port := testenv.FreePort(t)
	s.url = "http://127.0.0.1:" + strconv.Itoa(port)
	s.env = append(os.Environ(),
		"ADTRACKER_HTTP_ADDR=127.0.0.1:"+strconv.Itoa(port),
		"ADTRACKER_POSTGRES_DSN="+dsn,
		"ADTRACKER_CLICKHOUSE_ADDR="+chp.Addr,
		"ADTRACKER_INGEST_DATA_DIR="+s.dataDir,
		"ADTRACKER_INGEST_FLUSH_INTERVAL=100ms",
		"ADTRACKER_INGEST_INSERT_TIMEOUT=3s",
		"ADTRACKER_INGEST_RING_CAPACITY=65536",
		"ADTRACKER_LOG_LEVEL=info",
	)
	s.env = append(s.env, extraEnv...)
	for _, cmd := range []string{"migrate", "seed"} {
		c := exec.Command(adtrackerBin(t), cmd)
		c.Env = s.env
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("adtracker %s: %v\n%s", cmd, err, out)
		}
	}
	t.Cleanup(s.cleanup)
	return s
}

// cleanup kills the server if it still runs and prints its log when the test failed (or ADTRACKER_TEST_LOGS is set).
func (s *stack) cleanup() {
	if s.srv != nil {
		_ = s.srv.Process.Signal(syscall.SIGKILL)
		_ = s.srv.Wait() // reaps it; the error only reports the kill
	}
	if (s.t.Failed() || os.Getenv("ADTRACKER_TEST_LOGS") != "") && s.logs != nil {
		s.logMu.Lock()
		s.t.Logf("adtracker %s log:\n%s", s.url, s.logs.String())
		s.logMu.Unlock()
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (s *stack) start() {
	s.t.Helper()
	if s.logs == nil {
		s.logs = &bytes.Buffer{}
	}
	s.srv = exec.Command(adtrackerBin(s.t), "serve")
	s.srv.Env = s.env
	w := lockedWriter{&s.logMu, s.logs}
	s.srv.Stdout, s.srv.Stderr = w, w
	if err := s.srv.Start(); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			s.logMu.Lock()
			logs := s.logs.String()
			s.logMu.Unlock()
			s.t.Fatalf("adtracker did not start: %v\n%s", err, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *stack) kill() {
	_ = s.srv.Process.Signal(syscall.SIGKILL)
	_ = s.srv.Wait() // reaps it; the error only reports the kill
	s.srv = nil
}

// term sends SIGTERM and returns the exit code and how long the exit took.
func (s *stack) term() (int, time.Duration) {
	start := time.Now()
	_ = s.srv.Process.Signal(syscall.SIGTERM) // fails only when it already exited, which Wait reports
	err := s.srv.Wait()
	s.srv = nil
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	}
	return code, time.Since(start)
}

func (s *stack) conn() ch.Conn {
	s.t.Helper()
	c, err := ch.Open(&ch.Options{Addr: []string{s.ch.Addr}, Auth: ch.Auth{Database: "adtracker"}, DialTimeout: 2 * time.Second})
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { c.Close() })
	return c
}

// load sends impressions with client event_ids from several goroutines until stop is closed (or limit is reached), and records the
// ids answered 202. Requests that fail (server restarting) are not retried: their events were never answered.
type load struct {
	mu       sync.Mutex
	answered map[string]bool
	sent     atomic.Int64
	non2xx   atomic.Int64
	stop     chan struct{}
	wg       sync.WaitGroup
}

func startLoad(t *testing.T, url string, workers int, limit int64) *load {
	l := &load{answered: map[string]bool{}, stop: make(chan struct{})}
	client := &fasthttp.Client{MaxConnsPerHost: workers * 2, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	prefix := fmt.Sprintf("%08x", time.Now().UnixNano()&0xffffffff)
	for w := 0; w < workers; w++ {
		l.wg.Add(1)
		go func(w int) {
			defer l.wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				n := l.sent.Add(1)
				if n > limit {
					return
				}
				id := fmt.Sprintf("%s-%04x-4000-8000-%012x", prefix, w, i)
				req.Reset()
				req.SetRequestURI(url + "/ads/impression")
				req.Header.SetMethod("POST")
				req.SetBodyString(fmt.Sprintf(`{"ad_id":%d,"event_id":%q,"ip":"198.51.100.%d","video_playback_time":%d.5}`, i%3+1, id, w, i%30))
				if err := client.DoTimeout(req, resp, 5*time.Second); err != nil {
					time.Sleep(20 * time.Millisecond) // server down or restarting
					continue
				}
				if resp.StatusCode() != 202 {
					l.non2xx.Add(1)
					time.Sleep(5 * time.Millisecond)
					continue
				}
				l.mu.Lock()
				l.answered[id] = true
				l.mu.Unlock()
				time.Sleep(time.Millisecond) // paced: the point is faults under steady traffic, not peak rate
			}
		}(w)
	}
	return l
}

func (l *load) finish() map[string]bool {
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.answered
}

func (l *load) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.answered)
}

func (l *load) waitAnswered(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for l.count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("load reached only %d answered events", l.count())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitStored polls ClickHouse until every answered id is stored or the bound passes; it returns how many times each stored id is
// there and how many answered ids are missing.
func (s *stack) waitStored(answered map[string]bool, bound time.Duration) (map[string]int, int) {
	t := s.t
	t.Helper()
	c := s.conn()
	deadline := time.Now().Add(bound)
	for {
		stored := map[string]int{}
		rows, err := c.Query(context.Background(), "SELECT toString(event_id) FROM events")
		if err == nil {
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					t.Fatalf("scan event_id: %v", err)
				}
				stored[id]++
			}
			rows.Close()
		}
		missing := 0
		for id := range answered {
			if stored[id] == 0 {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			return stored, missing
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// verifyExactlyOnce waits until every answered id is in ClickHouse, then checks that nothing is stored twice and the spill is empty.
func (s *stack) verifyExactlyOnce(answered map[string]bool) {
	t := s.t
	t.Helper()
	c := s.conn()
	ctx := context.Background()
	if _, missing := s.waitStored(answered, 90*time.Second); missing > 0 {
		t.Fatalf("%d of %d answered events never reached ClickHouse", missing, len(answered))
	}
	var total, distinct uint64
	if err := c.QueryRow(ctx, "SELECT count(), uniqExact(toString(event_id)) FROM events").Scan(&total, &distinct); err != nil {
		t.Fatal(err)
	}
	if total != distinct {
		t.Fatalf("%d rows but %d distinct event_ids: %d stored twice", total, distinct, total-distinct)
	}
	t.Logf("answered %d, stored %d rows (all answered present, none twice)", len(answered), total)
	s.verifySpillEmpty()
}

// verifySpillEmpty waits (bounded) until the spill holds no records: only empty segment headers may remain.
func (s *stack) verifySpillEmpty() {
	t := s.t
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		segs, _ := filepath.Glob(filepath.Join(s.dataDir, "spill", "*.seg"))
		var size int64
		for _, f := range segs {
			if fi, err := os.Stat(f); err == nil {
				size += fi.Size()
			}
		}
		if size <= int64(8*len(segs)) { // only empty segment headers may remain
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("spill not drained: %d segments, %d bytes", len(segs), size)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestE2EClickHouseDownForTwentySeconds(t *testing.T) {
	s := newStack(t)
	s.start()
	l := startLoad(t, s.url, 8, 1000000)
	l.waitAnswered(t, 2000)
	s.ch.Kill()
	before := l.count()
	time.Sleep(20 * time.Second)
	during := l.count() - before
	s.ch.Start()
	l.waitAnswered(t, l.count()+2000)
	answered := l.finish()
	if during < 1000 {
		t.Fatalf("only %d events accepted while ClickHouse was down: ingest should keep accepting into spill", during)
	}
	t.Logf("accepted %d events during the 20 s outage", during)
	s.verifyExactlyOnce(answered)
}

func TestE2ESIGKILLMidStream(t *testing.T) {
	s := newStack(t)
	s.start()
	l := startLoad(t, s.url, 8, 1000000)
	for round := 0; round < 3; round++ {
		l.waitAnswered(t, l.count()+3000)
		s.kill()
		time.Sleep(200 * time.Millisecond)
		s.start()
	}
	l.waitAnswered(t, l.count()+2000)
	answered := l.finish()
	s.logMu.Lock()
	recovered := strings.Count(s.logs.String(), "recovered events accepted before an unclean stop")
	s.logMu.Unlock()
	t.Logf("restarts that recovered events from the ring file: %d of 3", recovered)
	s.verifyExactlyOnce(answered)
}

func TestE2ESIGTERMDrains(t *testing.T) {
	s := newStack(t, "ADTRACKER_SHUTDOWN_TIMEOUT=10s")
	s.start()
	l := startLoad(t, s.url, 8, 1000000)
	l.waitAnswered(t, 5000)
	code, took := s.term()
	if code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	if took > 10*time.Second+2*time.Second {
		t.Fatalf("SIGTERM exit took %v, timeout is 10s", took)
	}
	answered := l.finish()
	s.logMu.Lock()
	clean := strings.Contains(s.logs.String(), `"msg":"stopped"`)
	s.logMu.Unlock()
	if !clean {
		t.Fatal("no shutdown summary logged")
	}
	// Everything answered is already in ClickHouse (or spill) without a restart: check ClickHouse directly first.
	s.start()
	s.verifyExactlyOnce(answered)
	// A clean stop leaves nothing for recovery.
	s.logMu.Lock()
	defer s.logMu.Unlock()
	if strings.Contains(s.logs.String(), "recovered events accepted before an unclean stop") {
		t.Fatal("restart after a clean SIGTERM found events in the ring file")
	}
}

// N events through each ingest endpoint of the real binary → exactly N rows in ClickHouse with the fields that were sent.
func TestE2EEveryEndpointStoresExactRows(t *testing.T) {
	s := newStack(t)
	s.start()
	client := &fasthttp.Client{}
	now := time.Now().UTC().Truncate(time.Second).Add(-10 * time.Second)
	post := func(path, ctype, body string, header ...string) (int, string) { // header: name, value, …
		t.Helper()
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI(s.url + path)
		req.Header.SetMethod("POST")
		req.Header.SetContentType(ctype)
		req.Header.Set("User-Agent", "e2e-player/2.1")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		req.SetBodyString(body)
		if err := client.Do(req, resp); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode(), string(resp.Body())
	}
	get := func(path string) int {
		t.Helper()
		status, _, err := client.Get(nil, s.url+path)
		if err != nil {
			t.Fatal(err)
		}
		return status
	}
	const n = 200
	for i := 0; i < n; i++ {
		body := fmt.Sprintf(`{"ad_id":1,"timestamp":%q,"ip":"203.0.113.%d","video_playback_time":%d.25,"viewer_id":"v%d","session_id":"s1"}`,
			now.Format(time.RFC3339), i%250+1, i%60, i)
		if code, b := post("/ads/click", "application/json", body); code != 202 {
			t.Fatalf("click: %d %s", code, b)
		}
		if code, b := post("/ads/impression", "application/json", `{"ad_id":2,"ip":"2001:db8::7"}`); code != 202 {
			t.Fatalf("impression: %d %s", code, b)
		}
	}
	// One JSON-array batch and one NDJSON batch with every type once each, twice.
	types := []string{"impression", "click", "start", "first_quartile", "midpoint", "third_quartile", "complete", "skip", "pause", "resume", "mute", "unmute", "error"}
	var arr, nd strings.Builder
	arr.WriteString("[")
	for i, ty := range types {
		if i > 0 {
			arr.WriteString(",")
		}
		fmt.Fprintf(&arr, `{"type":%q,"ad_id":3,"video_playback_time":1}`, ty)
		fmt.Fprintf(&nd, "{\"type\":%q,\"ad_id\":3,\"video_playback_time\":1}\n", ty)
	}
	arr.WriteString("]")
	if code, b := post("/events", "application/json", arr.String()); code != 202 || !strings.Contains(b, `"accepted":13`) {
		t.Fatalf("batch: %d %s", code, b)
	}
	if code, b := post("/events", "application/x-ndjson", nd.String()); code != 202 || !strings.Contains(b, `"accepted":13`) {
		t.Fatalf("ndjson: %d %s", code, b)
	}
	vast := []string{"impression", "start", "firstQuartile", "midpoint", "thirdQuartile", "complete", "click", "skip", "pause", "resume", "mute", "unmute", "error"}
	for i := 0; i < n; i++ {
		ev := vast[i%len(vast)]
		if code := get(fmt.Sprintf("/t/%s?ad_id=2&pt=00:00:%02d.500&vid=px%d&cb=%08d", ev, i%60, i, i)); code != 200 {
			t.Fatalf("pixel %s: %d", ev, code)
		}
	}
	for i := 0; i < 7; i++ {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI(s.url + "/c/1")
		if err := client.Do(req, resp); err != nil || resp.StatusCode() != 302 || !strings.HasPrefix(string(resp.Header.Peek("Location")), "https://") {
			t.Fatalf("redirect: %v %d", err, resp.StatusCode())
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}
	// A body that starts with a UTF-8 byte order mark (.NET's Encoding.UTF8 writes one) is taken as the JSON after it.
	if code, b := post("/ads/impression", "application/json", "\xef\xbb\xbf{\"ad_id\":2,\"viewer_id\":\"bom\"}"); code != 202 {
		t.Fatalf("impression after a byte order mark: %d %s", code, b)
	}
	// A gzip body (SDKs that compress their batches) is refused with 415 naming Content-Encoding, and nothing of it is stored.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	fmt.Fprint(zw, `{"ad_id":2,"viewer_id":"gzip"}`)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if code, b := post("/ads/impression", "application/json", gz.String(), "Content-Encoding", "gzip"); code != 415 ||
		!strings.Contains(b, `"field":"Content-Encoding"`) {
		t.Fatalf("gzip body: %d %s", code, b)
	}
	// Rejected input never reaches ClickHouse.
	if code, _ := post("/ads/click", "application/json", `{"ad_id":424242}`); code != 422 {
		t.Fatalf("unknown ad: %d", code)
	}

	c := s.conn()
	ctx := context.Background()
	want := uint64(n + n + 26 + n + 7 + 1)
	deadline := time.Now().Add(20 * time.Second)
	var total uint64
	for {
		err := c.QueryRow(ctx, "SELECT count() FROM events").Scan(&total)
		if (err == nil && total >= want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // would any extra row still arrive?
	if err := c.QueryRow(ctx, "SELECT count() FROM events").Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total != want {
		t.Fatalf("%d rows, want exactly %d", total, want)
	}
	check := func(sql string, want string) {
		t.Helper()
		var got string
		if err := c.QueryRow(ctx, sql).Scan(&got); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if got != want {
			t.Fatalf("%s = %q, want %q", sql, got, want)
		}
	}
	// POST /ads/click: every field as sent.
	check("SELECT toString(count()) FROM events WHERE ad_id = 1 AND type = 'click' AND viewer_id != ''", fmt.Sprint(n))
	check("SELECT toString(count()) FROM events WHERE ad_id = 1 AND type = 'click' AND event_time = toDateTime('"+now.Format("2006-01-02 15:04:05")+"', 'UTC')", fmt.Sprint(n))
	check("SELECT toString(min(receive_time >= event_time)) FROM events", "1")
	check("SELECT IPv6NumToString(ip) FROM events WHERE viewer_id = 'v4'", "::ffff:203.0.113.5")
	check("SELECT toString(playback_ms) FROM events WHERE viewer_id = 'v4'", "4250")
	check("SELECT concat(session_id, '|', user_agent) FROM events WHERE viewer_id = 'v4'", "s1|e2e-player/2.1")
	// POST /ads/impression with an IPv6 address.
	check("SELECT toString(count()) FROM events WHERE ad_id = 2 AND type = 'impression' AND IPv6NumToString(ip) = '2001:db8::7'", fmt.Sprint(n))
	// Batches: each of the 13 types exactly twice.
	check("SELECT toString(groupArray(c)) FROM (SELECT count() AS c FROM events WHERE ad_id = 3 GROUP BY type)", "["+strings.TrimSuffix(strings.Repeat("2,", 13), ",")+"]")
	// Pixels: the VAST playhead and the camelCase names map to the schema.
	check("SELECT toString(playback_ms) FROM events WHERE viewer_id = 'px2'", "2500")
	check("SELECT toString(type) FROM events WHERE viewer_id = 'px2'", "first_quartile")
	check("SELECT toString(count()) FROM events WHERE viewer_id LIKE 'px%'", fmt.Sprint(n))
	// Click redirects: seven clicks for ad 1 without a viewer.
	check("SELECT toString(count()) FROM events WHERE ad_id = 1 AND type = 'click' AND viewer_id = ''", "7")
	check("SELECT concat(toString(count()), '|', toString(any(type))) FROM events WHERE viewer_id = 'bom'", "1|impression")
	check("SELECT toString(count()) FROM events WHERE viewer_id = 'gzip'", "0")
}

// Bad configuration fails fast: exit code non-zero and one log line that says what is wrong.
func TestBadConfigFailsFast(t *testing.T) {
	bin := adtrackerBin(t)
	dir := t.TempDir()
	f := func(name, yaml string, env []string, want string) {
		t.Helper()
		args := []string{"serve"}
		if yaml != "" {
			p := filepath.Join(dir, name+".yaml")
			if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			args = append(args, "--config", p)
		}
		cmd := exec.Command(bin, args...)
		cmd.Env = append(append(os.Environ(), "ADTRACKER_HTTP_ADDR=127.0.0.1:0", "ADTRACKER_INGEST_DATA_DIR="+dir), env...)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Fatalf("%s: exit %v, want non-zero\n%s", name, err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		last := lines[len(lines)-1]
		if !strings.Contains(last, want) {
			t.Fatalf("%s: last log line %q does not mention %q", name, last, want)
		}
		if took := time.Since(start); took > 20*time.Second {
			t.Fatalf("%s: took %v to fail", name, took)
		}
	}
	f("yaml", "http: [broken\n", nil, "not valid YAML")
	f("unknown", "ingest:\n  batchsize: 5\n", nil, "unknown key ingest.batchsize")
	dead := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	f("postgres", "", []string{"ADTRACKER_POSTGRES_DSN=postgres://u:secret@" + dead + "/x?connect_timeout=2"}, "postgres unreachable at start")
	if os.Getenv(pgtest.EnvDSN) != "" {
		f("clickhouse", "", []string{"ADTRACKER_POSTGRES_DSN=" + os.Getenv(pgtest.EnvDSN), "ADTRACKER_CLICKHOUSE_ADDR=" + dead}, "clickhouse unreachable at start")
	}
}

// spillRecord is one record found by reading segment files the way an operator's tool would: 8-byte header, then
// u32 length | u32 crc32c | payload frames.
type spillRecord struct {
	file       string
	off, end   int64 // frame start and end
	ids        []string
	payloadOff int64
}

func readSpill(t *testing.T, dir string) []spillRecord {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	var out []spillRecord
	for _, f := range segs {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for off := int64(8); off+8 <= int64(len(b)); {
			n := int64(binary.LittleEndian.Uint32(b[off:]))
			end := off + 8 + n
			if n == 0 || end > int64(len(b)) {
				break
			}
			var batch event.Batch
			if err := batch.UnmarshalRecord(b[off+8 : end]); err != nil {
				t.Fatal(err)
			}
			r := spillRecord{file: f, off: off, end: end, payloadOff: off + 8}
			var e event.Event
			if err := batch.Each(&e, func(e *event.Event) error { r.ids = append(r.ids, e.ID.String()); return nil }); err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
			off = end
		}
	}
	return out
}

// Scenario 8 of the chaos suite, in make test: spill segments damaged while the server is down (a flipped byte in one record, the
// last record torn) → the server starts, counts the damage, and inserts every intact record exactly once.
func TestE2ECorruptSpillAtStart(t *testing.T) {
	s := newStack(t, "ADTRACKER_INGEST_BATCH_SIZE=300", "ADTRACKER_SHUTDOWN_TIMEOUT=10s")
	s.start()
	s.ch.Kill()
	l := startLoad(t, s.url, 4, 1000000)
	l.waitAnswered(t, 4000)
	if code, _ := s.term(); code != 0 {
		t.Fatalf("SIGTERM exit %d", code)
	}
	answered := l.finish()
	recs := readSpill(t, filepath.Join(s.dataDir, "spill"))
	if len(recs) < 4 {
		t.Fatalf("only %d spill records; want several to damage one in the middle", len(recs))
	}
	lost := map[string]bool{}
	// Flip a payload byte of a record in the middle.
	mid := recs[len(recs)/2]
	f, err := os.OpenFile(mid.file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var bb [1]byte
	if _, err := f.ReadAt(bb[:], mid.payloadOff+40); err != nil {
		t.Fatal(err)
	}
	bb[0] ^= 0x5A
	if _, err := f.WriteAt(bb[:], mid.payloadOff+40); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, id := range mid.ids {
		lost[id] = true
	}
	// Tear the last record: cut its file in the middle of the payload.
	last := recs[len(recs)-1]
	if last.file == mid.file && last.off == mid.off {
		t.Fatal("middle and last record coincide")
	}
	if err := os.Truncate(last.file, last.payloadOff+(last.end-last.payloadOff)/2); err != nil {
		t.Fatal(err)
	}
	for _, id := range last.ids {
		lost[id] = true
	}
	s.ch.Start()
	s.start()
	want := map[string]bool{}
	for id := range answered {
		if !lost[id] {
			want[id] = true
		}
	}
	s.verifyExactlyOnce(want)
	var stored uint64
	if err := s.conn().QueryRow(context.Background(), "SELECT count() FROM events").Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != uint64(len(want)) {
		t.Fatalf("stored %d rows, want exactly the %d intact ones (%d lost to the damage)", stored, len(want), len(lost))
	}
	s.logMu.Lock()
	defer s.logMu.Unlock()
	if !strings.Contains(s.logs.String(), "spill damage found at start") {
		t.Fatal("the damage was not reported")
	}
	t.Logf("%d answered, %d spill records, %d events in the two damaged records, %d stored", len(answered), len(recs), len(lost), stored)
}
