package testenv

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// OpenAPIQueryParams returns the query parameters docs/openapi.yaml lists for method on path (the path's shared ones included,
// references to components/parameters resolved), sorted, so a route's checked parameter list can be compared with its spec.
func OpenAPIQueryParams(t testing.TB, method, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(RepoRoot(t), "docs", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	type param struct {
		Ref  string `yaml:"$ref"`
		Name string `yaml:"name"`
		In   string `yaml:"in"`
	}
	type operation struct{ Parameters []param }
	var doc struct {
		Paths      map[string]map[string]yaml.Node `yaml:"paths"`
		Components struct{ Parameters map[string]param }
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	item, ok := doc.Paths[path]
	if !ok {
		t.Fatalf("docs/openapi.yaml has no %s", path)
	}
	var shared []param
	var op operation
	if n, ok := item["parameters"]; ok {
		if err := n.Decode(&shared); err != nil {
			t.Fatal(err)
		}
	}
	n, ok := item[strings.ToLower(method)]
	if !ok {
		t.Fatalf("docs/openapi.yaml has no %s %s", method, path)
	}
	if err := n.Decode(&op); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range append(shared, op.Parameters...) {
		if name, ok := strings.CutPrefix(p.Ref, "#/components/parameters/"); ok {
			p = doc.Components.Parameters[name]
		}
		if p.In == "query" {
			names = append(names, p.Name)
		}
	}
	slices.Sort(names)
	return names
}
