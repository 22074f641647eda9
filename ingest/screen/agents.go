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

// agentVerdicts answers deny list + crawler list per user agent from a cache: the crawler list is one large regular expression
// (~100 µs and a few allocations per user agent), so each distinct user agent is matched once while it stays in the cache.
type agentVerdicts struct {
	deny  [][]byte // lower case
	cache *uacache.Cache
}

func newAgentVerdicts(deny []string, entries int) *agentVerdicts {
	a := &agentVerdicts{cache: uacache.New(entries)}
	for _, d := range deny {
		if d = strings.TrimSpace(d); d != "" {
			a.deny = append(a.deny, lowerASCII(nil, []byte(d)))
		}
	}
	return a
}

func (a *agentVerdicts) verdict(ua []byte) uint64 {
	h := a.cache.Hash(ua)
	if v, ok := a.cache.Get(h); ok {
		return v
	}
	cacheMisses.Inc()
	v := a.compute(ua)
	a.cache.Put(h, v)
	return v
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
