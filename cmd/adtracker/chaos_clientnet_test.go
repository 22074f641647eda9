//go:build chaos

package main

import (
	"strings"
	"testing"
	"time"

	"github.com/adtracker/adtracker/internal/testenv"
)

// Scenario 14: network faults between the clients and adtracker (a mobile link, a proxy that cuts connections), from an in-process
// Toxiproxy in front of adtracker's port; loadgen sends through it and checks ClickHouse directly. Each fault is put on the live
// connections under steady load and taken off after a while. Whatever the client saw, every event answered 2xx is stored once and
// nothing else is stored twice: a request cut in its body is refused whole (the body gate reads all of it before any handler), an
// answer lost on the way back leaves an event stored that the client counts as failed, and slicing tests that the server assumes
// nothing about how requests arrive.
func TestChaos14ClientNetwork(t *testing.T) {
	faults := []struct {
		name, mode string
		toxics     []testenv.Toxic
	}{
		// Every connection is reset 300 ms after adtracker next answers on it: answers lost, requests in flight cut.
		{"reset after answers", "single", []testenv.Toxic{{Name: "reset", Type: "reset_peer", Stream: "downstream",
			Attributes: map[string]any{"timeout": 300}}}},
		// Half of the connections close after 30 KB towards adtracker: batches of 200 (~40 KB) cut in their bodies.
		{"batches cut mid-body", "batch", []testenv.Toxic{{Name: "cut", Type: "limit_data", Stream: "upstream", Toxicity: 0.5,
			Attributes: map[string]any{"bytes": 30_000}}}},
		// Requests and answers in 64-byte slices, 5 ms apart: headers and bodies arrive in pieces.
		{"64-byte slices", "batch", []testenv.Toxic{
			{Name: "slice-up", Type: "slicer", Stream: "upstream", Attributes: map[string]any{"average_size": 64, "size_variation": 32, "delay": 5}},
			{Name: "slice-down", Type: "slicer", Stream: "downstream", Attributes: map[string]any{"average_size": 64, "size_variation": 32, "delay": 5}},
		}},
		// Every answer arrives 4 s late, past loadgen's 3 s timeout: the client gives up on events adtracker has stored.
		{"answers 4s late", "single", []testenv.Toxic{{Name: "late", Type: "latency", Stream: "downstream",
			Attributes: map[string]any{"latency": 4000}}}},
		// Nothing reaches adtracker for 4 s, then the connection closes: requests that never arrive, and adtracker's read timeout
		// for those that had begun.
		{"stall 4s", "single", []testenv.Toxic{{Name: "stall", Type: "timeout", Stream: "upstream",
			Attributes: map[string]any{"timeout": 4000}}}},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			s := newStack(t, "ADTRACKER_HTTP_READ_TIMEOUT=2s")
			s.start()
			px := testenv.StartToxiproxy(t, "adtracker", strings.TrimPrefix(s.url, "http://"))
			const lead, fault, after = 3 * time.Second, 6 * time.Second, 6 * time.Second
			load := []string{"--mode", "single", "--rate", "2000"}
			if f.mode == "batch" {
				load = []string{"--mode", "batch", "--batch", "200", "--rate", "20"} // 4,000 events a second
			}
			lg := runLoadgen(t, s.env, loadgenArgs("http://"+px.Addr, lead+fault+after, s.ch.Addr, "adtracker",
				append(load, "--conns", "16")...)...)
			time.Sleep(lead)
			px.During(t, fault, f.toxics...)
			s.finishExact(lg, "14 client network: "+f.name, f.mode)
		})
	}
}
