//go:build chaos

package main

import (
	"fmt"
	"os"
	"path/filepath"
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
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-28s %8s %10s %8s %6s %10s %10s  %s\n", "scenario", "sent", "answered", "stored", "lost", "duplicated", "drain", "note")
	bad := false
	for _, r := range chaosRows {
		fmt.Fprintf(&b, "%-28s %8d %10d %8d %6d %10d %10v  %s\n", r.name, r.sent, r.answered, r.stored, r.lost, r.dup, r.recovery.Round(time.Millisecond), r.note)
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
