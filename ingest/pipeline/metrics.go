package pipeline

import "github.com/prometheus/client_golang/prometheus"

// Metrics of the pipeline, registered by the server on its registry. Counters on the per-event path are plain atomic adds inside
// client_golang (no lock, no allocation); the ring fill and spill gauges are read at scrape time.
var (
	eventsEnqueued = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "adtracker_pipeline_events_enqueued_total", Help: "Events accepted into the ring.",
	})
	enqueueRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "adtracker_pipeline_enqueue_refused_total", Help: "Events refused at enqueue (answered 503), by reason.",
	}, []string{"reason"})
	enqueueWaits = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "adtracker_pipeline_enqueue_waits_total",
		Help: "Times an event found the ring full and waited for an insert to free room (ingest.enqueue_wait), whatever the outcome.",
	})
	duplicatesDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "adtracker_pipeline_duplicates_dropped_total", Help: "Events dropped because their client event_id was seen in the duplicate window.",
	})
	batchesFlushed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "adtracker_pipeline_batches_total", Help: "Batches leaving the batcher, by outcome (inserted, spilled, dead_lettered).",
	}, []string{"outcome"})
	rowsStored = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "adtracker_pipeline_rows_total", Help: "Rows by where they went (inserted, spilled, replayed, dead_lettered).",
	}, []string{"outcome"})
	batchSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "adtracker_pipeline_batch_rows", Help: "Rows per flushed batch.",
		Buckets: prometheus.ExponentialBuckets(1, 4, 10),
	})
	flushSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "adtracker_pipeline_flush_duration_seconds", Help: "Time to insert one batch into ClickHouse (successful inserts).",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	})
	insertErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "adtracker_clickhouse_insert_errors_total", Help: "Failed ClickHouse inserts, by kind (retryable, permanent).",
	}, []string{"kind"})
	recoveredRows = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "adtracker_pipeline_recovered_rows_total", Help: "Rows found in the ring file at start (accepted before a crash) and moved to spill.",
	})
	eventsNotStored = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "adtracker_events_not_stored_total",
		Help: "Accepted events that did not reach ClickHouse, by reason: dead_lettered and quarantined (kept in the dead-letter directory; " +
			"deadletter replay inserts them), ring_corrupt and spill_corrupt (lost: damaged claims or records, each holding one or more events).",
	}, []string{"reason"})
	spillCorrupt = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "adtracker_spill_corrupt_records_total", Help: "Spill records that failed their checksum or could not be decoded.",
	})
)

// Collectors returns the pipeline's metrics plus gauges that read p's state at scrape time.
func (p *Pipeline) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		eventsEnqueued, enqueueRefused, enqueueWaits, duplicatesDropped, batchesFlushed, rowsStored, batchSize, flushSeconds,
		insertErrors, recoveredRows, spillCorrupt, eventsNotStored,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "adtracker_ring_capacity_slots", Help: "Slots in the ring."},
			func() float64 { return float64(p.ring.Cap()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "adtracker_ring_used_slots", Help: "Slots holding events not yet stored in ClickHouse or spill."},
			func() float64 { return float64(p.ring.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "adtracker_spill_bytes", Help: "Bytes in spill segments waiting for replay."},
			func() float64 { return float64(p.spill.Bytes()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "adtracker_spill_segments", Help: "Spill segment files."},
			func() float64 { return float64(p.spill.Segments()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "adtracker_spill_oldest_age_seconds", Help: "Age of the oldest unreplayed spill segment."},
			func() float64 { return p.spill.OldestAge().Seconds() }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "adtracker_spill_corrupt_regions_total", Help: "Corrupt regions skipped in spill segments (bad checksum or length) since start."},
			func() float64 { return float64(p.spill.Stats().CorruptRegions) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "adtracker_spill_torn_tails_total", Help: "Torn last records cut from spill segments at start."},
			func() float64 { return float64(p.spill.Stats().TornTails) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "adtracker_pipeline_dead_lettered_rows_total", Help: "Rows written to the dead-letter directory."},
			func() float64 { return float64(p.DeadLettered.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "adtracker_clickhouse_up", Help: "1 when the last insert or probe reached ClickHouse."},
			func() float64 {
				if p.health.live() {
					return 1
				}
				return 0
			}),
	}
}

// Reasons of adtracker_events_not_stored_total.
const (
	reasonDeadLettered = "dead_lettered"
	reasonQuarantined  = "quarantined"
	reasonRingCorrupt  = "ring_corrupt"
	reasonSpillCorrupt = "spill_corrupt"
)

func notStored(reason string, n int) { eventsNotStored.WithLabelValues(reason).Add(float64(n)) }

func init() {
	// Every reason is exported from the start, so a dashboard sees 0 rather than no series.
	for _, r := range []string{reasonDeadLettered, reasonQuarantined, reasonRingCorrupt, reasonSpillCorrupt} {
		eventsNotStored.WithLabelValues(r)
	}
}
