package query

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/adtracker/adtracker/ingest"
	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/ingest/pipeline"
)

// The dashboards under grafana/dashboards are checked here: every ClickHouse panel and variable query is expanded the way Grafana
// and grafana-clickhouse-datasource do it and run on the real 18.16 server; the expansions are also kept under
// docs/queries/grafana/, which scripts/chdb-check.sh runs on a current engine. Prometheus panels are checked with promtool and
// against the metric names the service registers.

const (
	dashboardDir  = "../grafana/dashboards"
	expandedDir   = "../docs/queries/grafana"
	chPluginType  = "grafana-clickhouse-datasource"
	chDatasource  = "clickhouse"
	promDatasrc   = "prometheus"
	committedStep = 5 * time.Minute // the $__interval of the committed expansions
)

type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashTarget struct {
	RefID      string `json:"refId"`
	Datasource *dsRef `json:"datasource"`
	RawSQL     string `json:"rawSql"`
	Expr       string `json:"expr"`
}

type dashPanel struct {
	ID         int          `json:"id"`
	Title      string       `json:"title"`
	Datasource *dsRef       `json:"datasource"`
	Targets    []dashTarget `json:"targets"`
	Panels     []dashPanel  `json:"panels"` // panels inside a row
}

type dashVar struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Datasource *dsRef          `json:"datasource"`
	Query      json.RawMessage `json:"query"`
}

type dashboard struct {
	UID        string      `json:"uid"`
	Title      string      `json:"title"`
	Panels     []dashPanel `json:"panels"`
	Templating struct {
		List []dashVar `json:"list"`
	} `json:"templating"`
}

// dashQuery is one query of a dashboard with where it came from.
type dashQuery struct {
	dashboard, name string // name: "panel-3-a-completion-funnel" or "var-ad_id"
	ds              dsRef
	text            string
}

func loadDashboards(t *testing.T) map[string]dashboard {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dashboardDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards under %s: %v", dashboardDir, err)
	}
	out := map[string]dashboard{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[filepath.Base(f)] = d
	}
	return out
}

var nonWord = regexp.MustCompile(`[^a-z0-9]+`)

func slug(s string) string {
	return strings.Trim(nonWord.ReplaceAllString(strings.ToLower(s), "-"), "-")
}

// queries lists every query of d. A target without its own datasource uses the panel's, as in Grafana.
func queries(t *testing.T, file string, d dashboard) []dashQuery {
	t.Helper()
	var out []dashQuery
	var walk func(ps []dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				ds := tg.Datasource
				if ds == nil {
					ds = p.Datasource
				}
				if ds == nil {
					t.Fatalf("%s panel %d %q target %s has no datasource", file, p.ID, p.Title, tg.RefID)
				}
				text := tg.RawSQL
				if ds.UID != chDatasource {
					text = tg.Expr
				}
				out = append(out, dashQuery{dashboard: file, ds: *ds, text: text,
					name: fmt.Sprintf("panel-%d-%s-%s", p.ID, strings.ToLower(tg.RefID), slug(strings.ReplaceAll(p.Title, "$ad_id", "")))})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" || v.Datasource == nil {
			continue
		}
		// The plugin takes a variable query as a string or as {"rawSql": ...}.
		var text string
		if err := json.Unmarshal(v.Query, &text); err != nil {
			var obj struct {
				RawSQL string `json:"rawSql"`
			}
			if err := json.Unmarshal(v.Query, &obj); err != nil {
				t.Fatalf("%s variable %s: query is neither a string nor {rawSql}: %s", file, v.Name, v.Query)
			}
			text = obj.RawSQL
		}
		out = append(out, dashQuery{dashboard: file, ds: *v.Datasource, text: text, name: "var-" + v.Name})
	}
	return out
}

// grafanaRange is what a panel request carries: the picked range and the interval Grafana computed for it.
type grafanaRange struct {
	from, to time.Time
	interval time.Duration
}

var templateVar = regexp.MustCompile(`\$\{(\w+)\}|\$(\w+)|\[\[(\w+)\]\]`)

// expandGrafana does what happens to a panel's SQL before ClickHouse sees it. First Grafana's template service replaces dashboard
// variables ($ad_id, ${ad_id}, [[ad_id]]; a single value is inserted as is — the plugin's format() only quotes multi-values);
// names it does not know, such as $__timeFilter, stay. Then the plugin's backend (pkg/macros/macros.go, applied by sqlds)
// replaces its macros. The expansions below are the plugin's, character for character.
func expandGrafana(sql string, r grafanaRange, vars map[string]string) (string, error) {
	sql = templateVar.ReplaceAllStringFunc(sql, func(m string) string {
		sub := templateVar.FindStringSubmatch(m)
		name := sub[1] + sub[2] + sub[3]
		if v, ok := vars[name]; ok {
			return v
		}
		return m
	})
	sec := int(math.Max(r.interval.Seconds(), 1))
	ms := int(math.Max(float64(r.interval.Milliseconds()), 1))
	dt := func(t time.Time) string { return fmt.Sprintf("toDateTime(%d)", t.Unix()) }
	dt64 := func(t time.Time) string { return fmt.Sprintf("fromUnixTimestamp64Milli(%d)", t.UnixMilli()) }
	date := func(t time.Time) string { return fmt.Sprintf("toDate('%s')", t.UTC().Format("2006-01-02")) }
	macros := map[string]func(args []string) (string, error){
		"fromTime":    func([]string) (string, error) { return dt(r.from), nil },
		"toTime":      func([]string) (string, error) { return dt(r.to), nil },
		"fromTime_ms": func([]string) (string, error) { return dt64(r.from), nil },
		"toTime_ms":   func([]string) (string, error) { return dt64(r.to), nil },
		"timeFilter": one(func(c string) string {
			return fmt.Sprintf("%s >= %s AND %s <= %s", c, dt(r.from), c, dt(r.to))
		}),
		"timeFilter_ms": one(func(c string) string {
			return fmt.Sprintf("%s >= %s AND %s <= %s", c, dt64(r.from), c, dt64(r.to))
		}),
		"dateFilter": one(func(c string) string {
			return fmt.Sprintf("%s >= %s AND %s <= %s", c, date(r.from), c, date(r.to))
		}),
		"timeInterval": one(func(c string) string {
			return fmt.Sprintf("toStartOfInterval(toDateTime(%s), INTERVAL %d second)", c, sec)
		}),
		"timeInterval_ms": one(func(c string) string {
			return fmt.Sprintf("toStartOfInterval(toDateTime64(%s, 3), INTERVAL %d millisecond)", c, ms)
		}),
		"interval_s": func([]string) (string, error) { return fmt.Sprint(sec), nil },
	}
	dateTime := func(args []string) (string, error) {
		if len(args) != 2 {
			return "", fmt.Errorf("expected 2 arguments, received %d", len(args))
		}
		return fmt.Sprintf("(%s >= %s AND %s <= %s) AND (%s >= %s AND %s <= %s)",
			args[0], date(r.from), args[0], date(r.to), args[1], dt(r.from), args[1], dt(r.to)), nil
	}
	macros["dateTimeFilter"], macros["dt"] = dateTime, dateTime

	var out strings.Builder
	for i := 0; i < len(sql); {
		if !strings.HasPrefix(sql[i:], "$__") {
			out.WriteByte(sql[i])
			i++
			continue
		}
		j := i + 3
		for j < len(sql) && (sql[j] == '_' || sql[j] >= 'a' && sql[j] <= 'z' || sql[j] >= 'A' && sql[j] <= 'Z' || sql[j] >= '0' && sql[j] <= '9') {
			j++
		}
		name := sql[i+3 : j]
		fn, ok := macros[name]
		if !ok {
			return "", fmt.Errorf("unknown macro $__%s", name)
		}
		var args []string
		if j < len(sql) && sql[j] == '(' {
			depth, k := 0, j
			for ; k < len(sql); k++ {
				if sql[k] == '(' {
					depth++
				} else if sql[k] == ')' {
					depth--
					if depth == 0 {
						break
					}
				}
			}
			if k == len(sql) {
				return "", fmt.Errorf("unclosed arguments of $__%s", name)
			}
			for _, a := range strings.Split(sql[j+1:k], ",") {
				args = append(args, strings.TrimSpace(a))
			}
			j = k + 1
		}
		res, err := fn(args)
		if err != nil {
			return "", fmt.Errorf("$__%s: %w", name, err)
		}
		out.WriteString(res)
		i = j
	}
	if s := out.String(); strings.Contains(s, "$") {
		return "", fmt.Errorf("unexpanded variable left in:\n%s", s)
	}
	return out.String(), nil
}

func one(f func(col string) string) func([]string) (string, error) {
	return func(args []string) (string, error) {
		if len(args) != 1 {
			return "", fmt.Errorf("expected 1 argument, received %d", len(args))
		}
		return f(args[0]), nil
	}
}

func TestExpandGrafana(t *testing.T) {
	r := grafanaRange{from: time.Unix(1415792726, 0), to: time.Unix(1447328726, 0), interval: 20 * time.Second}
	f := func(in, want string) {
		t.Helper()
		got, err := expandGrafana(in, r, map[string]string{"ad_id": "7"})
		if err != nil || got != want {
			t.Fatalf("expandGrafana(%q)\n got %q, %v\nwant %q", in, got, err, want)
		}
	}
	// The plugin's documented examples (src/ch-parser/pluginMacros.ts).
	f("$__timeFilter(time)", "time >= toDateTime(1415792726) AND time <= toDateTime(1447328726)")
	f("$__fromTime", "toDateTime(1415792726)")
	f("$__toTime", "toDateTime(1447328726)")
	f("$__interval_s", "20")
	f("$__timeInterval(column)", "toStartOfInterval(toDateTime(column), INTERVAL 20 second)")
	f("$__dateFilter(date)", "date >= toDate('2014-11-12') AND date <= toDate('2015-11-12')")
	f("$__timeFilter_ms(t)", "t >= fromUnixTimestamp64Milli(1415792726000) AND t <= fromUnixTimestamp64Milli(1447328726000)")
	// Variables first, then macros; a macro whose name extends another is not cut short.
	f("ad_id = $ad_id AND x = ${ad_id} AND [[ad_id]] > 0", "ad_id = 7 AND x = 7 AND 7 > 0")
	f("greatest($__interval_s, 60)", "greatest(20, 60)")
	f("toStartOfHour($__fromTime) AND $__timeFilter( minute )", "toStartOfHour(toDateTime(1415792726)) AND minute >= toDateTime(1415792726) AND minute <= toDateTime(1447328726)")
	bad := func(in string) {
		t.Helper()
		if got, err := expandGrafana(in, r, nil); err == nil {
			t.Fatalf("expandGrafana(%q) = %q, want an error", in, got)
		}
	}
	bad("$__timeFilter(a, b)")
	bad("$__nosuch")
	bad("ad_id = $ad_id") // no value for the variable
	bad("$__timeFilter(minute")
}

func TestDashboards(t *testing.T) {
	ds := loadDashboards(t)
	perf, ok := ds["ad-performance.json"]
	if !ok {
		t.Fatal("grafana/dashboards/ad-performance.json is missing")
	}
	health, ok := ds["ingest-health.json"]
	if !ok {
		t.Fatal("grafana/dashboards/ingest-health.json is missing")
	}
	var chQueries []dashQuery
	for _, q := range queries(t, "ad-performance.json", perf) {
		if q.ds.UID != chDatasource || q.ds.Type != chPluginType {
			t.Fatalf("ad performance %s: datasource %+v, want uid %q type %q", q.name, q.ds, chDatasource, chPluginType)
		}
		if eventsTable.MatchString(q.text) {
			t.Fatalf("ad performance %s reads raw events; dashboards read the rollups:\n%s", q.name, q.text)
		}
		chQueries = append(chQueries, q)
	}
	hasVar := false
	for _, v := range perf.Templating.List {
		hasVar = hasVar || v.Name == "ad_id" && v.Type == "query"
	}
	if !hasVar {
		t.Fatal("ad performance has no ad_id query variable")
	}
	var promExprs []string
	for _, q := range queries(t, "ingest-health.json", health) {
		if q.ds.UID != promDatasrc {
			t.Fatalf("ingest health %s: datasource %+v, want uid %q", q.name, q.ds, promDatasrc)
		}
		promExprs = append(promExprs, q.text)
	}

	t.Run("prometheus", func(t *testing.T) { checkPromQL(t, promExprs) })
	t.Run("expansions committed", func(t *testing.T) { checkExpanded(t, chQueries) })
	t.Run("clickhouse 18.16", func(t *testing.T) { runDashboardSQL(t, chQueries) })
}

// checkPromQL parses every expression with promtool (as recording rules) and checks that each adtracker_ metric the dashboard
// names is one the service registers, so a renamed metric breaks this test instead of a panel.
func checkPromQL(t *testing.T, exprs []string) {
	metric := regexp.MustCompile(`adtracker_[a-z_]+`)
	registered := registeredMetrics(t)
	for _, must := range []string{"adtracker_events_accepted_total", "adtracker_ring_used_slots", "adtracker_ring_capacity_slots",
		"adtracker_spill_bytes", "adtracker_pipeline_flush_duration_seconds_bucket", "adtracker_clickhouse_insert_errors_total"} {
		found := false
		for _, e := range exprs {
			found = found || strings.Contains(e, must)
		}
		if !found {
			t.Errorf("ingest health does not chart %s", must)
		}
	}
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range exprs {
		for _, m := range metric.FindAllString(e, -1) {
			base := m
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(m, suf); ok && registered[b] {
					base = b
				}
			}
			if !registered[base] {
				t.Errorf("ingest health uses %s, which the service does not register", m)
			}
		}
		// $__rate_interval is Grafana's; any duration makes the expression parseable.
		expr := strings.ReplaceAll(e, "$__rate_interval", "1m")
		b, _ := json.Marshal(expr) // a JSON string is a valid YAML scalar
		fmt.Fprintf(&rules, "      - record: dashboard:expr%d\n        expr: %s\n", i, b)
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus): PromQL syntax not checked")
	}
	path := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(path, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s\n%s", err, out, rules.String())
	}
}

// nopSink lets a pipeline start without a database, to list its metrics.
type nopSink struct{}

func (nopSink) Insert(context.Context, *event.Batch) error { return nil }
func (nopSink) Ping(context.Context) error                 { return nil }

func registeredMetrics(t *testing.T) map[string]bool {
	cfg := pipeline.Defaults()
	cfg.Dir = t.TempDir()
	cfg.InMemoryRing = true
	p, err := pipeline.Open(cfg, nopSink{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	descs := make(chan *prometheus.Desc, 256)
	for _, c := range append(p.Collectors(), ingest.Collectors()...) {
		c.Describe(descs)
	}
	close(descs)
	name := regexp.MustCompile(`fqName: "([^"]+)"`)
	out := map[string]bool{}
	for d := range descs {
		if m := name.FindStringSubmatch(d.String()); m != nil {
			out[m[1]] = true
		}
	}
	return out
}

// committedRange is the fixed range of the committed expansions (the golden data set's three hours).
func committedRange() grafanaRange {
	return grafanaRange{from: t0, to: t0.Add(3 * time.Hour), interval: committedStep}
}

func expandedFile(q dashQuery) string {
	return strings.TrimSuffix(q.dashboard, ".json") + "-" + q.name + ".sql"
}

// checkExpanded keeps docs/queries/grafana/ equal to the dashboards' queries expanded over committedRange with $ad_id = 1, so
// scripts/chdb-check.sh runs exactly what Grafana would send; -update rewrites the directory.
func checkExpanded(t *testing.T, qs []dashQuery) {
	want := map[string]string{}
	for _, q := range qs {
		sql, err := expandGrafana(q.text, committedRange(), map[string]string{"ad_id": "1"})
		if err != nil {
			t.Fatalf("%s %s: %v", q.dashboard, q.name, err)
		}
		want[expandedFile(q)] = fmt.Sprintf("-- Generated by query/grafana_test.go from grafana/dashboards/%s (%s) with the macros expanded as\n"+
			"-- grafana-clickhouse-datasource does, range %s .. %s, $__interval %s, $ad_id = 1. Do not edit:\n"+
			"-- change the dashboard and run go test ./query -run TestDashboards -update.\n%s;\n",
			q.dashboard, q.name, t0.Format(time.RFC3339), t0.Add(3*time.Hour).Format(time.RFC3339), committedStep, sql)
	}
	if *update {
		if err := os.MkdirAll(expandedDir, 0o755); err != nil {
			t.Fatal(err)
		}
		old, _ := filepath.Glob(filepath.Join(expandedDir, "*.sql"))
		for _, f := range old {
			if _, keep := want[filepath.Base(f)]; !keep {
				if err := os.Remove(f); err != nil {
					t.Fatal(err)
				}
			}
		}
		for name, body := range want {
			if err := os.WriteFile(filepath.Join(expandedDir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	have, _ := filepath.Glob(filepath.Join(expandedDir, "*.sql"))
	for _, f := range have {
		if _, ok := want[filepath.Base(f)]; !ok {
			t.Errorf("%s matches no dashboard query (go test ./query -run TestDashboards -update removes it)", f)
		}
	}
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(expandedDir, n))
		if err != nil || string(b) != want[n] {
			t.Errorf("%s is missing or stale (go test ./query -run TestDashboards -update rewrites it)", filepath.Join(expandedDir, n))
		}
	}
}

// runDashboardSQL runs every query on 18.16 over the golden data set, at the intervals Grafana picks for a short, a medium and a
// long range, and requires rows: a panel that runs but shows nothing is as broken as one that fails.
func runDashboardSQL(t *testing.T, qs []dashQuery) {
	db, _ := goldenDB(t)
	ctx := context.Background()
	for _, step := range []time.Duration{time.Second, committedStep, 24 * time.Hour} {
		r := committedRange()
		r.interval = step
		for _, q := range qs {
			sql, err := expandGrafana(q.text, r, map[string]string{"ad_id": "1"})
			if err != nil {
				t.Fatalf("%s: %v", q.name, err)
			}
			rows, err := db.Conn.Query(ctx, sql)
			if err != nil {
				t.Fatalf("%s %s (interval %v) fails on ClickHouse 18.16: %v\n%s", q.dashboard, q.name, step, err, sql)
			}
			n := 0
			for rows.Next() {
				n++
			}
			err = rows.Err()
			rows.Close()
			if err != nil || n == 0 {
				t.Fatalf("%s %s (interval %v): %d rows, %v\n%s", q.dashboard, q.name, step, n, err, sql)
			}
		}
	}
}
