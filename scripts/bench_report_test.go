package scripts

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// benchReport writes files (name → content) as the raw results of a bench run into a fresh DATA_DIR and runs
// `scripts/bench.sh --report` on them with env added; it returns the report written and the script's exit code and output.
func benchReport(t *testing.T, files map[string]string, env ...string) (report string, code int, out string) {
	t.Helper()
	if _, err := exec.LookPath("jq"); err != nil {
		t.Skip("jq not installed (make test installs it)")
	}
	dir := t.TempDir()
	res := filepath.Join(dir, "bench", "results")
	if err := os.MkdirAll(res, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(res, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	md := filepath.Join(dir, "BENCHMARKS.md")
	cmd := exec.Command("bash", "bench.sh", "--report")
	cmd.Env = append(os.Environ(), append([]string{"DATA_DIR=" + dir, "BENCH_OUT=" + md}, env...)...)
	b, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("bench.sh --report: %v\n%s", err, b)
	}
	rep, _ := os.ReadFile(md)
	return string(rep), code, string(b)
}

const oneRound = `{"started": "2026-01-01T00:00:00Z", "t_start": 0, "t_end": 10, "loadavg": "0 0 0", "duration": "8s", "rounds": 1}`

// throughputRound is one round of the single-event pair: per event the no-op spends noop µs and its generator noopGen, adtracker
// adt, ClickHouse ch and the generator gen; the no-op answers 50,000 requests/s and adtracker stores 30,000 events/s.
func throughputRound(noop, noopGen, adt, ch, gen string) map[string]string {
	// One million events, so CPU-seconds read as µs per event.
	return map[string]string{
		"meta.json":                oneRound,
		"noop_single.r1.json":      `{"events_acked": 1000000, "requests_per_sec": 50000, "client_cpu_seconds": ` + noopGen + `}`,
		"noop_single.r1.proc.json": `{"server_cpu_s": ` + noop + `, "clickhouse_cpu_s": 0}`,
		"single.r1.json": `{"events_acked": 1000000, "requests_per_sec": 31000, "client_cpu_seconds": ` + gen +
			`, "verify": {"ok": true, "stored_acked": 1000000, "end_to_end_events_per_sec": 30000}}`,
		"single.r1.proc.json": `{"server_cpu_s": ` + adt + `, "clickhouse_cpu_s": ` + ch + `}`,
	}
}

// The report explains the throughput target from the run's own CPU figures: (20 + 20) / (30 + 12 + 20) = 0.65× predicted for
// the 30,000 / 50,000 = 0.60× measured; 40 / (20 + 12 + 20) = 0.77× with adtracker at the no-op's cost; 40 / (30 + 20) = 0.80×
// with ClickHouse on cores of its own; and ClickHouse could spend 40 / 0.85 − 20 − 20 = 7.06 µs for 0.85×.
func TestBenchReportThroughputModel(t *testing.T) {
	t.Parallel()
	rep, code, out := benchReport(t, throughputRound("20", "20", "30", "12", "20"))
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	line := section(rep, "- single-event throughput:", "- batch 1000")
	for _, want := range []string{"share the", "gives 0.65×", "for the 0.60× measured", "reach only 0.77×", "at most 7.06 CPU-µs",
		"against the\n  12.00 it spent", "cores of its own, the same model gives\n  0.80×"} {
		if !strings.Contains(line, want) {
			t.Errorf("throughput line lacks %q:\n%s", want, line)
		}
	}
	if strings.Contains(line, "below zero") {
		t.Errorf("a positive budget reported below zero:\n%s", line)
	}

	// A generator that costs more per event leaves ClickHouse less than nothing: 40 / 0.85 − 20 − 30 < 0.
	rep, code, out = benchReport(t, throughputRound("20", "20", "30", "10", "30"))
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if line := section(rep, "- single-event throughput:", "- batch 1000"); !strings.Contains(line, "at most -2.94 CPU-µs") ||
		!strings.Contains(line, "below zero in 1 round:") {
		t.Errorf("negative budget not explained:\n%s", line)
	}
}

// With BENCH_CH_CPUS the run had ClickHouse on CPUs of its own: the report names the sets and drops the shared-core model.
func TestBenchReportCPUSets(t *testing.T) {
	t.Parallel()
	files := throughputRound("20", "20", "30", "10", "20")
	files["meta.json"] = strings.Replace(oneRound, `"rounds": 1`, `"rounds": 1, "ch_cpus": "2-3", "app_cpus": "0,1"`, 1)
	rep, code, out := benchReport(t, files)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	for _, want := range []string{"| CPU sets | ClickHouse on CPUs 2-3; adtracker, the no-op, the load generator and clickhouse-client on CPUs 0,1",
		"so generator and server share CPUs 0,1, and ClickHouse has CPUs 2-3 to itself",
		"- single-event throughput: ClickHouse ran on CPUs of its own (2-3; 10.00 CPU-µs per event there)"} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(rep, "gives 0.67×") {
		t.Error("the shared-core model is reported for a run with ClickHouse on CPUs of its own")
	}
}

// The batch line quotes BenchmarkBatchHandler when the microbenchmarks ran, and a run without them (BENCH_QUICK) still gets
// its report: before, the missing file ended the script (set -e) before anything was written.
func TestBenchReportMicrobenchmarksOptional(t *testing.T) {
	t.Parallel()
	rep, code, out := benchReport(t, map[string]string{"meta.json": oneRound})
	if code != 0 || rep == "" {
		t.Fatalf("no report without micro.txt: exit %d\n%s", code, out)
	}
	if strings.Contains(rep, "Decoding alone") {
		t.Error("decoding figure reported without microbenchmarks")
	}
	rep, code, out = benchReport(t, map[string]string{"meta.json": oneRound,
		"micro.txt": "pkg: github.com/adtracker/adtracker/ingest\nBenchmarkBatchHandler-2   	    3000	    348000 ns/op	       0 B/op	       0 allocs/op\n"})
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if !strings.Contains(rep, "Decoding alone, before any ring, HTTP or ClickHouse work, costs 0.35 µs per event") {
		t.Errorf("decoding figure missing:\n%s", section(rep, "- batch 1000", "## CPU per event"))
	}
}

// A CPU list that cannot be used stops the script before it measures or writes anything.
func TestBenchCPUSetsRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"BENCH_CH_CPUS=a"}, "not a CPU list: a"},
		{[]string{"BENCH_CH_CPUS=1-"}, "not a CPU list: 1-"},
		{[]string{"BENCH_CH_CPUS=4096"}, "names CPUs that are not online"},
		{[]string{"BENCH_APP_CPUS=0"}, "BENCH_APP_CPUS needs BENCH_CH_CPUS"},
		{[]string{"BENCH_CH_CPUS=0", "BENCH_APP_CPUS=0"}, "overlaps"},
		{[]string{"BENCH_CH_CPUS=0", "BENCH_CLICKHOUSE=shared"}, "needs BENCH_CLICKHOUSE=private"},
	} {
		rep, code, out := benchReport(t, map[string]string{"meta.json": oneRound}, tc.env...)
		if code == 0 || !strings.Contains(out, tc.want) || rep != "" {
			t.Errorf("%v: exit %d, report written %v, output:\n%s\nwant an error naming %q", tc.env, code, rep != "", out, tc.want)
		}
	}
}

// section is the part of s from the first line starting with from up to the next line starting with to (or the end).
func section(s, from, to string) string {
	i := strings.Index(s, "\n"+from)
	if i < 0 {
		return ""
	}
	s = s[i+1:]
	if j := strings.Index(s, "\n"+to); j >= 0 {
		return s[:j]
	}
	return s
}
