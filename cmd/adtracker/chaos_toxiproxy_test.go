//go:build chaos

package main

import (
	"testing"
	"time"

	"github.com/adtracker/adtracker/internal/testenv"
)

// Scenario 11: network faults between adtracker and ClickHouse, from an in-process Toxiproxy on the native port (loadgen's check reads
// ClickHouse directly). Each fault is put on the live connections under steady load, taken off after a while, and the run must end
// with every answered event stored once: connection resets and cuts leave inserts whose fate adtracker cannot know, a stall and late
// answers make inserts time out after the server may have taken their data, slicing tests that nothing assumes whole packets.
func TestChaos11Network(t *testing.T) {
	const insertTimeout = 2 * time.Second
	faults := []struct {
		name   string
		toxics []testenv.Toxic
	}{
		// Every connection is reset 300 ms after the server next speaks on it (the INSERT's sample block, for the insert in
		// flight): mid-insert, while the data goes out or just after the server took it. The pool keeps few connections, so a
		// toxicity below 1 often spared the inserter's connection and tested nothing.
		{"reset mid-insert", []testenv.Toxic{{Name: "reset", Type: "reset_peer", Stream: "downstream",
			Attributes: map[string]any{"timeout": 300}}}},
		// Half of the connections close after 100 KB towards the server: an insert is cut in the middle of its data.
		{"cut after 100KB", []testenv.Toxic{{Name: "cut", Type: "limit_data", Stream: "upstream", Toxicity: 0.5,
			Attributes: map[string]any{"bytes": 100_000}}}},
		// Nothing reaches the server for 4 s (past the insert timeout), then the connection closes.
		{"stall 4s", []testenv.Toxic{{Name: "stall", Type: "timeout", Stream: "upstream",
			Attributes: map[string]any{"timeout": 4000}}}},
		// Every answer arrives 3 s late, after the insert timeout: the server has stored what adtracker thinks failed.
		{"answers 3s late", []testenv.Toxic{{Name: "late", Type: "latency", Stream: "downstream",
			Attributes: map[string]any{"latency": 3000}}}},
		// Data towards the server is held 0-2 s, chunk by chunk (jitter): an INSERT whose query and data are held long times out
		// (2 s) before the server has its data, and the stored check that follows may get through sooner than the late INSERT
		// arrives and commits.
		{"late data, jittered", []testenv.Toxic{{Name: "late-up", Type: "latency", Stream: "upstream",
			Attributes: map[string]any{"latency": 1000, "jitter": 1000}}}},
		{"64-byte slices", []testenv.Toxic{
			{Name: "slice-up", Type: "slicer", Stream: "upstream", Attributes: map[string]any{"average_size": 64, "size_variation": 32, "delay": 20}},
			{Name: "slice-down", Type: "slicer", Stream: "downstream", Attributes: map[string]any{"average_size": 64, "size_variation": 32, "delay": 20}},
		}},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			s := newStack(t, "ADTRACKER_INGEST_INSERT_TIMEOUT="+insertTimeout.String())
			px := testenv.StartToxiproxy(t, "clickhouse", s.ch.Addr)
			s.env = append(s.env, "ADTRACKER_CLICKHOUSE_ADDR="+px.Addr) // the last value of a variable wins
			s.start()
			const lead, fault, after = 4 * time.Second, 8 * time.Second, 8 * time.Second
			lg := s.loadgen(lead+fault+after, 2000)
			time.Sleep(lead)
			px.During(t, fault, f.toxics...)
			<-lg.done // the note reads adtracker's counts
			s.finishExact(lg, "11 network: "+f.name, "timeout "+insertTimeout.String()+": "+s.insertFaults())
		})
	}
}
