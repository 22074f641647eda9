package pipeline

import (
	"testing"
	"time"

	"github.com/adtracker/adtracker/ingest/spill"
)

// Every transition of the state machines documented in state.go.
func TestStateTransitions(t *testing.T) {
	t.Run("sink", func(t *testing.T) {
		var h sinkHealth
		if !h.live() || h.get().String() != "live" {
			t.Fatal("a new sink state is not live")
		}
		if !h.failed() || h.live() || h.get().String() != "spilling" {
			t.Fatal("live → spilling on failure")
		}
		if h.failed() {
			t.Fatal("spilling → spilling reported as a change")
		}
		if !h.answered() || !h.live() {
			t.Fatal("spilling → live when ClickHouse answers")
		}
		if h.answered() {
			t.Fatal("live → live reported as a change")
		}
	})
	t.Run("quota", func(t *testing.T) {
		var q quota
		if q.full() {
			t.Fatal("new quota state is at quota")
		}
		q.set(true)
		if !q.full() {
			t.Fatal("underQuota → atQuota")
		}
		q.set(false)
		if q.full() {
			t.Fatal("atQuota → underQuota")
		}
	})
	t.Run("cursor", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			got  cursorState
			want cursorState
		}{
			{"start, ack intact", cursorAtStart(false), cursorUncertain},
			{"start, ack lost", cursorAtStart(true), cursorAllUncertain},
			{"clean + ambiguous", cursorClean.ambiguous(), cursorUncertain},
			{"uncertain + ambiguous", cursorUncertain.ambiguous(), cursorUncertain},
			{"all + ambiguous", cursorAllUncertain.ambiguous(), cursorAllUncertain},
			{"uncertain + done", cursorUncertain.done(), cursorClean},
			{"clean + done", cursorClean.done(), cursorClean},
			{"all + done", cursorAllUncertain.done(), cursorAllUncertain},
			{"all + caught up", cursorAllUncertain.caughtUp(), cursorClean},
			{"uncertain + caught up", cursorUncertain.caughtUp(), cursorUncertain},
		} {
			if tc.got != tc.want {
				t.Errorf("%s: %d, want %d", tc.name, tc.got, tc.want)
			}
		}
		if cursorClean.maybeStored() || !cursorUncertain.maybeStored() || !cursorAllUncertain.maybeStored() {
			t.Error("maybeStored")
		}
	})
	t.Run("head record bounds", func(t *testing.T) {
		var h headRecord
		now := time.Unix(1000, 0)
		a, b := spill.Position{Segment: 1, Offset: 10}, spill.Position{Segment: 1, Offset: 20}
		for i := 1; i < 3; i++ {
			if h.fail(a, now, 3, time.Hour, false) {
				t.Fatalf("quarantined after %d of 3 attempts", i)
			}
		}
		if !h.fail(a, now, 3, time.Hour, false) {
			t.Fatal("not quarantined after 3 of 3 attempts")
		}
		// Another record starts its own count, and the age bound applies alone.
		if h.fail(b, now, 3, time.Hour, false) || h.attempts != 1 {
			t.Fatal("a new head record inherited the count")
		}
		if !h.fail(b, now.Add(time.Hour), 0, time.Hour, false) {
			t.Fatal("not quarantined at the age bound")
		}
		// Waiting for an earlier insert of the record to end is not an attempt; only the age bound can end it.
		c := spill.Position{Segment: 2, Offset: 10}
		for i := 0; i < 10; i++ {
			if h.fail(c, now, 3, time.Hour, true) {
				t.Fatalf("quarantined after %d waits", i+1)
			}
		}
		if h.attempts != 0 || !h.fail(c, now.Add(time.Hour), 3, time.Hour, true) {
			t.Fatalf("waits: %d attempts counted, or the age bound did not apply", h.attempts)
		}
	})
}
