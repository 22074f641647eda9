//go:build chaos

package main

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// Scenario 12: hostile batch bodies. 1,000,000 bytes of "1\n" is 500,000 NDJSON items, each invalid; 16 such requests at once, several
// rounds, while well-behaved traffic flows. Every answer must stay small (a 4xx naming the problem, not 500,000 error objects) and the
// process within its memory promise, whatever a body's item count.
func TestChaos12HostileBodies(t *testing.T) {
	const (
		conns, rounds = 16, 3
		maxAnswer     = 256 << 10
		maxPeakKB     = 100 << 10
	)
	s := newStack(t)
	s.start()
	lg := s.loadgen(20*time.Second, 1000)
	body := bytes.Repeat([]byte("1\n"), 500_000)
	var mu sync.Mutex
	largest, codes, failures := 0, map[int]int{}, 0
	for r := 0; r < rounds; r++ {
		var wg sync.WaitGroup
		for i := 0; i < conns; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				req.SetRequestURI(s.url + "/events")
				req.Header.SetMethod("POST")
				req.Header.SetContentType("application/x-ndjson")
				req.SetBodyRaw(body)
				err := fasthttp.DoTimeout(req, resp, 60*time.Second)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failures++
					return
				}
				codes[resp.StatusCode()]++
				largest = max(largest, len(resp.Body()))
			}()
		}
		wg.Wait()
	}
	peakKB := procStatusKB(s.srv.Process.Pid, "VmHWM")
	s.finishExact(lg, "12 hostile 1MB bodies x16", fmt.Sprintf("%d×%d junk bodies: answers %v, largest %d B, peak RSS %d MB",
		rounds, conns, codes, largest, peakKB>>10))
	for code := range codes {
		if code < 400 || code >= 500 {
			t.Errorf("a junk body was answered %d, want a 4xx (answers by code: %v)", code, codes)
		}
	}
	if failures > 0 {
		t.Errorf("%d of %d junk-body requests got no answer", failures, rounds*conns)
	}
	if largest > maxAnswer {
		t.Errorf("largest answer to a junk body: %d bytes, want ≤ %d", largest, maxAnswer)
	}
	if peakKB > maxPeakKB {
		t.Errorf("adtracker's peak RSS (VmHWM) %d kB, want ≤ %d kB", peakKB, maxPeakKB)
	}
}
