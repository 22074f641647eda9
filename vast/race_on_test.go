//go:build race

package vast

// raceEnabled: the race detector makes sync.Pool drop items at random (fasthttp keeps response bodies in one), so allocation
// counts mean nothing under it.
const raceEnabled = true
