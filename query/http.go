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
func (s *Service) Register(r *router.Router) {
	r.GET("/ads/analytics", s.handleAnalytics)
	r.GET("/ads/{id}/timeseries", s.handleTimeseries)
}

// errUnavailable is the 503 body when ClickHouse cannot answer.
const errUnavailable = "analytics database unavailable"

func (s *Service) handleAnalytics(ctx *fasthttp.RequestCtx) {
	args := ctx.QueryArgs()
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
		writeJSON(ctx, statsView(&st, fields))
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
	writeJSON(ctx, out)
}

func (s *Service) handleTimeseries(ctx *fasthttp.RequestCtx) {
	raw, _ := ctx.UserValue("id").(string)
	id, perr := parseID([]byte(raw), "id")
	if perr != nil {
		s.fail(ctx, perr)
		return
	}
	args := ctx.QueryArgs()
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
		Impressions        *uint64  `json:"impressions,omitempty"`
		Clicks             *uint64  `json:"clicks,omitempty"`
		CTR                *float64 `json:"ctr,omitempty"`
		UniqueViewers      *uint64  `json:"unique_viewers,omitempty"`
		Starts             *uint64  `json:"starts,omitempty"`
		FirstQuartile      *uint64  `json:"first_quartile,omitempty"`
		Midpoint           *uint64  `json:"midpoint,omitempty"`
		ThirdQuartile      *uint64  `json:"third_quartile,omitempty"`
		Completes          *uint64  `json:"completes,omitempty"`
		CompletionRate     *float64 `json:"completion_rate,omitempty"`
		AvgPlaybackSeconds *float64 `json:"avg_playback_seconds,omitempty"`
		P50PlaybackSeconds *float64 `json:"p50_playback_seconds,omitempty"`
		P95PlaybackSeconds *float64 `json:"p95_playback_seconds,omitempty"`
	}
	statsJSON struct {
		AdID uint64    `json:"ad_id"`
		From time.Time `json:"from"`
		To   time.Time `json:"to"`
		metricsJSON
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
	return v
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
		t, err := time.Parse(time.RFC3339Nano, string(args.Peek(p.name)))
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
