package web

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/adtracker/adtracker/ingest/pipeline"
)

// fakeSources are counters a test moves by hand.
type fakeSources struct {
	st                          pipeline.State
	accepted, inserted, spilled int64
}

func (f *fakeSources) sources() Sources {
	return Sources{
		State:    func() pipeline.State { return f.st },
		Accepted: func() int64 { return f.accepted },
		Inserted: func() int64 { return f.inserted },
		Spilled:  func() int64 { return f.spilled },
	}
}

func TestStatusSamples(t *testing.T) {
	f := &fakeSources{st: pipeline.State{RingUsed: 64, RingCap: 256, SpillBytes: 4096, SpillSegments: 2, ClickHouseUp: false}}
	clock := time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)
	s := &Status{src: f.sources(), now: func() time.Time { return clock }}
	s.sample()

	b := s.Snapshot()
	if b.AcceptedPerSecond != 0 || b.LastInsertAt != nil {
		t.Fatalf("first sample: rate %v, last insert %v; want 0 and none (nothing seen yet)", b.AcceptedPerSecond, b.LastInsertAt)
	}
	if b.Ring.Fill != 0.25 || b.Spill.Bytes != 4096 || b.Spill.Segments != 2 || b.ClickHouse.State != "spilling" || b.ClickHouse.Up {
		t.Fatalf("first sample: %+v", b)
	}

	// 100 events a second for 5 s, stored from the third second on.
	for i := 1; i <= 5; i++ {
		clock = clock.Add(time.Second)
		f.accepted += 100
		if i >= 3 {
			f.inserted += 100
		}
		s.sample()
	}
	b = s.Snapshot()
	if b.AcceptedPerSecond != 100 || b.AcceptedTotal != 500 {
		t.Errorf("accepted %d at %v/s, want 500 at 100/s", b.AcceptedTotal, b.AcceptedPerSecond)
	}
	if b.InsertedPerSecond != 60 { // 300 rows over the 5 s the samples span
		t.Errorf("inserted %v/s, want 60", b.InsertedPerSecond)
	}
	if b.LastInsertAt == nil || !b.LastInsertAt.Equal(clock) {
		t.Errorf("last insert %v, want the latest sample's time %v", b.LastInsertAt, clock)
	}

	// Idle past the window: the rates fall to 0, the last insert stays where it was.
	last := clock
	for i := 0; i < statusWindow+2; i++ {
		clock = clock.Add(time.Second)
		s.sample()
	}
	b = s.Snapshot()
	if b.AcceptedPerSecond != 0 || b.InsertedPerSecond != 0 {
		t.Errorf("idle: %v and %v per second, want 0", b.AcceptedPerSecond, b.InsertedPerSecond)
	}
	if b.LastInsertAt == nil || !b.LastInsertAt.Equal(last) {
		t.Errorf("idle: last insert %v, want %v", b.LastInsertAt, last)
	}
}

func TestStatusJSON(t *testing.T) {
	f := &fakeSources{st: pipeline.State{RingCap: 8, ClickHouseUp: true}, accepted: 7, inserted: 5, spilled: 2}
	s := NewStatus(f.sources())
	var ctx fasthttp.RequestCtx
	s.ServeHTTP(&ctx)
	if ct := string(ctx.Response.Header.ContentType()); ct != "application/json; charset=utf-8" {
		t.Errorf("content type %q", ct)
	}
	var m map[string]any
	if err := json.Unmarshal(ctx.Response.Body(), &m); err != nil {
		t.Fatal(err)
	}
	// The names the README documents and the dashboard reads.
	for _, k := range []string{"time", "accepted_total", "accepted_per_second", "inserted_total", "inserted_per_second", "spilled_total",
		"ring", "spill", "clickhouse", "last_insert_at"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %q in %s", k, ctx.Response.Body())
		}
	}
	if ch := m["clickhouse"].(map[string]any); ch["state"] != "live" || ch["up"] != true {
		t.Errorf("clickhouse %v", ch)
	}
	if r := m["ring"].(map[string]any); r["capacity_slots"] != 8.0 || r["used_slots"] != 0.0 || r["fill"] != 0.0 {
		t.Errorf("ring %v", r)
	}
	if m["last_insert_at"] != nil {
		t.Errorf("last_insert_at %v before any sample saw an insert", m["last_insert_at"])
	}
}
