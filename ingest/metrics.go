package ingest

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/adtracker/adtracker/ingest/event"
)

// Rejection reasons, a fixed set so the label cardinality is bounded and the counters can be resolved once.
const (
	reasonInvalid   = "invalid"
	reasonUnknownAd = "unknown_ad"
	reasonArchived  = "archived_ad"
	reasonOverload  = "overload"
)

var (
	acceptedVec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "adtracker_events_accepted_total", Help: "Events answered 2xx, by type.",
	}, []string{"type"})
	rejectedVec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "adtracker_events_rejected_total", Help: "Events refused, by reason (invalid, unknown_ad, archived_ad, overload).",
	}, []string{"reason"})
	clicksUnrecorded = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "adtracker_click_redirects_unrecorded_total", Help: "Click redirects answered while the pipeline refused the click (overload).",
	})

	// Resolved once: WithLabelValues on the hot path would hash and may allocate.
	accepted [event.NumTypes]prometheus.Counter
	rejected = map[string]prometheus.Counter{}
)

func init() {
	for t := event.TypeImpression; t < event.NumTypes; t++ {
		accepted[t] = acceptedVec.WithLabelValues(t.String())
	}
	for _, r := range []string{reasonInvalid, reasonUnknownAd, reasonArchived, reasonOverload} {
		rejected[r] = rejectedVec.WithLabelValues(r)
	}
}

// Collectors returns the ingest handlers' metrics.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{acceptedVec, rejectedVec, clicksUnrecorded}
}
