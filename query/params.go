package query

import (
	"github.com/valyala/fasthttp"

	"github.com/adtracker/adtracker/internal/httpx"
)

// The analytics routes' query parameters (httpx.Params: any other name, or one given twice, is a 400 naming it); fields may
// repeat, the occurrences combine. docs/openapi.yaml lists the same (TestParamsMatchOpenAPI).
var (
	analyticsParams  = httpx.Params{Names: []string{"ad_id", "start", "end", "fields", "sort", "limit", "by", "by_limit"}, Repeatable: []string{"fields"}}
	timeseriesParams = httpx.Params{Names: []string{"start", "end", "fields", "interval"}, Repeatable: []string{"fields"}}
	breakdownParams  = httpx.Params{Names: []string{"by", "start", "end", "limit"}}
)

// checkParams is p.Check as the service's error.
func checkParams(p httpx.Params, args *fasthttp.Args) *ParamError {
	if field, msg := p.Check(args); msg != "" {
		return &ParamError{Field: field, Msg: msg}
	}
	return nil
}
