//go:build !race

package testenv

// RaceEnabled reports a build with the race detector (race_on.go says why tests care).
const RaceEnabled = false
