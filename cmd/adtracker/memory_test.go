package main

import (
	"math"
	"runtime/debug"
	"testing"

	"go.uber.org/zap"

	"github.com/adtracker/adtracker/config"
)

func TestApplyMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	f := func(env string, limit int64, durable bool, ring int, want int64) {
		t.Helper()
		debug.SetMemoryLimit(math.MaxInt64)
		t.Setenv("GOMEMLIMIT", env)
		cfg := &config.Config{}
		cfg.Ingest.MemoryLimit, cfg.Ingest.Durable, cfg.Ingest.RingCapacity = limit, durable, ring
		got := applyMemoryLimit(cfg, zap.NewNop())
		if got != want {
			t.Errorf("GOMEMLIMIT=%q memory_limit=%d durable=%v ring=%d: returned %d, want %d", env, limit, durable, ring, got, want)
		}
		if want > 0 {
			if cur := debug.SetMemoryLimit(-1); cur != want {
				t.Errorf("GOMEMLIMIT=%q memory_limit=%d: runtime limit %d, want %d", env, limit, cur, want)
			}
		}
	}
	f("", 64<<20, true, 32768, 64<<20)
	// The in-memory ring lives in the heap: its bytes are added, not taken from the rest.
	f("", 64<<20, false, 262144, 64<<20+16<<20+4096)
	f("", 0, true, 32768, -1)
	// An explicit GOMEMLIMIT wins; the runtime parsed it at start, so what is in force (here: the value set above) is kept.
	f("1GiB", 64<<20, true, 32768, math.MaxInt64)
}
