// Package query answers analytics questions (totals, top ads, time series) from ClickHouse's per-ad rollups, never from raw events.
package query

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"go.uber.org/zap"
)

// Querier runs one read query with bound arguments. storage/clickhouse.DB.Conn (a clickhouse-go driver.Conn) satisfies it.
type Querier interface {
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
}

// Defaults of the Service's limits.
const (
	DefaultMaxRange  = 400 * 24 * time.Hour
	DefaultMaxPoints = 10000
	DefaultWindow    = 24 * time.Hour
	DefaultTimeout   = 10 * time.Second
	DefaultTopLimit  = 100
	MaxTopLimit      = 1000
)

// Service answers analytics queries. Set fields before first use; zero values mean the defaults above.
type Service struct {
	DB Querier
	// Database qualifies the rollup tables; empty means the connection's default database.
	Database string
	// MaxRange bounds end - start of a request (query.max_range).
	MaxRange time.Duration
	// MaxPoints bounds the buckets of one time series.
	MaxPoints int
	// Window is the range used when start and end are both absent (the last Window up to now).
	Window time.Duration
	// Timeout bounds each HTTP request's database work.
	Timeout time.Duration
	Log     *zap.Logger
	// Now is the clock (tests fix it).
	Now func() time.Time
	// Ads is the ad catalogue: with it, the analytics of an ad it does not know answer 404 naming the parameter, as GET /ads/{id}
	// and /c/{id} do, instead of zeros. Nil answers every id.
	Ads AdCatalog
}

// AdCatalog is what the analytics need of the ad catalogue; catalog.Catalog satisfies it.
type AdCatalog interface {
	// Known reports whether the ad exists, whatever its status: an archived ad keeps its history.
	Known(id uint64) bool
}

// UnknownAdError is what AnalyticsFields (Field ad_id) and TimeseriesFields (Field id) return, after the parameter checks, for an ad
// the catalogue does not have; the HTTP handlers answer it with 404 naming Field.
type UnknownAdError struct {
	Field string
	ID    uint64
}

func (e *UnknownAdError) Error() string { return fmt.Sprintf("unknown ad %d", e.ID) }

// known is nil when id may be queried, or the *UnknownAdError to answer.
func (s *Service) known(id uint64, field string) error {
	if s.Ads == nil || s.Ads.Known(id) {
		return nil
	}
	return &UnknownAdError{Field: field, ID: id}
}

// New returns a Service over db reading the rollups in database.
func New(db Querier, database string) *Service { return &Service{DB: db, Database: database} }

func (s *Service) maxRange() time.Duration { return orDefault(s.MaxRange, DefaultMaxRange) }
func (s *Service) window() time.Duration   { return orDefault(s.Window, DefaultWindow) }
func (s *Service) timeout() time.Duration  { return orDefault(s.Timeout, DefaultTimeout) }

func (s *Service) maxPoints() int {
	if s.MaxPoints > 0 {
		return s.MaxPoints
	}
	return DefaultMaxPoints
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) log() *zap.Logger {
	if s.Log == nil {
		return zap.NewNop()
	}
	return s.Log
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Metrics are the figures of one ad over a window or one bucket. Counts are exact; UniqueViewers is approximate (ClickHouse uniq:
// exact up to ~65k distinct viewers, about 1-2 % error above); the playback percentiles come from a t-digest (see docs/sql.md).
// A figure outside the Fields a query asked for is zero here (and absent from the API's JSON). Every figure but the invalid
// ones counts valid traffic only (events with ivt = 'none'); rollup rows written before migration 0003 count every event, which
// was all valid then.
type Metrics struct {
	Impressions   uint64  `json:"impressions"`
	Clicks        uint64  `json:"clicks"`
	CTR           float64 `json:"ctr"`
	UniqueViewers uint64  `json:"unique_viewers"`
	Starts        uint64  `json:"starts"`
	FirstQuartile uint64  `json:"first_quartile"`
	Midpoint      uint64  `json:"midpoint"`
	ThirdQuartile uint64  `json:"third_quartile"`
	Completes     uint64  `json:"completes"`
	// CompletionRate is completes / starts (0 without starts).
	CompletionRate float64 `json:"completion_rate"`
	// Playback figures cover events that report a playback position (playback_ms > 0).
	AvgPlaybackSeconds float64 `json:"avg_playback_seconds"`
	P50PlaybackSeconds float64 `json:"p50_playback_seconds"`
	P95PlaybackSeconds float64 `json:"p95_playback_seconds"`
	// Viewability (VAST ViewableImpression, valid traffic): viewable and not viewable outcomes; view_undetermined is not measured.
	ViewableImpressions   uint64 `json:"viewable_impressions"`
	MeasurableImpressions uint64 `json:"measurable_impressions"`
	// ViewabilityRate is viewable / measurable: 0 when nothing was measured, which RatesDefined tells apart (the API's JSON
	// says null then: an unmeasured rate is not 0 %).
	ViewabilityRate float64 `json:"viewability_rate"`
	// Invalid traffic (ivt != 'none'): counted apart, never in the figures above.
	InvalidImpressions uint64 `json:"invalid_impressions"`
	InvalidClicks      uint64 `json:"invalid_clicks"`
	// IVTRate is invalid impressions / all impressions (valid + invalid): 0 without any impression (JSON null, see RatesDefined).
	IVTRate float64 `json:"ivt_rate"`
	// measured and impressed say whether the two rates have a denominator; kept apart from the figures so that a query for
	// the rates alone still knows.
	measured, impressed bool
}

// RatesDefined reports whether ViewabilityRate (something was measured) and IVTRate (there were impressions) have a
// denominator; false for a rate outside the fields asked for.
func (m Metrics) RatesDefined() (viewability, ivt bool) { return m.measured, m.impressed }

// Fields is a set of Metrics figures, one bit per figure in the JSON order of Metrics. A query reads the uniq states only for
// unique_viewers and the t-digest states only for the percentiles: those states are what an analytics query spends its time on
// (docs/sql.md has the figures), so the API returns them only when asked. Every other figure comes from the plain count columns.
type Fields uint32

// fieldNames are the figures' JSON names; a figure's bit is 1 << its index.
var fieldNames = [...]string{"impressions", "clicks", "ctr", "unique_viewers", "starts", "first_quartile", "midpoint",
	"third_quartile", "completes", "completion_rate", "avg_playback_seconds", "p50_playback_seconds", "p95_playback_seconds",
	"viewable_impressions", "measurable_impressions", "viewability_rate", "invalid_impressions", "invalid_clicks", "ivt_rate"}

// The field sets with a name, and the figures that need states.
const (
	FieldUniqueViewers Fields = 1 << 3
	FieldP50Playback   Fields = 1 << 11
	FieldP95Playback   Fields = 1 << 12
	// AllFields is every figure: what the API returned before fields existed.
	AllFields Fields = 1<<len(fieldNames) - 1
	// DefaultFields are the exact figures, computed from the count columns alone.
	DefaultFields = AllFields &^ (FieldUniqueViewers | FieldP50Playback | FieldP95Playback)
)

// FieldNames lists every figure's name in JSON order (the values ParseFields accepts besides all and default).
func FieldNames() []string { return append([]string(nil), fieldNames[:]...) }

// Field returns the one-figure set of name, or false for a name that is not a figure.
func Field(name string) (Fields, bool) {
	for i, n := range fieldNames {
		if n == name {
			return 1 << i, true
		}
	}
	return 0, false
}

// ParseFields reads a comma-separated list of figure names; "all" stands for every figure and "default" for DefaultFields.
// An empty list or an unknown name is a *ParamError on the fields parameter naming the culprit.
func ParseFields(list string) (Fields, error) {
	var f Fields
	for _, name := range strings.Split(list, ",") {
		switch name {
		case "all":
			f |= AllFields
			continue
		case "default":
			f |= DefaultFields
			continue
		}
		bit, ok := Field(name)
		if !ok {
			return 0, &ParamError{Field: "fields", Msg: fmt.Sprintf("unknown field %q: fields is a comma-separated list of %s, or all, or default",
				name, strings.Join(fieldNames[:], ", "))}
		}
		f |= bit
	}
	return f, nil
}

// Has reports whether every figure of g is in f.
func (f Fields) Has(g Fields) bool { return f&g == g }

// String returns the names of f's figures, comma-separated in JSON order.
func (f Fields) String() string {
	var names []string
	for i, n := range fieldNames {
		if f&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	return strings.Join(names, ",")
}

// orDefault treats the zero set as DefaultFields, so a caller that leaves Fields unset gets the cheap figures.
func (f Fields) orDefault() Fields {
	if f&AllFields == 0 {
		return DefaultFields
	}
	return f & AllFields
}

func (f Fields) uniques() bool   { return f&FieldUniqueViewers != 0 }
func (f Fields) quantiles() bool { return f&(FieldP50Playback|FieldP95Playback) != 0 }
func (f Fields) states() bool    { return f.uniques() || f.quantiles() }

// mask returns m with every figure outside f zeroed: what a query for f returns.
func (m Metrics) mask(f Fields) Metrics {
	keep := func(bit int, v *uint64) {
		if f&(1<<bit) == 0 {
			*v = 0
		}
	}
	keepF := func(bit int, v *float64) {
		if f&(1<<bit) == 0 {
			*v = 0
		}
	}
	keep(0, &m.Impressions)
	keep(1, &m.Clicks)
	keepF(2, &m.CTR)
	keep(3, &m.UniqueViewers)
	keep(4, &m.Starts)
	keep(5, &m.FirstQuartile)
	keep(6, &m.Midpoint)
	keep(7, &m.ThirdQuartile)
	keep(8, &m.Completes)
	keepF(9, &m.CompletionRate)
	keepF(10, &m.AvgPlaybackSeconds)
	keepF(11, &m.P50PlaybackSeconds)
	keepF(12, &m.P95PlaybackSeconds)
	keep(13, &m.ViewableImpressions)
	keep(14, &m.MeasurableImpressions)
	if f&(1<<15) == 0 {
		m.ViewabilityRate, m.measured = 0, false
	}
	keep(16, &m.InvalidImpressions)
	keep(17, &m.InvalidClicks)
	if f&(1<<18) == 0 {
		m.IVTRate, m.impressed = 0, false
	}
	return m
}

// Stats are one ad's metrics over [From, To).
type Stats struct {
	AdID uint64    `json:"ad_id"`
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	Metrics
}

// Point is one bucket of a time series; T is the bucket's start.
type Point struct {
	T time.Time `json:"t"`
	Metrics
}

// Series is one ad's time series over [From, To), one point per bucket, empty buckets included as zeros.
type Series struct {
	AdID     uint64    `json:"ad_id"`
	Interval Interval  `json:"interval"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Points   []Point   `json:"points"`
}

// Interval is a time series bucket width.
type Interval string

// Intervals of a time series.
const (
	Minute Interval = "minute"
	Hour   Interval = "hour"
	Day    Interval = "day"
)

// Duration returns the bucket width, or 0 for an unknown interval.
func (i Interval) Duration() time.Duration {
	switch i {
	case Minute:
		return time.Minute
	case Hour:
		return time.Hour
	case Day:
		return 24 * time.Hour
	}
	return 0
}

// Sort orders are the Metrics fields a top list can be sorted by (descending, ties by ad_id ascending). Each maps to a fixed SQL
// expression over the aggregate aliases below; the request's text never reaches the SQL.
var sortExprs = map[string]string{
	"impressions":            "n_impressions",
	"clicks":                 "n_clicks",
	"ctr":                    "if(n_impressions = 0, 0, n_clicks / n_impressions)",
	"unique_viewers":         "n_viewers",
	"starts":                 "n_starts",
	"first_quartile":         "n_first_quartiles",
	"midpoint":               "n_midpoints",
	"third_quartile":         "n_third_quartiles",
	"completes":              "n_completes",
	"completion_rate":        "if(n_starts = 0, 0, n_completes / n_starts)",
	"avg_playback_seconds":   "if(n_playback = 0, 0, n_playback_ms_sum / n_playback)",
	"p50_playback_seconds":   "if(n_playback = 0, 0, q_playback[1])",
	"p95_playback_seconds":   "if(n_playback = 0, 0, q_playback[2])",
	"viewable_impressions":   "n_viewables",
	"measurable_impressions": "n_viewables + n_not_viewables",
	"viewability_rate":       "if(n_viewables + n_not_viewables = 0, 0, n_viewables / (n_viewables + n_not_viewables))",
	"invalid_impressions":    "n_invalid_impressions",
	"invalid_clicks":         "n_invalid_clicks",
	"ivt_rate":               "if(n_impressions + n_invalid_impressions = 0, 0, n_invalid_impressions / (n_impressions + n_invalid_impressions))",
}

// SortKeys lists the accepted sort values.
func SortKeys() []string {
	return []string{"clicks", "impressions", "ctr", "unique_viewers", "starts", "first_quartile", "midpoint", "third_quartile",
		"completes", "completion_rate", "avg_playback_seconds", "p50_playback_seconds", "p95_playback_seconds",
		"viewable_impressions", "measurable_impressions", "viewability_rate", "invalid_impressions", "invalid_clicks", "ivt_rate"}
}

// DefaultSort is the top list's order when the request names none.
const DefaultSort = "clicks"

func errSort() *ParamError {
	return &ParamError{Field: "sort", Msg: "sort must be one of " + strings.Join(SortKeys(), ", ")}
}

func errLimit() *ParamError {
	return &ParamError{Field: "limit", Msg: fmt.Sprintf("limit must be an integer between 1 and %d", MaxTopLimit)}
}

// ParamError is a request the service refuses; Field names the parameter.
type ParamError struct {
	Field string
	Msg   string
}

func (e *ParamError) Error() string { return e.Field + ": " + e.Msg }

// Range is a request window. Align rounds it outwards to whole minutes: the rollups' finest grain. Rounding the end up (not down)
// is what makes an event inserted a moment ago show up at once in a window ending now.
type Range struct{ From, To time.Time }

// Align returns r with From rounded down and To rounded up to the minute, in UTC.
func (r Range) Align() Range {
	from := r.From.UTC().Truncate(time.Minute)
	to := r.To.UTC().Truncate(time.Minute)
	if to.Before(r.To) {
		to = to.Add(time.Minute)
	}
	return Range{From: from, To: to}
}

// Check validates r against the service's limits (before alignment, on what the client asked for).
func (s *Service) Check(r Range) error {
	if !r.From.Before(r.To) {
		return &ParamError{Field: "end", Msg: "end must be after start"}
	}
	if r.To.Sub(r.From) > s.maxRange() {
		return &ParamError{Field: "end", Msg: fmt.Sprintf("range from start to end exceeds the maximum of %s", fmtDuration(s.maxRange()))}
	}
	return nil
}

func fmtDuration(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}

// span is a half-open window [from, to) on minute boundaries.
type span struct{ from, to time.Time }

// plan says which rollup answers which part of an aligned range: the hour rollup for the whole hours in the middle, the minute
// rollup for the partial hours at either edge (or for everything when no whole hour fits, or when buckets are minutes).
type plan struct {
	hours   *span
	minutes []span
}

func planRange(r Range, useHours bool) plan {
	var p plan
	h1 := r.From.Truncate(time.Hour)
	if h1.Before(r.From) {
		h1 = h1.Add(time.Hour)
	}
	h2 := r.To.Truncate(time.Hour)
	if !useHours || !h1.Before(h2) {
		return plan{minutes: []span{{r.From, r.To}}}
	}
	p.hours = &span{h1, h2}
	if r.From.Before(h1) {
		p.minutes = append(p.minutes, span{r.From, h1})
	}
	if h2.Before(r.To) {
		p.minutes = append(p.minutes, span{h2, r.To})
	}
	return p
}

// countAggregates are the aggregates of the plain count columns: cheap, because no state is read. Every figure but the three
// approximate ones is computed from them alone, so every query selects them, first, in the order row.dest lists them. Aliases
// differ from the column names because ClickHouse substitutes an alias that equals a column name inside the aggregate itself.
const countAggregates = `sum(impressions) AS n_impressions, sum(clicks) AS n_clicks, sum(starts) AS n_starts,
 sum(first_quartiles) AS n_first_quartiles, sum(midpoints) AS n_midpoints, sum(third_quartiles) AS n_third_quartiles,
 sum(completes) AS n_completes, sum(playback_ms_sum) AS n_playback_ms_sum, sum(playback_count) AS n_playback,
 sum(viewables) AS n_viewables, sum(not_viewables) AS n_not_viewables, sum(invalid_impressions) AS n_invalid_impressions,
 sum(invalid_clicks) AS n_invalid_clicks`

// The state aggregates follow the counts when their figures are asked for.
const (
	uniqAggregate     = "uniqMerge(viewers) AS n_viewers"
	quantileAggregate = "arrayMap(x -> toFloat64(x), quantilesTDigestIfMerge(0.5, 0.95)(playback_ms_quantiles)) AS q_playback"
)

// aggregates returns the aggregates a query for f selects: the counts, then the uniq and t-digest merges only when f needs them.
func aggregates(f Fields) string {
	a := countAggregates
	if f.uniques() {
		a += ",\n " + uniqAggregate
	}
	if f.quantiles() {
		a += ",\n " + quantileAggregate
	}
	return a
}

const countColumns = `ad_id, impressions, clicks, starts, first_quartiles, midpoints, third_quartiles, completes, playback_ms_sum,
 playback_count, viewables, not_viewables, invalid_impressions, invalid_clicks`

// stateSorts need the uniq or t-digest states to rank ads.
var stateSorts = map[string]bool{"unique_viewers": true, "p50_playback_seconds": true, "p95_playback_seconds": true}

// rollupColumns are read from either rollup inside the UNION ALL when f needs both kinds of state; the time column is added per
// table.
const rollupColumns = countColumns + ", viewers, playback_ms_quantiles"

// columns returns the rollup columns a query for f reads: a state column is never named unless a figure of f needs it, so
// ClickHouse does not read it from disk at all.
func columns(f Fields) string {
	switch {
	case f.uniques() && f.quantiles():
		return rollupColumns
	case f.uniques():
		return countColumns + ", viewers"
	case f.quantiles():
		return countColumns + ", playback_ms_quantiles"
	}
	return countColumns
}

// builder assembles one SELECT over the parts of a plan. Only fixed fragments are written into the text; every value — ad id, times,
// limit — is an argument bound by the driver.
type builder struct {
	sql  strings.Builder
	args []any
}

// adIDsIn writes "ad_id IN (?, ...)" with one bound argument per id.
func (b *builder) adIDsIn(ids []uint64) {
	b.sql.WriteString("ad_id IN (")
	for i, id := range ids {
		if i > 0 {
			b.sql.WriteString(", ")
		}
		b.sql.WriteString("?")
		b.args = append(b.args, id)
	}
	b.sql.WriteString(")")
}

func (s *Service) table(name string) string {
	if s.Database == "" {
		return name
	}
	return quoteIdent(s.Database) + "." + name
}

// source writes "(SELECT cols FROM hour rollup PREWHERE ... UNION ALL SELECT cols FROM minute rollup PREWHERE ...)". bucket
// picks the bucket expression for a table's time column (nil for totals). adID 0 means every ad. extra (when not nil) writes one
// more condition into each part's PREWHERE.
func (s *Service) source(b *builder, p plan, adID uint64, bucket func(col string) string, cols string, extra func(b *builder)) {
	b.sql.WriteString("(")
	part := func(table, col string, spans []span) {
		b.sql.WriteString("SELECT ")
		b.sql.WriteString(cols)
		if bucket != nil {
			b.sql.WriteString(", ")
			b.sql.WriteString(bucket(col))
			b.sql.WriteString(" AS t")
		}
		b.sql.WriteString(" FROM ")
		b.sql.WriteString(s.table(table))
		// PREWHERE, not WHERE: 18.16 moves no condition on a primary key column to PREWHERE by itself, and with WHERE it
		// deserialises the uniq and t-digest states of every row of a granule the key selects, neighbouring ads' and
		// minutes' included; with PREWHERE it evaluates the condition first and reads far fewer states (BENCHMARKS.md,
		// "Design measurements").
		b.sql.WriteString(" PREWHERE ")
		if adID != 0 {
			b.sql.WriteString("ad_id = ? AND ")
			b.args = append(b.args, adID)
		}
		b.sql.WriteString("(")
		for i, sp := range spans {
			if i > 0 {
				b.sql.WriteString(" OR ")
			}
			fmt.Fprintf(&b.sql, "(%s >= toDateTime(?) AND %s < toDateTime(?))", col, col)
			b.args = append(b.args, sp.from.Unix(), sp.to.Unix())
		}
		b.sql.WriteString(")")
		if extra != nil {
			b.sql.WriteString(" AND ")
			extra(b)
		}
	}
	if p.hours != nil {
		part("ad_stats_hour", "hour", []span{*p.hours})
		if len(p.minutes) > 0 {
			b.sql.WriteString(" UNION ALL ")
		}
	}
	if len(p.minutes) > 0 {
		part("ad_stats_minute", "minute", p.minutes)
	}
	b.sql.WriteString(")")
}

// row is one result row of the aggregates.
type row struct {
	impressions, clicks, starts, q1, mid, q3, completes uint64
	playbackSum, playbackCount, viewers                 uint64
	viewables, notViewables, invImpressions, invClicks  uint64
	quantiles                                           []float64
}

// dest returns the scan destinations of aggregates(f), after the first columns given.
func (r *row) dest(f Fields, first ...any) []any {
	d := make([]any, 0, len(first)+15)
	d = append(d, first...)
	d = append(d, &r.impressions, &r.clicks, &r.starts, &r.q1, &r.mid, &r.q3, &r.completes, &r.playbackSum, &r.playbackCount,
		&r.viewables, &r.notViewables, &r.invImpressions, &r.invClicks)
	if f.uniques() {
		d = append(d, &r.viewers)
	}
	if f.quantiles() {
		d = append(d, &r.quantiles)
	}
	return d
}

// metrics returns the row's figures, those outside f zeroed.
func (r *row) metrics(f Fields) Metrics {
	return r.all().mask(f)
}

func (r *row) all() Metrics {
	m := Metrics{
		Impressions: r.impressions, Clicks: r.clicks, UniqueViewers: r.viewers, Starts: r.starts,
		FirstQuartile: r.q1, Midpoint: r.mid, ThirdQuartile: r.q3, Completes: r.completes,
	}
	m.CTR = ratio(r.clicks, r.impressions)
	m.CompletionRate = ratio(r.completes, r.starts)
	m.ViewableImpressions, m.MeasurableImpressions = r.viewables, r.viewables+r.notViewables
	m.ViewabilityRate, m.measured = ratio(m.ViewableImpressions, m.MeasurableImpressions), m.MeasurableImpressions > 0
	m.InvalidImpressions, m.InvalidClicks = r.invImpressions, r.invClicks
	m.IVTRate, m.impressed = ratio(r.invImpressions, r.impressions+r.invImpressions), r.impressions+r.invImpressions > 0
	if r.playbackCount > 0 {
		m.AvgPlaybackSeconds = float64(r.playbackSum) / float64(r.playbackCount) / 1000
		if len(r.quantiles) == 2 {
			m.P50PlaybackSeconds = seconds(r.quantiles[0])
			m.P95PlaybackSeconds = seconds(r.quantiles[1])
		}
	}
	return m
}

func ratio(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// seconds converts a t-digest millisecond estimate. 18.16 returns whole milliseconds, current servers a Float32; rounding to the
// millisecond makes both print alike and drops Float32 noise that carries no information.
func seconds(ms float64) float64 {
	if math.IsNaN(ms) || math.IsInf(ms, 0) {
		return 0
	}
	return math.Round(ms) / 1000
}

// Analytics returns one ad's metrics over r (aligned to minutes; the returned From/To say what was counted), every figure
// included: AnalyticsFields with AllFields.
func (s *Service) Analytics(ctx context.Context, adID uint64, r Range) (Stats, error) {
	return s.AnalyticsFields(ctx, adID, r, AllFields)
}

// AnalyticsFields returns one ad's figures f (0: DefaultFields) over r (aligned to minutes; the returned From/To say what was
// counted). An ad without events in the window gets zeros. Like Top and Timeseries it refuses a range Check refuses, with a
// *ParamError.
func (s *Service) AnalyticsFields(ctx context.Context, adID uint64, r Range, f Fields) (Stats, error) {
	f = f.orDefault()
	if err := s.Check(r); err != nil {
		return Stats{}, err
	}
	if err := s.known(adID, "ad_id"); err != nil {
		return Stats{}, err
	}
	r = r.Align()
	var b builder
	b.sql.WriteString("SELECT ")
	b.sql.WriteString(aggregates(f))
	b.sql.WriteString(" FROM ")
	s.source(&b, planRange(r, true), adID, nil, columns(f), nil)
	out := Stats{AdID: adID, From: r.From, To: r.To}
	rows, err := s.DB.Query(ctx, b.sql.String(), b.args...)
	if err != nil {
		return out, err
	}
	defer rows.Close()
	// An aggregate without GROUP BY returns exactly one row, zeros when nothing matched.
	if rows.Next() {
		var rw row
		if err := rows.Scan(rw.dest(f)...); err != nil {
			return out, err
		}
		out.Metrics = rw.metrics(f)
	}
	return out, rows.Err()
}

// Top returns up to limit ads with events in r, ordered by sort (a SortKeys value) descending, then by ad_id, every figure
// included: TopFields with AllFields.
func (s *Service) Top(ctx context.Context, r Range, sort string, limit int) ([]Stats, error) {
	return s.TopFields(ctx, r, sort, limit, AllFields)
}

// TopFields returns up to limit ads with events in r, ordered by sort (a SortKeys value; "" for DefaultSort) descending, then by
// ad_id, with the figures f (0: DefaultFields) and always the one sorted by.
func (s *Service) TopFields(ctx context.Context, r Range, sort string, limit int, f Fields) ([]Stats, error) {
	if sort == "" {
		sort = DefaultSort
	}
	order, ok := sortExprs[sort]
	if !ok {
		return nil, errSort()
	}
	if limit <= 0 || limit > MaxTopLimit {
		return nil, errLimit()
	}
	if err := s.Check(r); err != nil {
		return nil, err
	}
	f = WithSort(f, sort)
	r = r.Align()
	p := planRange(r, true)
	// Merging uniq and t-digest states is what costs (one state per ad and minute or hour); the counts are cheap. Without state
	// figures, one query over the count columns is the whole answer. With them, when the order depends on counts only, a first
	// query over the count columns picks the ads that make the list, and the second reads the states of those ads alone: the
	// primary key (ad_id, ...) skips every other ad's granules. Two round trips rather than one query with an IN subquery
	// because 18.16 runs such a subquery once per UNION ALL part (BENCHMARKS.md, "Design measurements"; docs/sql.md). The
	// lists agree: same ORDER BY and LIMIT, and the second query sorts again.
	var only func(b *builder)
	if !f.states() {
		return s.topCounts(ctx, p, r, order, limit, f)
	}
	if !stateSorts[sort] {
		ids, err := s.topIDs(ctx, p, order, limit)
		if err != nil {
			return nil, err
		}
		if len(ids) == 0 {
			return []Stats{}, nil
		}
		only = func(b *builder) { b.adIDsIn(ids) }
	}
	var b builder
	b.sql.WriteString("SELECT ad_id, ")
	b.sql.WriteString(aggregates(f))
	b.sql.WriteString(" FROM ")
	s.source(&b, p, 0, nil, columns(f), only)
	b.sql.WriteString(" GROUP BY ad_id ORDER BY ")
	b.sql.WriteString(order)
	b.sql.WriteString(" DESC, ad_id ASC LIMIT ?")
	b.args = append(b.args, limit)
	return s.scanTop(ctx, &b, r, f)
}

// WithSort returns f (0: DefaultFields) with the figure sort orders by (a SortKeys value; "" for DefaultSort): a top list always
// shows what it is sorted by, and ranking by a state figure reads that state anyway.
func WithSort(f Fields, sort string) Fields {
	if sort == "" {
		sort = DefaultSort
	}
	bit, _ := Field(sort)
	return f.orDefault() | bit
}

// topCounts answers a top list whose figures f need no state: the ranking query of topIDs with the counts kept.
func (s *Service) topCounts(ctx context.Context, p plan, r Range, order string, limit int, f Fields) ([]Stats, error) {
	var b builder
	s.ranking(&b, p, order, limit)
	return s.scanTop(ctx, &b, r, f)
}

// ranking writes the query that ranks ads in p by order (an expression over the count aggregates alone) and keeps the first limit,
// with their counts: the whole answer of a top list without state figures, and the first step of one with them.
func (s *Service) ranking(b *builder, p plan, order string, limit int) {
	b.sql.WriteString("SELECT ad_id, ")
	b.sql.WriteString(countAggregates)
	b.sql.WriteString(" FROM ")
	s.source(b, p, 0, nil, countColumns, nil)
	b.sql.WriteString(" GROUP BY ad_id ORDER BY ")
	b.sql.WriteString(order)
	b.sql.WriteString(" DESC, ad_id ASC LIMIT ?")
	b.args = append(b.args, limit)
}

// scanTop runs a top list's query (ad_id, then aggregates(f)) and returns its rows in order.
func (s *Service) scanTop(ctx context.Context, b *builder, r Range, f Fields) ([]Stats, error) {
	rows, err := s.DB.Query(ctx, b.sql.String(), b.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Stats{}
	for rows.Next() {
		var rw row
		var id uint64
		if err := rows.Scan(rw.dest(f, &id)...); err != nil {
			return nil, err
		}
		out = append(out, Stats{AdID: id, From: r.From, To: r.To, Metrics: rw.metrics(f)})
	}
	return out, rows.Err()
}

// topIDs returns the ids of the first limit ads in p by order, an expression over the count aggregates alone.
func (s *Service) topIDs(ctx context.Context, p plan, order string, limit int) ([]uint64, error) {
	var b builder
	b.sql.WriteString("SELECT ad_id FROM (")
	s.ranking(&b, p, order, limit)
	b.sql.WriteString(")")
	rows, err := s.DB.Query(ctx, b.sql.String(), b.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ids := make([]uint64, 0, limit)
	for rows.Next() {
		var id uint64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// Buckets returns how many points a series over r (aligned) has with buckets of iv.
func Buckets(r Range, iv Interval) int {
	d := iv.Duration()
	if d == 0 {
		return 0
	}
	r = r.Align()
	first := r.From.Truncate(d)
	return int((r.To.Sub(first) + d - 1) / d)
}

// Timeseries returns one ad's metrics per bucket of iv over r, every figure included: TimeseriesFields with AllFields.
func (s *Service) Timeseries(ctx context.Context, adID uint64, r Range, iv Interval) (Series, error) {
	return s.TimeseriesFields(ctx, adID, r, iv, AllFields)
}

// TimeseriesFields returns one ad's figures f (0: DefaultFields) per bucket of iv over r, every bucket present (zeros where
// nothing happened). Buckets start on UTC minute/hour/day boundaries; the first and last may cover only part of a bucket when r
// does.
func (s *Service) TimeseriesFields(ctx context.Context, adID uint64, r Range, iv Interval, f Fields) (Series, error) {
	f = f.orDefault()
	d := iv.Duration()
	if d == 0 {
		return Series{}, &ParamError{Field: "interval", Msg: "interval must be minute, hour or day"}
	}
	if err := s.Check(r); err != nil {
		return Series{}, err
	}
	if n := Buckets(r, iv); n > s.maxPoints() {
		return Series{}, &ParamError{Field: "interval",
			Msg: fmt.Sprintf("%d points of one %s exceed the maximum of %d: use a coarser interval or a shorter range", n, iv, s.maxPoints())}
	}
	if err := s.known(adID, "id"); err != nil {
		return Series{}, err
	}
	r = r.Align()
	var bucket func(col string) string
	switch iv {
	case Minute:
		bucket = func(col string) string { return col }
	case Hour:
		bucket = func(col string) string {
			if col == "hour" {
				return col
			}
			return "toStartOfHour(" + col + ")"
		}
	case Day:
		bucket = func(col string) string { return "toStartOfDay(" + col + ")" }
	}
	var b builder
	b.sql.WriteString("SELECT t, ")
	b.sql.WriteString(aggregates(f))
	b.sql.WriteString(" FROM ")
	s.source(&b, planRange(r, iv != Minute), adID, bucket, columns(f), nil)
	b.sql.WriteString(" GROUP BY t ORDER BY t")
	out := Series{AdID: adID, Interval: iv, From: r.From, To: r.To}
	rows, err := s.DB.Query(ctx, b.sql.String(), b.args...)
	if err != nil {
		return out, err
	}
	defer rows.Close()
	got := map[int64]Metrics{}
	for rows.Next() {
		var rw row
		var t time.Time
		if err := rows.Scan(rw.dest(f, &t)...); err != nil {
			return out, err
		}
		got[t.Unix()] = rw.metrics(f)
	}
	if err := rows.Err(); err != nil {
		return out, err
	}
	// Zero-fill in Go: cheaper than asking 18.16 for WITH FILL (which it lacks) and it keeps the bucket arithmetic in one place.
	// Truncate is relative to the zero time, which is UTC midnight, so day buckets are UTC days as toStartOfDay makes them.
	out.Points = make([]Point, 0, Buckets(r, iv))
	for t := r.From.Truncate(d); t.Before(r.To); t = t.Add(d) {
		out.Points = append(out.Points, Point{T: t, Metrics: got[t.Unix()]})
	}
	return out, nil
}

func quoteIdent(s string) string {
	return "`" + strings.NewReplacer("\\", "\\\\", "`", "\\`").Replace(s) + "`"
}

// errParam reports whether err is a *ParamError.
func errParam(err error) (*ParamError, bool) {
	var pe *ParamError
	ok := errors.As(err, &pe)
	return pe, ok
}
