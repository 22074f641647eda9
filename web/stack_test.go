package web_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/adtracker/adtracker/catalog"
	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/ingest/pipeline"
	"github.com/adtracker/adtracker/query"
	"github.com/adtracker/adtracker/ratelimit"
	"github.com/adtracker/adtracker/server"
	chstore "github.com/adtracker/adtracker/storage/clickhouse"
	"github.com/adtracker/adtracker/storage/clickhouse/chtest"
	"github.com/adtracker/adtracker/storage/postgres"
	"github.com/adtracker/adtracker/storage/postgres/pgtest"
	"github.com/adtracker/adtracker/web"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const adminToken = "dashboard-test-admin"

// stack is a full server on real Postgres and ClickHouse, assembled as cmd/adtracker/serve.go does (ingest routes aside: the events
// are seeded through the pipeline, with timestamps the HTTP ingest would refuse as too old).
type stack struct {
	base string
	ads  []postgres.Ad // A, B, C
	pipe *pipeline.Pipeline
	// accepted is what the seed enqueued; acceptedBefore what this process had enqueued before it (the counter behind "accepted
	// since start" is the process's, and -count=2 runs the tests twice in one process).
	accepted, acceptedBefore int64
}

// seeded is one ad's events at one moment: count of each type.
type seeded struct {
	ad    int // index into stack.ads
	ago   time.Duration
	typ   event.Type
	count int
}

// seed is laid out so that the last hour, 24 hours and 7 days differ, and so that sorting by clicks and by impressions order the
// ads differently in each.
var seed = []seeded{
	{0, 20 * time.Minute, event.TypeImpression, 10}, {0, 20 * time.Minute, event.TypeClick, 3},
	{0, 20 * time.Minute, event.TypeStart, 8}, {0, 20 * time.Minute, event.TypeFirstQuartile, 6},
	{0, 20 * time.Minute, event.TypeMidpoint, 5}, {0, 20 * time.Minute, event.TypeThirdQuartile, 4},
	{0, 20 * time.Minute, event.TypeComplete, 2}, {0, 5 * time.Hour, event.TypeImpression, 10},
	{1, 20 * time.Minute, event.TypeImpression, 5}, {1, 20 * time.Minute, event.TypeClick, 4},
	{1, 20 * time.Minute, event.TypeStart, 2}, {1, 20 * time.Minute, event.TypeFirstQuartile, 2},
	{1, 20 * time.Minute, event.TypeMidpoint, 1}, {1, 20 * time.Minute, event.TypeThirdQuartile, 1},
	{1, 20 * time.Minute, event.TypeComplete, 1}, {1, 72 * time.Hour, event.TypeImpression, 100},
	{2, 5 * time.Hour, event.TypeImpression, 50}, {2, 5 * time.Hour, event.TypeClick, 1},
}

func newStack(t *testing.T) *stack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pg, err := postgres.Open(ctx, pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Close)
	if _, err := pg.MigrateEmbedded(ctx); err != nil {
		t.Fatal(err)
	}
	st := &stack{}
	for _, name := range []string{"Alpha spot", "Bravo spot", "Charlie spot"} {
		ad, err := pg.Create(ctx, postgres.Ad{Name: name, TargetURL: "https://example.com/" + name[:5], DurationSeconds: 30, Status: "active"})
		if err != nil {
			t.Fatal(err)
		}
		st.ads = append(st.ads, ad)
	}
	ch, _ := chtest.Migrated(t)
	cat := catalog.New(pg, catalog.Config{Logger: zap.NewNop()})
	if err := cat.Reload(ctx); err != nil {
		t.Fatal(err)
	}

	pcfg := pipeline.Defaults()
	pcfg.Dir = t.TempDir()
	pcfg.RingCapacity = 1 << 12
	pcfg.InMemoryRing = true
	pcfg.FlushInterval = 20 * time.Millisecond
	pipe, err := pipeline.Open(pcfg, chstore.NewSink(ch), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	st.pipe = pipe
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := pipe.Close(ctx); err != nil {
			t.Errorf("closing the pipeline: %v", err)
		}
	})
	reg := prometheus.NewRegistry()
	reg.MustRegister(pipe.Collectors()...)
	sources := web.PipelineSources(pipe)
	st.acceptedBefore = sources.Accepted()
	status := web.NewStatus(sources)
	bg, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	go status.Run(bg)

	st.seed(t)

	srv := server.New(server.Options{
		MaxBodyBytes: 1 << 20, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: 10 * time.Second,
		ReadTokens: []string{"", adminToken}, RouteClass: web.RouteClass(ratelimit.ClassOf), Log: zap.NewNop(), Registry: reg,
	})
	catalog.RegisterRoutes(srv.Router, &catalog.Handlers{Repo: pg, AdminToken: adminToken, Logger: zap.NewNop()})
	query.New(ch.Conn, ch.Database).Register(srv.Router)
	web.NewHandler().Register(srv.Router, status)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	st.base = "http://" + ln.Addr().String()
	// The status samples once a second: wait until a sample has seen every seeded row stored, so the live page has figures.
	deadline := time.Now().Add(30 * time.Second)
	for status.Snapshot().InsertedTotal < st.accepted {
		if time.Now().After(deadline) {
			t.Fatalf("status saw %d rows stored, want %d", status.Snapshot().InsertedTotal, st.accepted)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return st
}

// seed enqueues the seed events and waits until ClickHouse holds them all.
func (st *stack) seed(t *testing.T) {
	t.Helper()
	ids := event.NewIDs()
	now := time.Now()
	var e event.Event
	for _, s := range seed {
		for i := 0; i < s.count; i++ {
			e.Reset()
			e.ID = ids.Next()
			e.Type = s.typ
			e.AdID = uint64(st.ads[s.ad].ID)
			e.EventTime = now.Add(-s.ago).Unix()
			e.ReceiveTime = now.Unix()
			e.IP = [16]byte{10: 0xff, 11: 0xff, 12: 203, 13: 0, 14: 113, 15: byte(1 + i%200)}
			if err := st.pipe.Enqueue(&e); err != nil {
				t.Fatal(err)
			}
			st.accepted++
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for st.pipe.Inserted.Load() < st.accepted {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d seeded events stored", st.pipe.Inserted.Load(), st.accepted)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// get decodes the JSON answer of a GET (from loopback, so reads need no token).
func (st *stack) get(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := http.Get(st.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}
