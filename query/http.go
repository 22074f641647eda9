package query

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/adtracker/adtracker/internal/httpx"
)

// Register adds GET /ads/analytics and GET /ads/{id}/timeseries. Both take fields (ParseFields: which figures to return;
// DefaultFields when absent). fasthttp/router prefers the static /ads/analytics over the
// catalogue's /ads/{id}, and /ads/{id}/timeseries is one segment deeper, so the three coexist (router_test.go checks it).
//
// GET /ads/{id}/breakdown splits one ad's traffic by a dimension (by), and by= on /ads/analytics adds each listed ad's breakdown.
func (s *Service) Register(r *router.Router) {
	r.GET("/ads/analytics", s.handleAnalytics)
	r.GET("/ads/{id}/timeseries", s.handleTimeseries)
	r.GET("/ads/{id}/breakdown", s.handleBreakdown)
}

// errUnavailable is the 503 body when ClickHouse cannot answer.
const errUnavailable = "analytics database unavailable"

func (s *Service) handleAnalytics(ctx *fasthttp.RequestCtx) {
	args := ctx.QueryArgs()
	if perr := checkParams(analyticsParams, args); perr != nil {
		s.fail(ctx, perr)
		return
	}
	r, err := s.parseRange(args)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	// sort and limit are validated even when ad_id makes them irrelevant, so a typo is reported rather than silently ignored.
	sort := DefaultSort
	if args.Has("sort") {
		sort = string(args.Peek("sort"))
	}
	if _, ok := sortExprs[sort]; !ok {
		s.fail(ctx, errSort())
		return
	}
	limit := DefaultTopLimit
	if args.Has("limit") {
		n, err := strconv.Atoi(string(args.Peek("limit")))
		if err != nil || n < 1 || n > MaxTopLimit {
			s.fail(ctx, errLimit())
			return
		}
		limit = n
	}
	fields, err := parseFields(args)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	var by Dimension
	byLimit := DefaultTopBreakdownValues
	if args.Has("by") {
		if by, err = ParseDimension(string(args.Peek("by"))); err != nil {
			s.fail(ctx, err)
			return
		}
		if byLimit, err = parseLimit(args, "by_limit", DefaultTopBreakdownValues); err != nil {
			s.fail(ctx, err)
			return
		}
	}
	qctx, cancel := context.WithTimeout(context.Background(), s.timeout())
	defer cancel()
	if args.Has("ad_id") {
		id, perr := parseID(args.Peek("ad_id"), "ad_id")
		if perr != nil {
			s.fail(ctx, perr)
			return
		}
		st, err := s.AnalyticsFields(qctx, id, r, fields)
		if err != nil {
			s.fail(ctx, err)
			return
		}
		v := []statsJSON{statsView(&st, fields)}
		if err := s.attachBreakdowns(qctx, v, r, by, byLimit); err != nil {
			s.fail(ctx, err)
			return
		}
		writeJSON(ctx, v[0])
		return
	}
	// A list shows the figure it is sorted by, asked for or not.
	fields = WithSort(fields, sort)
	top, err := s.TopFields(qctx, r, sort, limit, fields)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	out := make([]statsJSON, len(top))
	for i := range top {
		out[i] = statsView(&top[i], fields)
	}
	if err := s.attachBreakdowns(qctx, out, r, by, byLimit); err != nil {
		s.fail(ctx, err)
		return
	}
	writeJSON(ctx, out)
}

// attachBreakdowns gives each ad of out its top values of dimension by (one query for all of them); nothing when by is empty.
func (s *Service) attachBreakdowns(ctx context.Context, out []statsJSON, r Range, by Dimension, limit int) error {
	if by == "" {
		return nil
	}
	ids := make([]uint64, len(out))
	for i := range out {
		ids[i] = out[i].AdID
	}
	bds, err := s.TopBreakdowns(ctx, ids, r, by, limit)
	if err != nil {
		return err
	}
	for i := range out {
		bd := breakdownView(bds[out[i].AdID])
		out[i].Breakdown = &bd
	}
	return nil
}

// parseLimit reads an optional integer parameter between 1 and MaxBreakdownValues.
func parseLimit(args *fasthttp.Args, name string, def int) (int, error) {
	if !args.Has(name) {
		return def, nil
	}
	n, err := strconv.Atoi(string(args.Peek(name)))
	if err != nil || n < 1 || n > MaxBreakdownValues {
		return 0, errValues(name)
	}
	return n, nil
}

// handleBreakdown answers GET /ads/{id}/breakdown?by=…&start=&end=&limit=: the ad's traffic over whole hours split by one
// dimension, at most limit values (DefaultBreakdownValues) and the rest summed in other, so values and other add up to totals.
func (s *Service) handleBreakdown(ctx *fasthttp.RequestCtx) {
	raw, _ := ctx.UserValue("id").(string)
	id, perr := parseID([]byte(raw), "id")
	if perr != nil {
		s.fail(ctx, perr)
		return
	}
	args := ctx.QueryArgs()
	if perr := checkParams(breakdownParams, args); perr != nil {
		s.fail(ctx, perr)
		return
	}
	by, err := ParseDimension(string(args.Peek("by")))
	if err != nil {
		s.fail(ctx, err)
		return
	}
	r, err := s.parseRange(args)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	limit, err := parseLimit(args, "limit", DefaultBreakdownValues)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	qctx, cancel := context.WithTimeout(context.Background(), s.timeout())
	defer cancel()
	bd, err := s.BreakdownOf(qctx, id, r, by, limit)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	writeJSON(ctx, breakdownView(bd))
}

func (s *Service) handleTimeseries(ctx *fasthttp.RequestCtx) {
	raw, _ := ctx.UserValue("id").(string)
	id, perr := parseID([]byte(raw), "id")
	if perr != nil {
		s.fail(ctx, perr)
		return
	}
	args := ctx.QueryArgs()
	if perr := checkParams(timeseriesParams, args); perr != nil {
		s.fail(ctx, perr)
		return
	}
	r, err := s.parseRange(args)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	iv := Interval(args.Peek("interval"))
	if len(iv) == 0 {
		iv = Hour
	}
	fields, err := parseFields(args)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	qctx, cancel := context.WithTimeout(context.Background(), s.timeout())
	defer cancel()
	series, err := s.TimeseriesFields(qctx, id, r, iv, fields)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	out := seriesJSON{AdID: series.AdID, Interval: series.Interval, From: series.From, To: series.To, Points: make([]pointJSON, len(series.Points))}
	for i := range series.Points {
		p := &series.Points[i]
		out.Points[i] = pointJSON{T: p.T, metricsJSON: metricsView(&p.Metrics, fields)}
	}
	writeJSON(ctx, out)
}

// parseFields reads the fields parameter (ParseFields; every occurrence counts): DefaultFields when absent.
func parseFields(args *fasthttp.Args) (Fields, error) {
	var f Fields
	for _, v := range args.PeekMulti("fields") {
		g, err := ParseFields(string(v))
		if err != nil {
			return 0, err
		}
		f |= g
	}
	return f.orDefault(), nil
}

// The JSON shapes: Stats, Point and Series with only the figures asked for. A figure not asked for is absent, not 0, so a client
// never reads a zero that was not measured; a figure asked for is present even when it is 0.
type (
	metricsJSON struct {
		Impressions           *uint64  `json:"impressions,omitempty"`
		Clicks                *uint64  `json:"clicks,omitempty"`
		CTR                   *float64 `json:"ctr,omitempty"`
		UniqueViewers         *uint64  `json:"unique_viewers,omitempty"`
		Starts                *uint64  `json:"starts,omitempty"`
		FirstQuartile         *uint64  `json:"first_quartile,omitempty"`
		Midpoint              *uint64  `json:"midpoint,omitempty"`
		ThirdQuartile         *uint64  `json:"third_quartile,omitempty"`
		Completes             *uint64  `json:"completes,omitempty"`
		CompletionRate        *float64 `json:"completion_rate,omitempty"`
		AvgPlaybackSeconds    *float64 `json:"avg_playback_seconds,omitempty"`
		P50PlaybackSeconds    *float64 `json:"p50_playback_seconds,omitempty"`
		P95PlaybackSeconds    *float64 `json:"p95_playback_seconds,omitempty"`
		ViewableImpressions   *uint64  `json:"viewable_impressions,omitempty"`
		MeasurableImpressions *uint64  `json:"measurable_impressions,omitempty"`
		// The two rates are null when their denominator is 0 (nothing measured, no impression): a rate that was not measured
		// is not 0 %. RawMessage tells absent (nil) from null.
		ViewabilityRate    json.RawMessage `json:"viewability_rate,omitempty"`
		InvalidImpressions *uint64         `json:"invalid_impressions,omitempty"`
		InvalidClicks      *uint64         `json:"invalid_clicks,omitempty"`
		IVTRate            json.RawMessage `json:"ivt_rate,omitempty"`
	}
	statsJSON struct {
		AdID uint64    `json:"ad_id"`
		From time.Time `json:"from"`
		To   time.Time `json:"to"`
		metricsJSON
		// Breakdown is there when the request has by.
		Breakdown *breakdownJSON `json:"breakdown,omitempty"`
	}
	// countsJSON are a breakdown value's figures: every one always present.
	countsJSON struct {
		Events                uint64          `json:"events"`
		Impressions           uint64          `json:"impressions"`
		Clicks                uint64          `json:"clicks"`
		CTR                   float64         `json:"ctr"`
		Starts                uint64          `json:"starts"`
		Completes             uint64          `json:"completes"`
		CompletionRate        float64         `json:"completion_rate"`
		ViewableImpressions   uint64          `json:"viewable_impressions"`
		MeasurableImpressions uint64          `json:"measurable_impressions"`
		ViewabilityRate       json.RawMessage `json:"viewability_rate"`
	}
	valueJSON struct {
		Value string `json:"value"`
		countsJSON
	}
	otherJSON struct {
		Values int `json:"values"`
		countsJSON
	}
	breakdownJSON struct {
		AdID   uint64      `json:"ad_id"`
		By     Dimension   `json:"by"`
		From   time.Time   `json:"from"`
		To     time.Time   `json:"to"`
		Totals countsJSON  `json:"totals"`
		Values []valueJSON `json:"values"`
		Other  *otherJSON  `json:"other,omitempty"`
	}
	pointJSON struct {
		T time.Time `json:"t"`
		metricsJSON
	}
	seriesJSON struct {
		AdID     uint64      `json:"ad_id"`
		Interval Interval    `json:"interval"`
		From     time.Time   `json:"from"`
		To       time.Time   `json:"to"`
		Points   []pointJSON `json:"points"`
	}
)

// metricsView points at m's figures that f holds (m must outlive the view).
func metricsView(m *Metrics, f Fields) metricsJSON {
	var v metricsJSON
	u := func(bit int, p *uint64) *uint64 {
		if f&(1<<bit) == 0 {
			return nil
		}
		return p
	}
	fl := func(bit int, p *float64) *float64 {
		if f&(1<<bit) == 0 {
			return nil
		}
		return p
	}
	v.Impressions, v.Clicks, v.CTR = u(0, &m.Impressions), u(1, &m.Clicks), fl(2, &m.CTR)
	v.UniqueViewers, v.Starts = u(3, &m.UniqueViewers), u(4, &m.Starts)
	v.FirstQuartile, v.Midpoint, v.ThirdQuartile = u(5, &m.FirstQuartile), u(6, &m.Midpoint), u(7, &m.ThirdQuartile)
	v.Completes, v.CompletionRate = u(8, &m.Completes), fl(9, &m.CompletionRate)
	v.AvgPlaybackSeconds, v.P50PlaybackSeconds, v.P95PlaybackSeconds = fl(10, &m.AvgPlaybackSeconds), fl(11, &m.P50PlaybackSeconds),
		fl(12, &m.P95PlaybackSeconds)
	v.ViewableImpressions, v.MeasurableImpressions = u(13, &m.ViewableImpressions), u(14, &m.MeasurableImpressions)
	v.InvalidImpressions, v.InvalidClicks = u(16, &m.InvalidImpressions), u(17, &m.InvalidClicks)
	measured, impressed := m.RatesDefined()
	if f&(1<<15) != 0 {
		v.ViewabilityRate = rate(m.ViewabilityRate, measured)
	}
	if f&(1<<18) != 0 {
		v.IVTRate = rate(m.IVTRate, impressed)
	}
	return v
}

// rate is r as JSON, or null when it has no denominator.
func rate(r float64, defined bool) json.RawMessage {
	if !defined {
		return json.RawMessage("null")
	}
	b, _ := json.Marshal(r)
	return b
}

func countsView(c Counts) countsJSON {
	measurable := c.Viewables + c.NotViewables
	return countsJSON{Events: c.Events, Impressions: c.Impressions, Clicks: c.Clicks, CTR: ratio(c.Clicks, c.Impressions),
		Starts: c.Starts, Completes: c.Completes, CompletionRate: ratio(c.Completes, c.Starts), ViewableImpressions: c.Viewables,
		MeasurableImpressions: measurable, ViewabilityRate: rate(ratio(c.Viewables, measurable), measurable > 0)}
}

func breakdownView(bd Breakdown) breakdownJSON {
	out := breakdownJSON{AdID: bd.AdID, By: bd.By, From: bd.From, To: bd.To, Totals: countsView(bd.Totals),
		Values: make([]valueJSON, len(bd.Values))}
	for i, v := range bd.Values {
		out.Values[i] = valueJSON{Value: v.Value, countsJSON: countsView(v.Counts)}
	}
	if bd.Other != nil {
		out.Other = &otherJSON{Values: bd.Other.Values, countsJSON: countsView(bd.Other.Counts)}
	}
	return out
}

func statsView(st *Stats, f Fields) statsJSON {
	return statsJSON{AdID: st.AdID, From: st.From, To: st.To, metricsJSON: metricsView(&st.Metrics, f)}
}

// parseRange reads start and end (RFC 3339). Both absent: the Window of whole hours ending with the current hour; one absent:
// Window before end, or now after start.
func (s *Service) parseRange(args *fasthttp.Args) (Range, error) {
	var r Range
	var hasFrom, hasTo bool
	for _, p := range []struct {
		name string
		dst  *time.Time
		has  *bool
	}{{"start", &r.From, &hasFrom}, {"end", &r.To, &hasTo}} {
		if !args.Has(p.name) {
			continue
		}
		t, err := parseTime(string(args.Peek(p.name)))
		if err != nil {
			return r, &ParamError{Field: p.name, Msg: p.name + " must be an RFC 3339 time such as 2025-04-21T15:00:00Z"}
		}
		*p.dst, *p.has = t.UTC(), true
	}
	switch {
	case !hasFrom && !hasTo:
		// Whole hours: the current one and those before it, Window in all. Every bucket is then a row of the hour rollup, so the
		// default question never scans the minute rollup for ragged edges (which is ordered by ad, not time, and cost a top list
		// more than everything else together: docs/sql.md). It also makes the answer the same for every request within an hour
		// but for new events, which dashboards and caches like. The current hour's end is in the future; nothing is there yet.
		r.To = s.now().Truncate(time.Hour).Add(time.Hour)
		r.From = r.To.Add(-s.window())
	case !hasFrom:
		r.From = r.To.Add(-s.window())
	case !hasTo:
		r.To = s.now()
	}
	return r, s.Check(r)
}

// parseTime reads an RFC 3339 time. A query string turns an unescaped '+' into a space, so "…T12:00:00+02:00" typed into a URL
// (curl does not escape it) arrives as "…T12:00:00 02:00"; a space there can stand for nothing else, so it is read as the '+' it
// was, instead of refusing a time the client wrote correctly.
func parseTime(v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if n := len(v); err != nil && n > len("+00:00") && v[n-6] == ' ' {
		return time.Parse(time.RFC3339Nano, v[:n-6]+"+"+v[n-5:])
	}
	return t, err
}

// parseID accepts a positive decimal ad id that fits Postgres' bigint.
func parseID(b []byte, field string) (uint64, *ParamError) {
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || n < 1 || len(b) == 0 || b[0] == '+' {
		return 0, &ParamError{Field: field, Msg: field + " must be a positive integer"}
	}
	return uint64(n), nil
}

func writeJSON(ctx *fasthttp.RequestCtx, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		httpx.WriteError(ctx, fasthttp.StatusInternalServerError, "internal error", "")
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType(httpx.ContentJSON)
	ctx.SetBody(append(b, '\n'))
}

// Server exception codes that mean "not now" rather than "this query is wrong": the client may retry.
var transientCodes = map[int32]bool{
	60:  true, // UNKNOWN_TABLE: the rollups are not migrated yet
	81:  true, // UNKNOWN_DATABASE
	159: true, // TIMEOUT_EXCEEDED
	202: true, // TOO_MANY_SIMULTANEOUS_QUERIES
	241: true, // MEMORY_LIMIT_EXCEEDED
	242: true, // TABLE_IS_READ_ONLY
}

// fail answers err: 400 naming the parameter for a *ParamError, 404 naming it for an *UnknownAdError, 503 when ClickHouse is unreachable, slow or overloaded, 500 for a
// query the server rejected for another reason (a bug here: logged).
func (s *Service) fail(ctx *fasthttp.RequestCtx, err error) {
	if pe, ok := errParam(err); ok {
		httpx.WriteError(ctx, fasthttp.StatusBadRequest, pe.Msg, pe.Field)
		return
	}
	var ue *UnknownAdError
	if errors.As(err, &ue) {
		httpx.WriteError(ctx, fasthttp.StatusNotFound, "unknown ad", ue.Field)
		return
	}
	var ex *ch.Exception
	if errors.As(err, &ex) && !transientCodes[ex.Code] {
		s.log().Error("analytics query failed", zap.Error(err), zap.ByteString("uri", ctx.RequestURI()))
		httpx.WriteError(ctx, fasthttp.StatusInternalServerError, "analytics query failed", "")
		return
	}
	s.log().Warn("analytics database unavailable", zap.Error(err))
	ctx.Response.Header.Set("Retry-After", "1")
	httpx.WriteError(ctx, fasthttp.StatusServiceUnavailable, errUnavailable, "")
}
