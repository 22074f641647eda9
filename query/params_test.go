package query

import (
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The parameters each analytics route takes are the ones docs/openapi.yaml lists for it (path parameters aside), so a name the
// spec documents is never refused as unknown, and a name the handler takes is documented.
func TestParamsMatchOpenAPI(t *testing.T) {
	raw, err := os.ReadFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type param struct {
		Ref  string `yaml:"$ref"`
		Name string `yaml:"name"`
		In   string `yaml:"in"`
	}
	var doc struct {
		Paths map[string]struct {
			Parameters []param // the path's own, shared by its operations
			Get        struct{ Parameters []param }
		} `yaml:"paths"`
		Components struct{ Parameters map[string]param } `yaml:"components"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]params{
		"/ads/analytics":       analyticsParams,
		"/ads/{id}/timeseries": timeseriesParams,
		"/ads/{id}/breakdown":  breakdownParams,
	} {
		var spec []string
		item, ok := doc.Paths[path]
		if !ok {
			t.Fatalf("docs/openapi.yaml has no %s", path)
		}
		for _, p := range append(item.Parameters, item.Get.Parameters...) {
			if name, ok := strings.CutPrefix(p.Ref, "#/components/parameters/"); ok {
				p = doc.Components.Parameters[name]
			}
			if p.In == "query" {
				spec = append(spec, p.Name)
			}
		}
		got := slices.Clone(want)
		slices.Sort(got)
		slices.Sort(spec)
		if !slices.Equal(got, spec) {
			t.Errorf("GET %s: the handler takes %v, docs/openapi.yaml lists %v", path, got, spec)
		}
	}
}
