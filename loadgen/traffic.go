package loadgen

import (
	"encoding/binary"
	"math/rand/v2"

	"github.com/adtracker/adtracker/ingest/event"
)

// Traffic model. A player that shows an ad fires an impression, then start and the quartiles while the viewer keeps watching, and
// now and then a click. Viewers drop off along the way, so each step is rarer than the one before. The ratios we generate, per
// impression (what video-ad delivery reports commonly show; the exact figures matter less than the shape):
//
//	impression 1 : start 0.9 : first_quartile 0.8 : midpoint 0.7 : third_quartile 0.6 : complete 0.5 : click 0.02
//
// Events of one view come in order and share ad, viewer, session, address and user agent, as they do from a real player. Ads are
// Zipf-distributed over the catalogue (a few campaigns get most traffic); viewers are uniform over a large population, each with a
// stable address and user agent. In single mode (POST /ads/impression and /ads/click) a view is an impression and, 2 % of the
// time, a click.

// funnel is the playback sequence and the share of views that reach each step.
var funnel = [...]struct {
	typ   event.Type
	reach float64
}{
	{event.TypeImpression, 1},
	{event.TypeStart, 0.9},
	{event.TypeFirstQuartile, 0.8},
	{event.TypeMidpoint, 0.7},
	{event.TypeThirdQuartile, 0.6},
	{event.TypeComplete, 0.5},
}

// ClickRate is the share of views with a click.
const ClickRate = 0.02

// MixRatio returns the expected count of typ per impression in the given mode.
func MixRatio(typ event.Type, single bool) float64 {
	if typ == event.TypeClick {
		return ClickRate
	}
	for i, f := range funnel {
		if f.typ == typ && (!single || i == 0) {
			return f.reach
		}
	}
	return 0
}

// Event is one generated event in the loader's own compact form; AppendJSON and AppendPixel render it.
type Event struct {
	ID         event.UUID
	Type       event.Type
	AdID       uint64
	Viewer     uint64 // rendered "v" + 16 hex digits
	Session    uint64 // rendered "s" + 16 hex digits
	IP         [4]byte
	PlaybackMs int64 // < 0: not sent (impressions)
	UA         uint8 // index into userAgents
}

// userAgents are a handful of real player user agents; each viewer keeps one.
var userAgents = [...]string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
	"Roku/DVP-12.5 (12.5.0.4174-C6)",
	"AppleCoreMedia/1.0.0.21E230 (Apple TV; U; CPU OS 17_4 like Mac OS X; en_us)",
}

// UserAgent returns the user agent string of e.
func (e *Event) UserAgent() string { return userAgents[e.UA] }

// IDs makes event ids for one run: the first 6 bytes are a random run prefix (so the verifier finds this run's rows with one
// startsWith), then a version-4 nibble and a 12-bit worker number, then the RFC 4122 variant and a 62-bit sequence. Unique within a
// run without coordination between workers.
type IDs struct {
	hi  uint64
	seq uint64
}

// MaxWorkers is the number of distinct worker numbers an id can carry.
const MaxWorkers = 1 << 12

// NewIDs returns worker w's generator for the run whose 6-byte prefix is run.
func NewIDs(run [6]byte, w int) IDs {
	var b [8]byte
	copy(b[:6], run[:])
	binary.BigEndian.PutUint16(b[6:], 0x4000|uint16(w)&0x0fff)
	return IDs{hi: binary.BigEndian.Uint64(b[:])}
}

// Next returns a fresh id.
func (g *IDs) Next() event.UUID {
	g.seq++
	var u event.UUID
	binary.BigEndian.PutUint64(u[:8], g.hi)
	binary.BigEndian.PutUint64(u[8:], 0x8000_0000_0000_0000|g.seq&0x3fff_ffff_ffff_ffff)
	return u
}

// RunPrefix is the text every id of the run starts with ("0123abcd-4567-").
func RunPrefix(run [6]byte) string {
	var u event.UUID
	copy(u[:], run[:])
	return u.String()[:14]
}

// Traffic generates one worker's event stream. Not safe for concurrent use; each worker has its own.
type Traffic struct {
	rng     *rand.Rand
	zipf    *rand.Zipf
	ads     []uint64
	viewers uint64
	single  bool
	ids     IDs

	inView  bool
	playing bool
	clicked bool // click decided for this view
	step    int
	view    Event
	durMs   int64
}

// TrafficConfig describes the population.
type TrafficConfig struct {
	Ads     []uint64 // catalogue ids; Ads[0] is the most popular
	ZipfS   float64  // Zipf exponent (> 1); default 1.1
	Viewers uint64   // viewer population; default 1,000,000
	Single  bool     // impressions and clicks only
	Seed    uint64
}

// NewTraffic builds a generator; ids come from ids.
func NewTraffic(c TrafficConfig, ids IDs) *Traffic {
	if c.ZipfS <= 1 {
		c.ZipfS = 1.1
	}
	if c.Viewers == 0 {
		c.Viewers = 1_000_000
	}
	rng := rand.New(rand.NewPCG(c.Seed, c.Seed^0x9e3779b97f4a7c15))
	t := &Traffic{rng: rng, ads: c.Ads, viewers: c.Viewers, single: c.Single, ids: ids}
	if len(c.Ads) > 1 {
		t.zipf = rand.NewZipf(rng, c.ZipfS, 1, uint64(len(c.Ads)-1))
	}
	return t
}

// mix64 is SplitMix64's finaliser: a cheap bijective hash that turns viewer numbers into ids and addresses that look random.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

func (t *Traffic) startView() {
	ad := t.ads[0]
	if t.zipf != nil {
		ad = t.ads[t.zipf.Uint64()]
	}
	v := t.rng.Uint64N(t.viewers)
	h := mix64(v)
	t.view = Event{
		AdID:    ad,
		Viewer:  h,
		Session: t.rng.Uint64(),
		// A public-looking IPv4 per viewer: first octet 1–223 skips 0/8 and multicast; collisions with reserved blocks don't matter.
		IP: [4]byte{byte(1 + (h>>32)%223), byte(h >> 40), byte(h >> 48), byte(h >> 56)},
		UA: uint8(mix64(h) % uint64(len(userAgents))),
	}
	t.durMs = 15000
	if h&1 == 1 {
		t.durMs = 30000
	}
	t.inView, t.playing, t.clicked, t.step = true, !t.single, false, 0
}

// Next fills e with the next event.
func (t *Traffic) Next(e *Event) {
	for {
		if !t.inView {
			t.startView()
			*e = t.view
			e.Type = event.TypeImpression
			e.PlaybackMs = -1
			e.ID = t.ids.Next()
			return
		}
		if t.playing && t.step+1 < len(funnel) {
			next := funnel[t.step+1]
			if t.rng.Float64()*funnel[t.step].reach < next.reach {
				t.step++
				*e = t.view
				e.Type = next.typ
				e.PlaybackMs = t.durMs * int64(t.step-1) / 4 // start 0, quartiles at ¼ ½ ¾, complete at the end
				e.ID = t.ids.Next()
				return
			}
			t.playing = false
		}
		t.playing = false
		if !t.clicked {
			t.clicked = true
			if t.rng.Float64() < ClickRate {
				*e = t.view
				e.Type = event.TypeClick
				e.PlaybackMs = t.rng.Int64N(t.durMs)
				e.ID = t.ids.Next()
				return
			}
		}
		t.inView = false
	}
}

// Uint32 is a random number from the generator's stream (cache busters).
func (t *Traffic) Uint32() uint32 { return t.rng.Uint32() }

// IDRange is consecutive ids of one worker, sequence From to To inclusive: the failed events of a batch, or of one connection's
// consecutive failed requests, take one range instead of an id each.
type IDRange struct {
	Hi       uint64 // the ids' first 8 bytes: run prefix and worker
	From, To uint64
}

// RangeOf is the one-id range of u.
func RangeOf(u event.UUID) IDRange {
	seq := binary.BigEndian.Uint64(u[8:]) & 0x3fff_ffff_ffff_ffff
	return IDRange{Hi: binary.BigEndian.Uint64(u[:8]), From: seq, To: seq}
}

// Len is the number of ids in r.
func (r IDRange) Len() uint64 { return r.To - r.From + 1 }

// Each calls fn with every id of r in order.
func (r IDRange) Each(fn func(event.UUID)) {
	g := IDs{hi: r.Hi}
	for s := r.From; s <= r.To; s++ {
		g.seq = s - 1
		fn(g.Next())
	}
}

// CountIDs sums the lengths of ranges.
func CountIDs(rs []IDRange) uint64 {
	var n uint64
	for _, r := range rs {
		n += r.Len()
	}
	return n
}

// appendRange adds the ids of evs (consecutive, from one worker) to rs, extending the last range when they continue it.
func appendRange(rs []IDRange, evs []Event) []IDRange {
	if len(evs) == 0 {
		return rs
	}
	first, last := RangeOf(evs[0].ID), RangeOf(evs[len(evs)-1].ID)
	if n := len(rs); n > 0 && rs[n-1].Hi == first.Hi && rs[n-1].To+1 == first.From {
		rs[n-1].To = last.To
		return rs
	}
	return append(rs, IDRange{Hi: first.Hi, From: first.From, To: last.To})
}
