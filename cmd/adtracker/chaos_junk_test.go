//go:build chaos

package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// peakRSSKB is the process's high-water resident set (VmHWM), in KiB.
func peakRSSKB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d", &kb); err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// Sixteen concurrent 1 MiB bodies of junk items ("1\n" lines, and the same as a JSON array), three rounds, against the real binary:
// every answer stays under 256 KiB and the process's peak RSS under 100 MB. ingest.max_batch_items is raised past the item count
// so every item is decoded and refused one by one (the default refuses such a batch whole, with 413, which costs less).
func TestChaos10JunkBatches(t *testing.T) {
	const (
		maxAnswer = 256 << 10
		maxRSSKB  = 100 << 10
	)
	s := newStack(t, "ADTRACKER_INGEST_MAX_BATCH_ITEMS=1000000", "ADTRACKER_RATELIMIT_INGEST_RPS=0")
	s.start()
	nd := bytes.Repeat([]byte("1\n"), (1<<20-64)/2)
	arr := append(append([]byte{'['}, bytes.ReplaceAll(nd[:len(nd)-1], []byte("\n"), []byte(","))...), ']')
	before := peakRSSKB(t, s.srv.Process.Pid)
	var mu sync.Mutex
	largest, statuses := 0, map[int]int{}
	for round := 0; round < 3; round++ {
		var wg sync.WaitGroup
		for g := 0; g < 16; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				req.SetRequestURI(s.url + "/events")
				req.Header.SetMethod("POST")
				if g%2 == 0 {
					req.Header.SetContentType("application/x-ndjson")
					req.SetBodyRaw(nd)
				} else {
					req.Header.SetContentType("application/json")
					req.SetBodyRaw(arr)
				}
				if err := fasthttp.DoTimeout(req, resp, 60*time.Second); err != nil {
					t.Errorf("junk batch: %v", err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				statuses[resp.StatusCode()]++
				largest = max(largest, len(resp.Body()))
			}(g)
		}
		wg.Wait()
	}
	peak := peakRSSKB(t, s.srv.Process.Pid)
	t.Logf("48 junk batches of %d items: statuses %v, largest answer %d bytes, peak RSS %d KiB (%d KiB before)", len(nd)/2, statuses,
		largest, peak, before)
	if largest > maxAnswer {
		t.Errorf("largest answer %d bytes, want at most %d", largest, maxAnswer)
	}
	if statuses[400] != 48 {
		t.Errorf("statuses %v, want 48 × 400", statuses)
	}
	if peak > maxRSSKB {
		t.Errorf("peak RSS %d KiB, want at most %d", peak, maxRSSKB)
	}
}
