//go:build chaos

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// In a file of its own, named to sort last: go test runs the tests of a package file by file in name order, and this one must
// come after every scenario, including those in chaos_*_test.go files.

// Runs last (tests run in source order): the table, and the verdict.
func TestChaosZSummary(t *testing.T) {
	chaosMu.Lock()
	defer chaosMu.Unlock()
	// Scenarios in files that sort before chaos_test.go run before scenario 1: the table lists them by number.
	sort.SliceStable(chaosRows, func(i, j int) bool {
		a, b := chaosRows[i].name, chaosRows[j].name
		if na, nb := scenarioNumber(a), scenarioNumber(b); na != nb {
			return na < nb
		}
		return a < b
	})
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-34s %8s %10s %8s %6s %10s %10s  %s\n", "scenario", "sent", "answered", "stored", "lost", "duplicated", "drain", "note")
	bad := false
	for _, r := range chaosRows {
		fmt.Fprintf(&b, "%-34s %8d %10d %8d %6d %10d %10v  %s\n", r.name, r.sent, r.answered, r.stored, r.lost, r.dup, r.recovery.Round(time.Millisecond), r.note)
		bad = bad || r.lost > 0 || r.dup > 0
	}
	fmt.Print(b.String())
	if out := os.Getenv("CHAOS_REPORT"); out != "" {
		if err := os.WriteFile(filepath.Clean(out), []byte(b.String()), 0o644); err != nil {
			t.Errorf("chaos report: %v", err)
		}
	}
	if bad {
		t.Fatal("events lost or duplicated")
	}
}

// scenarioNumber is the number a row's name starts with ("10b clickhouse ..." → 10); names without one sort last.
func scenarioNumber(name string) int {
	n, err := strconv.Atoi(strings.TrimRightFunc(strings.Fields(name + " x")[0], func(r rune) bool { return r < '0' || r > '9' }))
	if err != nil {
		return 1 << 30
	}
	return n
}
