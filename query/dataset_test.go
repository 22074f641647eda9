package query

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"sort"
	"testing"
	"time"

	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/internal/testenv"
	"github.com/adtracker/adtracker/migrations"
	chstore "github.com/adtracker/adtracker/storage/clickhouse"
)

// t0 is the start of the synthetic traffic: a fixed date so golden files and expected figures never depend on the clock.
var t0 = time.Date(2024, 3, 10, 0, 0, 0, 0, time.UTC)

// ev is the part of an event the expected figures need, kept beside the event.Event that was inserted.
type ev struct {
	ad       uint64
	typ      event.Type
	t        int64
	playback uint32
	viewer   string // the identity uniq counts: viewer_id, or "ip:" + address
}

// openMigrated returns a fresh database on the test ClickHouse with every shipped migration applied (files[:upto] when upto > 0).
func openMigrated(t testing.TB, upto int) *chstore.DB {
	t.Helper()
	addr, database := testenv.ClickHouseDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	db, err := chstore.Open(ctx, chstore.Config{Addr: addr, Database: database}, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	migrate(t, db, upto)
	return db
}

func migrate(t testing.TB, db *chstore.DB, upto int) {
	t.Helper()
	files, err := migrations.ClickHouse()
	if err != nil {
		t.Fatal(err)
	}
	if upto > 0 {
		files = files[:upto]
	}
	if _, err := db.Migrate(context.Background(), files); err != nil {
		t.Fatal(err)
	}
}

// gen builds events deterministically from seed. ads weights the share of each ad (index+1 is the id); pools is each ad's number of
// distinct viewer ids; span is how far after t0 event times reach.
type gen struct {
	seed   uint64
	n      int
	ads    []float64
	pools  []int
	span   time.Duration
	origin time.Time
}

// typeWeights: a plausible mix, every type present so each rollup column is exercised.
var typeWeights = []struct {
	typ event.Type
	w   float64
}{
	{event.TypeImpression, 40}, {event.TypeStart, 15}, {event.TypeFirstQuartile, 10}, {event.TypeMidpoint, 8},
	{event.TypeThirdQuartile, 6}, {event.TypeComplete, 5}, {event.TypeClick, 4}, {event.TypeSkip, 3},
	{event.TypeError, 1}, {event.TypePause, 2}, {event.TypeResume, 2}, {event.TypeMute, 2}, {event.TypeUnmute, 2},
}

func pick(r *rand.Rand, weights []float64) int {
	var total float64
	for _, w := range weights {
		total += w
	}
	x := r.Float64() * total
	for i, w := range weights {
		if x < w {
			return i
		}
		x -= w
	}
	return len(weights) - 1
}

// playbackFor gives each type the playhead a player would report: quartiles near their share of a 30 s ad, impressions none.
func playbackFor(r *rand.Rand, typ event.Type) uint32 {
	jitter := func(center int) uint32 { return uint32(center - 1500 + r.IntN(3000)) }
	switch typ {
	case event.TypeImpression, event.TypeStart:
		return 0
	case event.TypeFirstQuartile:
		return jitter(7500)
	case event.TypeMidpoint:
		return jitter(15000)
	case event.TypeThirdQuartile:
		return jitter(22500)
	case event.TypeComplete:
		return jitter(30000)
	}
	if r.IntN(4) == 0 { // some players omit the playhead on other events
		return 0
	}
	return uint32(r.IntN(30000))
}

// build returns the events and the batches to insert them with (batch events each).
func (g gen) build(batch int) ([]ev, []*event.Batch) {
	r := rand.New(rand.NewPCG(g.seed, g.seed^0x9e3779b97f4a7c15))
	tw := make([]float64, len(typeWeights))
	for i, x := range typeWeights {
		tw[i] = x.w
	}
	origin := g.origin
	if origin.IsZero() {
		origin = t0
	}
	evs := make([]ev, 0, g.n)
	var batches []*event.Batch
	cur := new(event.Batch)
	var e event.Event
	for i := 0; i < g.n; i++ {
		e.Reset()
		for j := range e.ID {
			e.ID[j] = byte(r.Uint32())
		}
		e.ID[6] = e.ID[6]&0x0f | 0x40
		e.ID[8] = e.ID[8]&0x3f | 0x80
		ai := pick(r, g.ads)
		e.AdID = uint64(ai + 1)
		e.Type = typeWeights[pick(r, tw)].typ
		e.EventTime = origin.Unix() + r.Int64N(int64(g.span/time.Second))
		e.ReceiveTime = e.EventTime + 1
		e.PlaybackMs = playbackFor(r, e.Type)
		ip := net.IPv4(10, byte(ai), byte(r.IntN(20)), byte(r.IntN(250)))
		e.SetIP(ip)
		e.SetUserAgent([]byte("adtracker-test"))
		who := "ip:" + ip.String()
		if r.IntN(4) != 0 {
			who = fmt.Sprintf("v%d-%d", ai, r.IntN(g.pools[ai]))
			e.SetViewerID([]byte(who))
		}
		e.SetSessionID([]byte(fmt.Sprintf("s%d", i/7)))
		cur.Append(&e)
		evs = append(evs, ev{ad: e.AdID, typ: e.Type, t: e.EventTime, playback: e.PlaybackMs, viewer: who})
		if cur.N == batch {
			batches = append(batches, cur)
			cur = new(event.Batch)
		}
	}
	if cur.N > 0 {
		batches = append(batches, cur)
	}
	return evs, batches
}

// insert sends the batches through the sink the pipeline uses, so the rows reach the rollups through the materialized views.
func insert(t testing.TB, db *chstore.DB, batches []*event.Batch) {
	t.Helper()
	sink := chstore.NewSink(db)
	ctx := context.Background()
	for _, b := range batches {
		if err := sink.Insert(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
}

// want is the figures computed independently from the generated events.
type want struct {
	counts   [16]uint64
	viewers  map[string]struct{}
	playback []uint32
	pbSum    uint64
}

func (w *want) add(e *ev) {
	w.counts[e.typ]++
	if w.viewers == nil {
		w.viewers = map[string]struct{}{}
	}
	w.viewers[e.viewer] = struct{}{}
	if e.playback > 0 {
		w.playback = append(w.playback, e.playback)
		w.pbSum += uint64(e.playback)
	}
}

// sum aggregates the events in [from, to) per ad (adID 0: every ad).
func sumByAd(evs []ev, from, to time.Time) map[uint64]*want {
	out := map[uint64]*want{}
	f, tt := from.Unix(), to.Unix()
	for i := range evs {
		e := &evs[i]
		if e.t < f || e.t >= tt {
			continue
		}
		w := out[e.ad]
		if w == nil {
			w = &want{}
			out[e.ad] = w
		}
		w.add(e)
	}
	for _, w := range out {
		sort.Slice(w.playback, func(i, j int) bool { return w.playback[i] < w.playback[j] })
	}
	return out
}

// sumByBucket aggregates one ad's events in [from, to) by bucket start (floor to step, UTC).
func sumByBucket(evs []ev, ad uint64, from, to time.Time, step time.Duration) map[int64]*want {
	out := map[int64]*want{}
	f, tt, s := from.Unix(), to.Unix(), int64(step/time.Second)
	for i := range evs {
		e := &evs[i]
		if e.ad != ad || e.t < f || e.t >= tt {
			continue
		}
		b := e.t - e.t%s
		w := out[b]
		if w == nil {
			w = &want{}
			out[b] = w
		}
		w.add(e)
	}
	for _, w := range out {
		sort.Slice(w.playback, func(i, j int) bool { return w.playback[i] < w.playback[j] })
	}
	return out
}
