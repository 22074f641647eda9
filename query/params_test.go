package query

import (
	"slices"
	"testing"

	"github.com/adtracker/adtracker/internal/httpx"
	"github.com/adtracker/adtracker/internal/testenv"
)

// The parameters each analytics route takes are the ones docs/openapi.yaml lists for it, so a name the spec documents is never
// refused as unknown, and a name the handler takes is documented.
func TestParamsMatchOpenAPI(t *testing.T) {
	for path, p := range map[string]httpx.Params{
		"/ads/analytics":       analyticsParams,
		"/ads/{id}/timeseries": timeseriesParams,
		"/ads/{id}/breakdown":  breakdownParams,
	} {
		got := slices.Sorted(slices.Values(p.Names))
		if spec := testenv.OpenAPIQueryParams(t, "GET", path); !slices.Equal(got, spec) {
			t.Errorf("GET %s: the handler takes %v, docs/openapi.yaml lists %v", path, got, spec)
		}
	}
}
