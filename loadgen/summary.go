package loadgen

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"
)

// Latency is a histogram summary in milliseconds.
type Latency struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P95   float64 `json:"p95_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

// Summarize reads the percentiles the summary reports.
func Summarize(h *Histogram) Latency {
	ms := func(ns uint64) float64 { return float64(ns) / 1e6 }
	return Latency{
		Count: h.Count(), Mean: h.Mean() / 1e6,
		P50: ms(h.Percentile(50)), P90: ms(h.Percentile(90)), P95: ms(h.Percentile(95)),
		P99: ms(h.Percentile(99)), P999: ms(h.Percentile(99.9)), Max: ms(h.Max()),
	}
}

// Summary is the machine-readable result (--json).
type Summary struct {
	Mode           Mode              `json:"mode"`
	URL            string            `json:"url"`
	Conns          int               `json:"conns"`
	TargetRate     float64           `json:"target_rate,omitempty"`
	EventsPerReq   int               `json:"events_per_request"`
	RunPrefix      string            `json:"run_prefix"`
	Start          time.Time         `json:"start"`
	Seconds        float64           `json:"seconds"`
	Requests       uint64            `json:"requests"`
	RequestsPerSec float64           `json:"requests_per_sec"`
	Events         uint64            `json:"events_sent"`
	Acked          uint64            `json:"events_acked"`
	AckedPerSec    float64           `json:"acked_events_per_sec"`
	Refused        uint64            `json:"events_refused"`
	Unknown        uint64            `json:"events_unknown"`
	NetErrors      uint64            `json:"net_errors"`
	Late           uint64            `json:"late_sends,omitempty"`
	Status         map[string]uint64 `json:"status"`
	Latency        Latency           `json:"latency"`
	Service        *Latency          `json:"service_time,omitempty"`
	ClientCPU      float64           `json:"client_cpu_seconds,omitempty"` // the generator's own CPU time, filled by the caller
	Verify         *VerifyResult     `json:"verify,omitempty"`
}

// Summary condenses r.
func (r *Result) Summary() *Summary {
	s := &Summary{
		Mode: r.Mode, URL: r.URL, Conns: r.Conns, TargetRate: r.Rate, EventsPerReq: r.Batch, RunPrefix: r.Prefix,
		Start: r.Start.UTC(), Seconds: r.Elapsed.Seconds(), Requests: r.Requests, Events: r.Events, Acked: r.Acked,
		Refused: r.Refused, Unknown: r.Unknown, NetErrors: r.NetErrors, Late: r.Late, Status: map[string]uint64{},
		Latency: Summarize(r.Latency),
	}
	if sec := r.Elapsed.Seconds(); sec > 0 {
		s.RequestsPerSec = float64(r.Requests) / sec
		s.AckedPerSec = float64(r.Acked) / sec
	}
	for code, n := range r.Status {
		s.Status[strconv.Itoa(code)] = n
	}
	if r.Rate > 0 {
		svc := Summarize(r.Service)
		s.Service = &svc
	}
	return s
}

// WriteText prints the human summary.
func (s *Summary) WriteText(w io.Writer) {
	loop := "closed loop"
	if s.TargetRate > 0 {
		loop = fmt.Sprintf("open loop at %.0f req/s", s.TargetRate)
	}
	fmt.Fprintf(w, "%s %s, %d connections, %s, %.1f s, run prefix %s\n", s.Mode, s.URL, s.Conns, loop, s.Seconds, s.RunPrefix)
	fmt.Fprintf(w, "  requests  %12d  %12.0f /s\n", s.Requests, s.RequestsPerSec)
	if s.EventsPerReq > 0 {
		fmt.Fprintf(w, "  events    %12d sent, %d acked (%.0f /s), %d refused, %d unknown\n",
			s.Events, s.Acked, s.AckedPerSec, s.Refused, s.Unknown)
		if s.Refused > 0 {
			// The same word as the progress lines; what a refusal means, so a 503 is not read as lost data.
			fmt.Fprintf(w, "            refused: answered non-2xx, not stored (a 503: the server's queue was full and said to retry)\n")
		}
	}
	codes := make([]string, 0, len(s.Status))
	for c := range s.Status {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	fmt.Fprint(w, "  status   ")
	for _, c := range codes {
		fmt.Fprintf(w, " %s×%d", c, s.Status[c])
	}
	if s.NetErrors > 0 {
		fmt.Fprintf(w, " no-answer×%d", s.NetErrors)
	}
	fmt.Fprintln(w)
	l := s.Latency
	from := "from send"
	if s.TargetRate > 0 {
		from = "from scheduled send"
	}
	fmt.Fprintf(w, "  latency (%s) ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  mean %.3f\n",
		from, l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean)
	if s.Service != nil {
		l := *s.Service
		fmt.Fprintf(w, "  service time ms:              p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n",
			l.P50, l.P90, l.P99, l.P999, l.Max)
		if s.Late > 0 {
			fmt.Fprintf(w, "  %d requests (%.1f%%) left more than 1 ms behind schedule\n", s.Late, 100*float64(s.Late)/float64(max(s.Requests, 1)))
		}
	}
	if s.ClientCPU > 0 {
		fmt.Fprintf(w, "  load generator CPU: %.2f s (%.0f%% of one core)\n", s.ClientCPU, 100*s.ClientCPU/max(s.Seconds, 1e-9))
	}
	if v := s.Verify; v != nil {
		v.WriteText(w)
	}
}
