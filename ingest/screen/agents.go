package screen

import (
	"bytes"
	"strings"

	"github.com/x-way/crawlerdetect"

	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/internal/uacache"
)

// What a user agent alone says about an event; the deny list wins over the crawler list.
const (
	agentValid uint64 = iota
	agentCrawler
	agentDenied
)

// A cache word: the enricher's Agent word in the low 32 bits (it uses 24), the verdict above them.
const (
	verdictShift = 32
	agentMask    = 1<<verdictShift - 1
)

// agentVerdicts answers, per user agent, the deny list + crawler list verdict and the enricher's parse, from one cache: the
// crawler list is one large regular expression (~100 µs and a few allocations per user agent) and the parse ~0.4 µs, so each
// distinct user agent is matched and parsed once while it stays in the cache, and a known one costs one hash and one probe
// for both.
type agentVerdicts struct {
	deny     [][]byte // lower case
	cache    *uacache.Cache
	enrich   Enricher // nil: no Agent word (0)
	screened bool     // false (ivt.enabled = false): the lists are not matched and every verdict is agentValid
}

func newAgentVerdicts(deny []string, entries int, en Enricher, screened bool) *agentVerdicts {
	a := &agentVerdicts{cache: uacache.New(entries), enrich: en, screened: screened}
	for _, d := range deny {
		if d = strings.TrimSpace(d); d != "" {
			a.deny = append(a.deny, lowerASCII(nil, []byte(d)))
		}
	}
	return a
}

// lookup returns the verdict for ua and the enricher's Agent word. An empty user agent is valid and its word 0, without a probe.
func (a *agentVerdicts) lookup(ua []byte) (verdict, agent uint64) {
	if len(ua) == 0 {
		return agentValid, 0
	}
	h := a.cache.Hash(ua)
	v, ok := a.cache.Get(h)
	if !ok {
		cacheMisses.Inc()
		v = agentValid
		if a.screened {
			v = a.compute(ua)
		}
		v <<= verdictShift
		if a.enrich != nil {
			v |= a.enrich.Agent(ua) & agentMask
		}
		a.cache.Put(h, v)
	}
	return v >> verdictShift, v & agentMask
}

func (a *agentVerdicts) compute(ua []byte) uint64 {
	if len(a.deny) > 0 {
		var buf [event.MaxUserAgentLen]byte
		low := lowerASCII(buf[:0], ua)
		for _, d := range a.deny {
			if bytes.Contains(low, d) {
				return agentDenied
			}
		}
	}
	if len(ua) > 0 && crawlerdetect.IsCrawler(string(ua)) {
		return agentCrawler
	}
	return agentValid
}

// lowerASCII appends b with ASCII letters lowered; other bytes are kept, so non-ASCII text matches case-sensitively.
func lowerASCII(dst, b []byte) []byte {
	for _, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}
