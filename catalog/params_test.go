package catalog

import (
	"slices"
	"testing"

	"github.com/adtracker/adtracker/internal/testenv"
)

// GET /ads takes the parameters docs/openapi.yaml lists for it, no more and no fewer (others are refused as unknown).
func TestListParamsMatchOpenAPI(t *testing.T) {
	got := slices.Sorted(slices.Values(listParams.Names))
	if spec := testenv.OpenAPIQueryParams(t, "GET", "/ads"); !slices.Equal(got, spec) {
		t.Errorf("GET /ads: the handler takes %v, docs/openapi.yaml lists %v", got, spec)
	}
}
