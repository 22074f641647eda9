package main

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"testing"
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
