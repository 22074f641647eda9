package web

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/adtracker/adtracker/ingest/pipeline"
	"github.com/adtracker/adtracker/internal/httpx"
)

// Sources are what the status reads. Each is called once a second by Run and never on a request.
type Sources struct {
	State    func() pipeline.State // ring fill, spill, ClickHouse health
	Accepted func() int64          // events answered 2xx since start
	Inserted func() int64          // rows stored in ClickHouse since start, live and replayed from spill
	Spilled  func() int64          // rows written to spill since start
}

// PipelineSources reads p. The accepted count is the pipeline's adtracker_pipeline_events_enqueued_total, which it exports as a
// metric only: it is read from a registry holding p's collectors alone, so a sample never runs the process or Go collectors.
func PipelineSources(p *pipeline.Pipeline) Sources {
	reg := prometheus.NewRegistry()
	reg.MustRegister(p.Collectors()...)
	return Sources{
		State:    p.State,
		Accepted: func() int64 { return int64(counterValue(reg, "adtracker_pipeline_events_enqueued_total")) },
		Inserted: func() int64 { return p.Inserted.Load() + p.Replayed.Load() },
		Spilled:  p.Spilled.Load,
	}
}

func counterValue(g prometheus.Gatherer, name string) float64 {
	mfs, err := g.Gather()
	if err != nil && len(mfs) == 0 {
		return 0
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			v += m.GetCounter().GetValue()
		}
	}
	return v
}

// statusWindow is how many one-second samples the rates span: long enough to smooth a batch flush, short enough to follow a change.
const statusWindow = 10

type sample struct {
	at                 time.Time
	accepted, inserted int64
}

// Status is GET /status: the live ingest figures the dashboard polls. Run samples the sources once a second; a request copies the
// latest snapshot, so polling costs no database round trip and reads no counter itself.
type Status struct {
	src Sources
	now func() time.Time

	mu         sync.Mutex
	samples    [statusWindow + 1]sample // ring of the latest samples; n of them valid, the newest at head
	head, n    int
	lastInsert time.Time // when a sample first saw the inserted count grow; zero until one did
	snap       StatusBody
}

// StatusBody is the JSON of GET /status (README, "Dashboard").
type StatusBody struct {
	Time              time.Time  `json:"time"`
	AcceptedTotal     int64      `json:"accepted_total"`
	AcceptedPerSecond float64    `json:"accepted_per_second"`
	InsertedTotal     int64      `json:"inserted_total"`
	InsertedPerSecond float64    `json:"inserted_per_second"`
	SpilledTotal      int64      `json:"spilled_total"`
	Ring              RingBody   `json:"ring"`
	Spill             SpillBody  `json:"spill"`
	ClickHouse        CHBody     `json:"clickhouse"`
	LastInsertAt      *time.Time `json:"last_insert_at"`
}

// RingBody is the ring's fill.
type RingBody struct {
	Used     int     `json:"used_slots"`
	Capacity int     `json:"capacity_slots"`
	Fill     float64 `json:"fill"`
}

// SpillBody is what waits on disk for ClickHouse.
type SpillBody struct {
	Bytes    int64 `json:"bytes"`
	Segments int   `json:"segments"`
}

// CHBody is where live batches go: "live" (ClickHouse answered the last insert or probe) or "spilling".
type CHBody struct {
	State string `json:"state"`
	Up    bool   `json:"up"`
}

// NewStatus takes a first sample at once, so /status answers before Run's first tick.
func NewStatus(src Sources) *Status {
	s := &Status{src: src, now: time.Now}
	s.sample()
	return s
}

// Run samples every second until ctx ends.
func (s *Status) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.sample()
		}
	}
}

func (s *Status) sample() {
	st := s.src.State()
	cur := sample{at: s.now().UTC(), accepted: s.src.Accepted(), inserted: s.src.Inserted()}
	spilled := s.src.Spilled()

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n > 0 {
		if prev := s.samples[s.head]; cur.inserted > prev.inserted {
			s.lastInsert = cur.at
		}
		s.head = (s.head + 1) % len(s.samples)
	}
	s.samples[s.head] = cur
	if s.n < len(s.samples) {
		s.n++
	}
	oldest := s.samples[(s.head-s.n+1+len(s.samples))%len(s.samples)]
	b := StatusBody{
		Time: cur.at, AcceptedTotal: cur.accepted, InsertedTotal: cur.inserted, SpilledTotal: spilled,
		Ring:       RingBody{Used: st.RingUsed, Capacity: st.RingCap},
		Spill:      SpillBody{Bytes: st.SpillBytes, Segments: st.SpillSegments},
		ClickHouse: CHBody{State: "spilling", Up: st.ClickHouseUp},
	}
	if st.RingCap > 0 {
		b.Ring.Fill = float64(st.RingUsed) / float64(st.RingCap)
	}
	if st.ClickHouseUp {
		b.ClickHouse.State = "live"
	}
	if d := cur.at.Sub(oldest.at).Seconds(); d > 0 {
		b.AcceptedPerSecond = float64(cur.accepted-oldest.accepted) / d
		b.InsertedPerSecond = float64(cur.inserted-oldest.inserted) / d
	}
	if !s.lastInsert.IsZero() {
		t := s.lastInsert
		b.LastInsertAt = &t
	}
	s.snap = b
}

// Snapshot returns the latest sample's figures.
func (s *Status) Snapshot() StatusBody {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap
}

// ServeHTTP answers GET /status.
func (s *Status) ServeHTTP(ctx *fasthttp.RequestCtx) {
	body, err := json.Marshal(s.Snapshot())
	if err != nil { // plain numbers and times: cannot happen
		httpx.WriteError(ctx, fasthttp.StatusInternalServerError, "internal error", "")
		return
	}
	ctx.SetContentType(httpx.ContentJSON)
	ctx.SetBody(body)
}
