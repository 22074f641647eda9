package main

// End-to-end tests: the real binary as a child process against a real Postgres (ADTRACKER_TEST_PG_DSN) and a private ClickHouse
// child process, so faults — ClickHouse killed, adtracker SIGKILLed or SIGTERMed — are real.

import (
	"bytes"
	"context"
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

	"github.com/adtracker/adtracker/internal/testenv"
	"github.com/adtracker/adtracker/storage/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func binary(t *testing.T) string {
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
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
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
		c := exec.Command(binary(t), cmd)
		c.Env = s.env
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("adtracker %s: %v\n%s", cmd, err, out)
		}
	}
	t.Cleanup(func() {
		if s.srv != nil {
			s.srv.Process.Signal(syscall.SIGKILL)
			s.srv.Wait()
		}
		if t.Failed() {
			s.logMu.Lock()
			t.Logf("adtracker log:\n%s", s.logs.String())
			s.logMu.Unlock()
		}
	})
	return s
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
	s.srv = exec.Command(binary(s.t), "serve")
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
			defer s.logMu.Unlock()
			s.t.Fatalf("adtracker did not start: %v\n%s", err, s.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *stack) kill() {
	s.srv.Process.Signal(syscall.SIGKILL)
	s.srv.Wait()
	s.srv = nil
}

// term sends SIGTERM and returns the exit code and how long the exit took.
func (s *stack) term() (int, time.Duration) {
	start := time.Now()
	s.srv.Process.Signal(syscall.SIGTERM)
	err := s.srv.Wait()
	s.srv = nil
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
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

// load sends impressions with client event_ids from several goroutines until stop is closed (or max is reached), and records the
// ids answered 202. Requests that fail (server restarting) are not retried: their events were never answered.
type load struct {
	mu       sync.Mutex
	answered map[string]bool
	sent     atomic.Int64
	non2xx   atomic.Int64
	stop     chan struct{}
	wg       sync.WaitGroup
}

func startLoad(t *testing.T, url string, workers int, max int64) *load {
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
				if n > max {
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

// verifyExactlyOnce waits until every answered id is in ClickHouse, then checks that nothing is stored twice and the spill is empty.
func (s *stack) verifyExactlyOnce(answered map[string]bool) {
	t := s.t
	t.Helper()
	c := s.conn()
	ctx := context.Background()
	var stored map[string]bool
	deadline := time.Now().Add(90 * time.Second)
	for {
		stored = map[string]bool{}
		rows, err := c.Query(ctx, "SELECT toString(event_id) FROM events")
		if err == nil {
			for rows.Next() {
				var id string
				rows.Scan(&id)
				stored[id] = true
			}
			rows.Close()
		}
		missing := 0
		for id := range answered {
			if !stored[id] {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d answered events never reached ClickHouse", missing, len(answered))
		}
		time.Sleep(250 * time.Millisecond)
	}
	var total, distinct uint64
	if err := c.QueryRow(ctx, "SELECT count(), uniqExact(event_id) FROM events").Scan(&total, &distinct); err != nil {
		t.Fatal(err)
	}
	if total != distinct {
		t.Fatalf("%d rows but %d distinct event_ids: %d stored twice", total, distinct, total-distinct)
	}
	t.Logf("answered %d, stored %d rows (all answered present, none twice)", len(answered), total)
	deadline = time.Now().Add(30 * time.Second)
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
