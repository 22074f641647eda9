//go:build !linux

package loadgen

import "time"

func lockPacerThread() { lockThread() }

// sleepPrecise falls back to time.Sleep, which may overshoot by up to a millisecond on an idle process.
func sleepPrecise(d time.Duration) { time.Sleep(d) }
