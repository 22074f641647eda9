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

const (
	junkConns, junkRounds = 16, 3
	maxJunkAnswer         = 256 << 10 // bytes
	maxJunkPeakKB         = 100 << 10 // the memory promise, in kB of VmHWM
)

// junkResult is what a round of hostile bodies got back.
type junkResult struct {
	largest, failures int
	codes             map[int]int
}

// postJunk sends rounds rounds of conns concurrent POST /events, request i of a round carrying body(i).
func postJunk(url string, conns, rounds int, body func(i int) (contentType string, b []byte)) junkResult {
	var mu sync.Mutex
	res := junkResult{codes: map[int]int{}}
	for r := 0; r < rounds; r++ {
		var wg sync.WaitGroup
		for i := 0; i < conns; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				req.SetRequestURI(url + "/events")
				req.Header.SetMethod("POST")
				ct, b := body(i)
				req.Header.SetContentType(ct)
				req.SetBodyRaw(b)
				err := fasthttp.DoTimeout(req, resp, 60*time.Second)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					res.failures++
					return
				}
				res.codes[resp.StatusCode()]++
				res.largest = max(res.largest, len(resp.Body()))
			}()
		}
		wg.Wait()
	}
	return res
}

// check fails the test unless every junk body got a small 4xx (of wantCode when non-zero) and the process kept its memory promise.
func (r junkResult) check(t *testing.T, peakKB, wantCode int) {
	t.Helper()
	for code := range r.codes {
		if code < 400 || code >= 500 || (wantCode != 0 && code != wantCode) {
			t.Errorf("a junk body was answered %d, want a 4xx (answers by code: %v)", code, r.codes)
		}
	}
	if r.failures > 0 {
		t.Errorf("%d junk-body requests got no answer", r.failures)
	}
	if r.largest > maxJunkAnswer {
		t.Errorf("largest answer to a junk body: %d bytes, want ≤ %d", r.largest, maxJunkAnswer)
	}
	if peakKB > maxJunkPeakKB {
		t.Errorf("adtracker's peak RSS (VmHWM) %d kB, want ≤ %d kB", peakKB, maxJunkPeakKB)
	}
}

// Scenario 12: hostile batch bodies. 1,000,000 bytes of "1\n" is 500,000 NDJSON items, each invalid; 16 such requests at once, several
// rounds, while well-behaved traffic flows. Every answer must stay small (a 4xx naming the problem, not 500,000 error objects) and the
// process within its memory promise, whatever a body's item count. With the defaults such a batch is refused whole (413, more items
// than ingest.max_batch_items).
func TestChaos12HostileBodies(t *testing.T) {
	s := newStack(t)
	s.start()
	lg := s.loadgen(20*time.Second, 1000)
	body := bytes.Repeat([]byte("1\n"), 500_000)
	res := postJunk(s.url, junkConns, junkRounds, func(int) (string, []byte) { return "application/x-ndjson", body })
	peakKB := procStatusKB(s.srv.Process.Pid, "VmHWM")
	s.finishExact(lg, "12 hostile 1MB bodies x16", fmt.Sprintf("%d×%d junk bodies: answers %v, largest %d B, peak RSS %d MB",
		junkRounds, junkConns, res.codes, res.largest, peakKB>>10))
	res.check(t, peakKB, 0)
}

// Scenario 12b: the same bodies with ingest.max_batch_items raised past their item count, so every item is decoded and refused one
// by one (NDJSON and JSON arrays): the answers still list only the first items' errors and memory stays bounded by the body size.
func TestChaos12bJunkItemsDecoded(t *testing.T) {
	s := newStack(t, "ADTRACKER_INGEST_MAX_BATCH_ITEMS=1000000", "ADTRACKER_RATELIMIT_INGEST_RPS=0")
	s.start()
	nd := bytes.Repeat([]byte("1\n"), (1<<20-64)/2)
	arr := append(append([]byte{'['}, bytes.ReplaceAll(nd[:len(nd)-1], []byte("\n"), []byte(","))...), ']')
	res := postJunk(s.url, junkConns, junkRounds, func(i int) (string, []byte) {
		if i%2 == 0 {
			return "application/x-ndjson", nd
		}
		return "application/json", arr
	})
	peakKB := procStatusKB(s.srv.Process.Pid, "VmHWM")
	note := fmt.Sprintf("%d junk batches of %d items: answers %v, largest %d B, peak RSS %d MB", junkRounds*junkConns, len(nd)/2,
		res.codes, res.largest, peakKB>>10)
	addChaosRow(chaosRow{name: "12b junk items decoded one by one", note: note})
	res.check(t, peakKB, 400)
}

// Scenario 12c: many clients at once. 128 concurrent 1 MB junk bodies would hold 128 MB if each connection kept its whole body;
// the body gate (http.body_buffer_bytes, 8 MiB) reads eight at a time and the others wait. Every body still gets its 413, none a 503
// (the waits are short), and the process stays within its memory promise.
func TestChaos12cManyHostileBodies(t *testing.T) {
	s := newStack(t)
	s.start()
	body := bytes.Repeat([]byte("1\n"), 500_000)
	const conns = 128
	res := postJunk(s.url, conns, 1, func(int) (string, []byte) { return "application/x-ndjson", body })
	peakKB := procStatusKB(s.srv.Process.Pid, "VmHWM")
	note := fmt.Sprintf("%d junk bodies at once: answers %v, largest %d B, peak RSS %d MB", conns, res.codes, res.largest, peakKB>>10)
	t.Log(note)
	addChaosRow(chaosRow{name: "12c 128 hostile 1MB bodies at once", note: note})
	res.check(t, peakKB, fasthttp.StatusRequestEntityTooLarge)
	if n := res.codes[fasthttp.StatusRequestEntityTooLarge]; n != conns {
		t.Errorf("%d of %d bodies answered 413", n, conns)
	}
}
