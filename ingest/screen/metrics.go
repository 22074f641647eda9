package screen

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/adtracker/adtracker/ingest/event"
)

var (
	invalidVec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "adtracker_events_invalid_total",
		Help: "Events stored flagged as invalid traffic, by reason (crawler, prefetch, deny_ip, deny_user_agent, duplicate_click).",
	}, []string{"reason"})
	clickEvictions = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "adtracker_ivt_click_evictions_total",
		Help: "Counted clicks forgotten before ivt.click_window ended because their bucket was full; a duplicate of one counts as valid (raise ivt.click_table_bytes).",
	})
	cacheMisses = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "adtracker_ivt_user_agent_misses_total",
		Help: "User agents matched against the crawler and deny lists (~100 µs each): once per user agent while it stays in the user-agent cache, and only when a verdict is needed (screening on, address not denied).",
	})

	// Resolved once: a label lookup per event would hash and may allocate.
	invalid [event.NumIVT]prometheus.Counter
)

func init() {
	for r := event.IVTNone + 1; r < event.NumIVT; r++ {
		invalid[r] = invalidVec.WithLabelValues(r.String())
	}
}

// Collectors returns the screening metrics.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{invalidVec, clickEvictions, cacheMisses}
}
