// Package screen flags general invalid traffic (GIVT) at ingest: crawlers, prefetches, operator deny lists and duplicate clicks.
package screen

import (
	"fmt"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/internal/httpx"
)

// Config is the ivt.* settings.
type Config struct {
	// Disabled leaves every event valid (ivt.enabled = false); enrichment still runs.
	Disabled bool
	// DenyCIDRs (ivt.deny_cidrs): viewer addresses flagged deny_ip.
	DenyCIDRs []string
	// DenyUserAgents (ivt.deny_user_agents): user agents containing one of these, ASCII case-insensitively, are flagged
	// deny_user_agent. Blank entries are ignored.
	DenyUserAgents []string
	// ClickWindow (ivt.click_window): a client's later clicks on the same ad within this of its counted click are flagged
	// duplicate_click. One-second resolution; 0 disables the check.
	ClickWindow time.Duration
	// ClickTableBytes (ivt.click_table_bytes) bounds the memory that remembers clicks (ClickTableSize says what it holds).
	ClickTableBytes int
}

// uaCacheEntries is the size of the user-agent cache: 16 bytes each, 256 KiB.
const uaCacheEntries = 16384

// Enricher fills the enrichment fields of an event (device, OS, browser, country); package enrich implements it. The screener
// caches Agent's word per user agent, next to its own verdict, so a user agent is hashed and looked up once per event.
type Enricher interface {
	// Agent is what a non-empty user agent says (device class, families) in the low 32 bits of a word; the same user agent
	// must always give the same word. An empty user agent's word is 0, without a call.
	Agent(ua []byte) uint64
	// Apply sets e's enrichment fields from agent, Agent's word for e's user agent, and from e's address.
	Apply(e *event.Event, agent uint64)
}

// Screener decides each event's IVT reason; it is safe for concurrent use and allocates nothing per event once a user agent is
// in its cache.
//
// One reason per event, the first that matches in this order (the operator's own lists first, then the maintained crawler
// list, then what the request says about itself, and last the only stateful check, which valid clicks alone enter):
//
//  1. deny_ip: the viewer's address (the stored one: body ip, SSAI viewer address, X-Forwarded-For from a trusted proxy, or
//     the peer) is in ivt.deny_cidrs;
//  2. deny_user_agent: the user agent contains an ivt.deny_user_agents entry;
//  3. crawler: the user agent is on the crawler list (github.com/x-way/crawlerdetect, which includes HTTP libraries and
//     headless browsers);
//  4. prefetch: Sec-Purpose, Purpose or X-Purpose says prefetch (or preview), or X-Moz says prefetch;
//  5. duplicate_click: a click whose client (viewer id, else address + user agent) already has a counted click on the same ad
//     within ivt.click_window.
type Screener struct {
	off    bool
	deny   ipRanges
	agents *agentVerdicts
	clicks *clickTable // nil: no duplicate-click check
}

// New builds a screener; en may be nil. An invalid deny list is an error naming its key.
func New(cfg Config, en Enricher) (*Screener, error) {
	nets, err := httpx.ParseCIDRs("ivt.deny_cidrs", cfg.DenyCIDRs)
	if err != nil {
		return nil, err
	}
	if cfg.ClickWindow < 0 {
		return nil, fmt.Errorf("ivt.click_window must not be negative")
	}
	s := &Screener{off: cfg.Disabled, deny: newIPRanges(nets), agents: newAgentVerdicts(cfg.DenyUserAgents, uaCacheEntries, en)}
	if cfg.ClickWindow > 0 {
		s.clicks = newClickTable(cfg.ClickWindow, cfg.ClickTableBytes)
	}
	return s, nil
}

// ClickTableSize reports the duplicate-click table: the clicks it remembers at most and its bytes (0, 0 when disabled).
func (s *Screener) ClickTableSize() (clicks, bytes int) {
	if s.clicks == nil {
		return 0, 0
	}
	return len(s.clicks.buckets) * bucketWays, len(s.clicks.buckets) * bucketBytes
}

// Screen enriches e and sets e.IVT. ctx may be nil (no request headers to read).
func (s *Screener) Screen(ctx *fasthttp.RequestCtx, e *event.Event) {
	e.IVT = event.IVTNone
	en := s.agents.enrich
	if s.off && en == nil {
		return
	}
	entry := s.agents.lookup(e.UA())
	if en != nil {
		en.Apply(e, entry.agent())
	}
	if !s.off {
		e.IVT = s.reason(ctx, e, entry)
	}
}

func (s *Screener) reason(ctx *fasthttp.RequestCtx, e *event.Event, entry agentEntry) event.IVT {
	if s.deny.contains(e.IP) {
		return event.IVTDenyIP
	}
	switch s.agents.verdict(e.UA(), entry) {
	case agentDenied:
		return event.IVTDenyUserAgent
	case agentCrawler:
		return event.IVTCrawler
	}
	if ctx != nil && isPrefetch(&ctx.Request.Header) {
		return event.IVTPrefetch
	}
	if e.Type == event.TypeClick && s.clicks != nil && s.clicks.seen(s.clicks.key(e), e.ReceiveTime) {
		return event.IVTDuplicateClick
	}
	return event.IVTNone
}

// Settle takes the queue's answer for an event Screen saw. A valid click the queue refused (503: the client retries, or the
// redirect went on unrecorded) is forgotten, so its retry counts instead of being a duplicate. Stored invalid events are counted
// by reason in adtracker_events_invalid_total.
func (s *Screener) Settle(e *event.Event, stored bool) {
	if !stored {
		if e.Type == event.TypeClick && e.IVT == event.IVTNone && s.clicks != nil && !s.off {
			s.clicks.forget(s.clicks.key(e), e.ReceiveTime)
		}
		return
	}
	if e.IVT != event.IVTNone && e.IVT < event.NumIVT {
		invalid[e.IVT].Inc()
	}
}
