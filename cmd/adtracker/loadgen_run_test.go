package main

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"testing"
	"time"
)

// lgRun is an `adtracker loadgen --json` child, shared by the chaos suite (build tag chaos) and the cluster test; its summary is
// parsed when it exits.
type lgRun struct {
	done chan struct{}
	out  []byte
	err  error
	sum  struct {
		Events  uint64 `json:"events_sent"`
		Acked   uint64 `json:"events_acked"`
		Refused uint64 `json:"events_refused"`
		Verify  *struct {
			OK       bool    `json:"ok"`
			Distinct uint64  `json:"stored_distinct"`
			Dups     uint64  `json:"duplicates"`
			Missing  uint64  `json:"missing"`
			Drain    float64 `json:"drain_seconds"`
		} `json:"verify"`
	}
}

// loadgenArgs are the arguments every loadgen child of these tests shares, then extra: load url for d with the seeded ads and a 3 s
// request timeout, and check the run against ClickHouse at addrs (comma-separated) in database.
func loadgenArgs(url string, d time.Duration, addrs, database string, extra ...string) []string {
	return append([]string{"--url", url, "--ads", "1,2,3", "--duration", d.String(), "--timeout", "3s",
		"--verify", "--clickhouse", addrs, "--database", database, "--verify-timeout", "2m"}, extra...)
}

// runLoadgen starts `adtracker loadgen --quiet --json ARGS...` with env; finish (chaos) or wait reads its summary.
func runLoadgen(t *testing.T, env []string, args ...string) *lgRun {
	r := &lgRun{done: make(chan struct{})}
	cmd := exec.Command(adtrackerBin(t), append([]string{"loadgen", "--quiet", "--json"}, args...)...)
	cmd.Env = env
	go func() {
		defer close(r.done)
		r.out, r.err = cmd.Output()
		if jerr := json.Unmarshal(r.out, &r.sum); jerr != nil && r.err == nil {
			r.err = fmt.Errorf("loadgen output: %w: %s", jerr, r.out)
		}
	}()
	return r
}

// loadgen --verify with ClickHouse down when the run starts, as make chaos's scenarios 5 and 7 start theirs: the run goes ahead (the
// events wait in adtracker's spill) and the check passes once ClickHouse is back. Before 171daff loadgen exited at once, having sent
// nothing, because it could not read the table's row count first (checked).
func TestLoadgenVerifyWithClickHouseDownAtStart(t *testing.T) {
	s := newStack(t)
	s.start()
	s.ch.Kill()
	lg := runLoadgen(t, s.env, loadgenArgs(s.url, 3*time.Second, s.ch.Addr, "adtracker", "--mode", "single", "--conns", "4", "--rate", "500")...)
	time.Sleep(2 * time.Second)
	s.ch.Start()
	<-lg.done
	v := lg.sum.Verify
	if lg.err != nil || v == nil || !v.OK || v.Missing != 0 || v.Dups != 0 || lg.sum.Acked < 1000 {
		t.Fatalf("loadgen: %v, %d sent, %d acked, verify %+v\n%s", lg.err, lg.sum.Events, lg.sum.Acked, v, lg.out)
	}
}
