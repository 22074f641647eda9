//go:build race

package testenv

// RaceEnabled reports a build with the race detector. It makes sync.Pool drop items at random (fasthttp keeps response
// bodies in one, httpx.Compress its gzip writers), so allocation counts mean nothing under it.
const RaceEnabled = true
