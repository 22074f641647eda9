package loadgen

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"github.com/adtracker/adtracker/ingest"
	"github.com/adtracker/adtracker/ingest/decode"
	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/ingest/pipeline"
	chstore "github.com/adtracker/adtracker/storage/clickhouse"
	"github.com/adtracker/adtracker/storage/clickhouse/chtest"
)

type anyAd struct{}

func (anyAd) Lookup(uint64) (ingest.Ad, bool) { return ingest.Ad{Accepts: true}, true }

// lossy answers 2xx but drops every nth event: the bug --verify exists to catch.
type lossy struct {
	next ingest.Enqueuer
	n    atomic.Int64
	i    atomic.Int64
}

func (l *lossy) Enqueue(e *event.Event) error {
	if n := l.n.Load(); n > 0 && l.i.Add(1)%n == 0 {
		return nil
	}
	return l.next.Enqueue(e)
}

// ingestStack is adtracker's ingest path in process — real handlers, real pipeline, real ClickHouse sink — on a fresh database.
type ingestStack struct {
	url  string
	vc   VerifyConfig
	db   *chstore.DB
	loss *lossy
}

func newIngestStack(t *testing.T) *ingestStack {
	t.Helper()
	db, addr := chtest.Migrated(t)
	pcfg := pipeline.Defaults()
	pcfg.Dir = t.TempDir()
	pcfg.RingCapacity = 1 << 14
	pcfg.FlushInterval = 50 * time.Millisecond
	pipe, err := pipeline.Open(pcfg, chstore.NewSink(db), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &ingestStack{db: db, loss: &lossy{next: pipe}}
	h := &ingest.Handlers{Decoder: &decode.Decoder{}, Queue: s.loss, Catalog: anyAd{}, IDs: event.NewIDs()}
	r := router.New()
	h.Register(r)
	r.GET("/healthz", func(*fasthttp.RequestCtx) {})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: r.Handler}
	go func() { _ = srv.Serve(ln) }() // returns only at Shutdown, which the cleanup calls
	t.Cleanup(func() {
		srv.Shutdown()
		pipe.Close(context.Background())
	})
	s.url = "http://" + ln.Addr().String()
	s.vc = VerifyConfig{Addr: addr, Database: db.Database, Stall: 3 * time.Second, Settle: 300 * time.Millisecond, Timeout: time.Minute}
	return s
}

func (s *ingestStack) run(t *testing.T, c Config) (*Result, *VerifyResult) {
	t.Helper()
	c.URL = s.url
	c.Conns = 4
	c.Traffic.Ads = []uint64{11, 12, 13}
	var err error
	if s.vc.BaseRows, err = BaseRows(context.Background(), s.vc); err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	v, err := Verify(context.Background(), s.vc, res)
	if err != nil {
		t.Fatal(err)
	}
	return res, v
}

func TestVerifyAgainstClickHouse(t *testing.T) {
	s := newIngestStack(t)

	res, v := s.run(t, Config{Mode: ModeSingle, Count: 3000})
	if !v.OK || v.Acked != 3000 || v.StoredAcked != 3000 || v.Rows != 3000 || v.Missing != 0 || v.E2ERate <= 0 {
		t.Fatalf("single: %+v", v)
	}
	// The settle's polls read system.parts only: the run's ids are scanned when the table grew, not at every poll.
	if v.RunCounts < 1 || v.RunCounts >= v.Polls {
		t.Fatalf("single: the run's rows counted %d times in %d polls", v.RunCounts, v.Polls)
	}

	_, vb := s.run(t, Config{Mode: ModeBatch, Batch: 100, NDJSON: true, Count: 2000})
	if !vb.OK || vb.StoredAcked != 2000 {
		t.Fatalf("batch: %+v", vb)
	}

	// Stored twice: three of the first run's rows copied once more.
	err := s.db.Conn.Exec(context.Background(), fmt.Sprintf(
		"INSERT INTO events SELECT * FROM events WHERE startsWith(toString(event_id), '%s') LIMIT 3", res.Prefix))
	if err != nil {
		t.Fatal(err)
	}
	again, err := Verify(context.Background(), s.vc, res)
	if err != nil {
		t.Fatal(err)
	}
	if again.OK || again.Duplicates != 3 || again.Missing != 0 {
		t.Fatalf("after duplicating 3 rows: %+v", again)
	}

	// Answered 202, never stored.
	s.loss.n.Store(100)
	_, vl := s.run(t, Config{Mode: ModePixel, Count: 1000})
	if vl.OK || vl.Missing != 10 || vl.StoredAcked != 990 {
		t.Fatalf("with every 100th event dropped: %+v", vl)
	}
}

// A table that lost rows during the run (truncated, say) never grows by the acked count past BaseRows: the run's rows are counted
// once the table stands still, instead of the check giving up as stalled.
func TestVerifyTableShrankDuringRun(t *testing.T) {
	s := newIngestStack(t)
	res, v := s.run(t, Config{Mode: ModeSingle, Count: 300})
	if !v.OK {
		t.Fatalf("%+v", v)
	}
	vc := s.vc
	vc.BaseRows = 1 << 40
	v2, err := Verify(context.Background(), vc, res)
	if err != nil {
		t.Fatal(err)
	}
	if !v2.OK || v2.StoredAcked != 300 || v2.RunCounts != 1 {
		t.Fatalf("with a base above the table's rows: %+v", v2)
	}
}

// Events the server refused must not be counted as stored, and ones it refused but stored anyway are a mismatch.
func TestVerifyRefusedEvents(t *testing.T) {
	s := newIngestStack(t)
	res, v := s.run(t, Config{Mode: ModeSingle, Count: 500})
	if !v.OK {
		t.Fatalf("%+v", v)
	}
	// Pretend the server had answered 503 to 20 of them: they are stored, so the check must say so.
	evs := make([]IDRange, 0, 20)
	rows, err := s.db.Conn.Query(context.Background(), fmt.Sprintf(
		"SELECT toString(event_id) FROM events WHERE startsWith(toString(event_id), '%s') LIMIT 20", res.Prefix))
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		u, err := event.ParseUUID([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, RangeOf(u))
	}
	rows.Close()
	res.RefusedIDs = evs
	res.Acked -= 20
	v2, err := Verify(context.Background(), s.vc, res)
	if err != nil {
		t.Fatal(err)
	}
	if v2.OK || v2.RefusedStored != 20 || v2.StoredAcked != 480 || v2.Missing != 0 {
		t.Fatalf("refused but stored: %+v", v2)
	}
	// The same 20 as unknown (timeouts): stored or not, that is fine.
	res.UnknownIDs, res.RefusedIDs = evs, nil
	v3, err := Verify(context.Background(), s.vc, res)
	if err != nil {
		t.Fatal(err)
	}
	if !v3.OK || v3.UnknownStored != 20 {
		t.Fatalf("unknown and stored: %+v", v3)
	}
}
