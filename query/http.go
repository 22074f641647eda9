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

	"github.com/adtracker/adtracker/ingest"
)

// Register adds GET /ads/analytics and GET /ads/{id}/timeseries. fasthttp/router prefers the static /ads/analytics over the
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
	qctx, cancel := context.WithTimeout(context.Background(), s.timeout())
	defer cancel()
	if args.Has("ad_id") {
		id, perr := parseID(args.Peek("ad_id"), "ad_id")
		if perr != nil {
			s.fail(ctx, perr)
			return
		}
		st, err := s.Analytics(qctx, id, r)
		if err != nil {
			s.fail(ctx, err)
			return
		}
		writeJSON(ctx, st)
		return
	}
	top, err := s.Top(qctx, r, sort, limit)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	writeJSON(ctx, top)
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
	qctx, cancel := context.WithTimeout(context.Background(), s.timeout())
	defer cancel()
	series, err := s.Timeseries(qctx, id, r, iv)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	writeJSON(ctx, series)
}

// parseRange reads start and end (RFC 3339). Both absent: the last Window up to now; one absent: Window before end, or now after
// start.
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
		r.To = s.now()
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
		ingest.WriteError(ctx, fasthttp.StatusInternalServerError, "internal error", "")
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json; charset=utf-8")
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

// fail answers err: 400 naming the parameter for a *ParamError, 503 when ClickHouse is unreachable, slow or overloaded, 500 for a
// query the server rejected for another reason (a bug here: logged).
func (s *Service) fail(ctx *fasthttp.RequestCtx, err error) {
	if pe, ok := errParam(err); ok {
		ingest.WriteError(ctx, fasthttp.StatusBadRequest, pe.Msg, pe.Field)
		return
	}
	var ex *ch.Exception
	if errors.As(err, &ex) && !transientCodes[ex.Code] {
		s.log().Error("analytics query failed", zap.Error(err), zap.ByteString("uri", ctx.RequestURI()))
		ingest.WriteError(ctx, fasthttp.StatusInternalServerError, "analytics query failed", "")
		return
	}
	s.log().Warn("analytics database unavailable", zap.Error(err))
	ctx.Response.Header.Set("Retry-After", "1")
	ingest.WriteError(ctx, fasthttp.StatusServiceUnavailable, errUnavailable, "")
}
