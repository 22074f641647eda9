package pipeline

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/adtracker/adtracker/ingest/decode"
	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/ingest/ring"
	"github.com/adtracker/adtracker/loadgen"
)

// loadgenEvents makes n events of the load generator's traffic (the whole playback funnel) as the server does: the JSON body through
// the decoder, the user agent from the request header. uaExtra lengthens every user agent, to see how a slot size copes with other
// traffic.
func loadgenEvents(tb testing.TB, n, uaExtra int) []event.Event {
	tb.Helper()
	ads := make([]uint64, 100)
	for i := range ads {
		ads[i] = uint64(i + 1)
	}
	tr := loadgen.NewTraffic(loadgen.TrafficConfig{Ads: ads, Seed: 7}, loadgen.NewIDs([6]byte{1, 2, 3, 4, 5, 6}, 0))
	ts := time.Now().UTC().AppendFormat(nil, "2006-01-02T15:04:05Z")
	var d decode.Decoder
	out := make([]event.Event, n)
	for i := range out {
		var le loadgen.Event
		tr.Next(&le)
		e := &out[i]
		e.SetUserAgent([]byte(le.UserAgent() + strings.Repeat("x", uaExtra)))
		if err := d.DecodeJSON(loadgen.AppendJSON(nil, &le, false, ts), le.Type, e); err != nil {
			tb.Fatal(err)
		}
	}
	return out
}

func encodeAll(evs []event.Event) [][]byte {
	out := make([][]byte, len(evs))
	for i := range evs {
		out[i] = evs[i].AppendBinary(nil)
	}
	return out
}

// BenchmarkEnqueueLoadgen is BenchmarkEnqueue with the load generator's events (~200 encoded bytes, 4 slots of 56) instead of a
// minimal one (67 bytes, 2 slots).
func BenchmarkEnqueueLoadgen(b *testing.B) {
	evs := loadgenEvents(b, 4096, 0)
	for i := range evs {
		// Server-made ids: cycling 4096 client ids would make every later copy a duplicate, which the batcher drops without
		// counting it towards a batch, so the ring would stay held until the flush interval.
		evs[i].Flags &^= event.FlagClientID
	}
	cfg := Defaults()
	cfg.Dir = b.TempDir()
	cfg.BatchSize = 10000
	cfg.RingCapacity = 1 << 19 // ~128k of these events, as many as BenchmarkEnqueue's ring holds of its own
	p, err := Open(cfg, nopSink{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	var worker atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(worker.Add(1)) * 997
		for pb.Next() {
			e := &evs[i%len(evs)]
			i++
			for p.Enqueue(e) != nil {
			}
		}
	})
}

// How many of the load generator's events a ring of each slot size holds per MiB of file, filled from empty until full (so the
// padding at the end of the data array counts). 1016-byte slots (1024 with the sequence word) are the smallest that hold any event
// (event.MaxBinaryLen, 505 since enrichment) in one slot, one event each: the reference. Run with -v for the table.
func TestRingDensity(t *testing.T) {
	sizes := []int{24, 32, 56, 64, 120, 128, 248, 504, 1016}
	var tab strings.Builder
	for _, uaExtra := range []int{0, 40} {
		perMiB := ringDensity(t, &tab, encodeAll(loadgenEvents(t, 1<<14, uaExtra)), sizes)
		if def := Defaults(); uaExtra == 0 && perMiB[def.SlotSize] < 1.8*perMiB[1016] {
			t.Errorf("default slot size %d holds %.0f events per MiB, not 1.8× the %.0f of one-event slots", def.SlotSize,
				perMiB[def.SlotSize], perMiB[1016])
		}
	}
	t.Log("\n" + tab.String())
}

// ringDensity fills a ring of each slot size (the largest power-of-two capacity whose file stays within 16 MiB and its header
// pages) with evs, cycling, until it is full, and tabulates events per MiB of file.
func ringDensity(t *testing.T, tab *strings.Builder, evs [][]byte, sizes []int) map[int]float64 {
	total, longest := 0, 0
	for _, e := range evs {
		total += len(e)
		longest = max(longest, len(e))
	}
	fmt.Fprintf(tab, "%d events, encoded size average %.1f, longest %d bytes\n", len(evs), float64(total)/float64(len(evs)), longest)
	fmt.Fprintf(tab, "%9s %9s %14s %10s %12s\n", "slot size", "slots", "file bytes", "slots/ev", "events/MiB")
	perMiB := map[int]float64{}
	for _, size := range sizes {
		capacity := 1
		for (capacity*2)*(size+8) <= 16<<20 {
			capacity *= 2
		}
		opt := ring.Options{Capacity: capacity, SlotSize: size}
		r, err := ring.New(opt)
		if err != nil {
			t.Fatal(err)
		}
		n, slots := 0, 0
		for {
			e := evs[n%len(evs)]
			ok, err := r.Enqueue(e)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			n++
			slots += r.Slots(len(e))
		}
		perMiB[size] = float64(n) / (float64(opt.Bytes()) / (1 << 20))
		fmt.Fprintf(tab, "%9d %9d %14d %10.2f %12.0f\n", size, capacity, opt.Bytes(), float64(slots)/float64(n), perMiB[size])
	}
	return perMiB
}
