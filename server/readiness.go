package server

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/adtracker/adtracker/internal/httpx"
)

// Readiness defaults: how often the checks run in the background, and how long one round may take.
const (
	DefaultReadyInterval = time.Second
	readyCheckTimeout    = 2 * time.Second
)

// readiness is what /readyz answers: the result of the last round of Checks, run in the background every interval. A request only
// reads it, so /readyz costs the databases nothing however often it is called (it is not rate limited: load balancers poll it) and
// cannot be turned into an amplifier. Before the first round completes the answer is 503 "starting".
type readiness struct {
	checks   []Check
	interval time.Duration
	last     atomic.Pointer[readyState]
	mu       sync.Mutex // one round at a time: a slow check delays the next round instead of stacking goroutines
}

// readyState is one round's outcome; components is the JSON object of the answer, built once per round.
type readyState struct {
	ok         bool
	components []byte
}

// refresh runs every check once, concurrently, and publishes the result.
func (r *readiness) refresh(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, cancel := context.WithTimeout(ctx, readyCheckTimeout)
	defer cancel()
	errs := make([]error, len(r.checks))
	var wg sync.WaitGroup
	for i, ch := range r.checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = ch.Fn(c)
		}()
	}
	wg.Wait()
	st := &readyState{ok: true, components: []byte(`{`)}
	for i, ch := range r.checks {
		if i > 0 {
			st.components = append(st.components, ',')
		}
		st.components = httpx.AppendJSONString(st.components, ch.Name)
		st.components = append(st.components, `:{"ok":`...)
		if errs[i] == nil {
			st.components = append(st.components, `true}`...)
			continue
		}
		st.ok = false
		st.components = append(st.components, `false,"error":`...)
		st.components = httpx.AppendJSONString(st.components, errs[i].Error())
		st.components = append(st.components, '}')
	}
	st.components = append(st.components, '}')
	r.last.Store(st)
}

// run refreshes at once and then every interval until ctx ends.
func (r *readiness) run(ctx context.Context) {
	tick := time.NewTicker(r.interval)
	defer tick.Stop()
	for {
		r.refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// RefreshReadiness runs the readiness checks once now and publishes the result (Serve also does so in the background every
// Options.ReadyInterval). For tests and for callers that serve Handler on their own listener.
func (s *Server) RefreshReadiness(ctx context.Context) { s.ready.refresh(ctx) }

func (s *Server) readyz(ctx *fasthttp.RequestCtx) {
	st := s.ready.last.Load()
	draining := s.draining.Load()
	var buf [512]byte
	body := append(buf[:0], `{"status":`...)
	switch {
	case draining:
		body = append(body, `"draining"`...)
	case st == nil:
		body = append(body, `"starting"`...)
	case st.ok:
		body = append(body, `"ready"`...)
	default:
		body = append(body, `"not ready"`...)
	}
	body = append(body, `,"components":`...)
	if st == nil {
		body = append(body, `{}`...)
	} else {
		body = append(body, st.components...)
	}
	body = append(body, '}')
	ctx.SetContentType(httpx.ContentJSON)
	if draining || st == nil || !st.ok {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
	}
	ctx.SetBody(body)
}
