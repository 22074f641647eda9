package main

import (
	"os"
	"runtime/debug"

	"go.uber.org/zap"

	"github.com/adtracker/adtracker/config"
	"github.com/adtracker/adtracker/ingest/pipeline"
	"github.com/adtracker/adtracker/ingest/ring"
)

// applyMemoryLimit sets the Go runtime's soft memory limit from ingest.memory_limit, unless GOMEMLIMIT is set (the runtime has
// already applied it, and an operator's explicit choice wins). It returns the limit in force, -1 for none.
//
// Why a limit at all: the heap's live part under load is small (insert columns of two batches, request bodies, the duplicate
// window), but with GOGC=100 alone the runtime lets the heap grow to twice the largest live size it has seen and keeps the pages,
// which is where most of the resident memory went in the benchmarks. A soft limit makes the collector run earlier instead; it
// never fails an allocation, and the runtime caps the collector's CPU when the live heap nears the limit.
func applyMemoryLimit(cfg *config.Config, log *zap.Logger) int64 {
	if v, ok := os.LookupEnv("GOMEMLIMIT"); ok && v != "" {
		cur := debug.SetMemoryLimit(-1)
		log.Info("memory limit from GOMEMLIMIT", zap.Int64("bytes", cur))
		return cur
	}
	limit := cfg.Ingest.MemoryLimit
	if limit <= 0 {
		return -1
	}
	if !cfg.Ingest.Durable {
		// An in-memory ring lives in the Go heap: its size is added to the limit rather than taken out of the budget for the rest.
		limit += ring.Options{Capacity: cfg.Ingest.RingCapacity, SlotSize: pipeline.Defaults().SlotSize}.Bytes()
	}
	debug.SetMemoryLimit(limit)
	return limit
}
