package screen

import (
	"bytes"
	"strings"

	"github.com/x-way/crawlerdetect"

	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/internal/uacache"
)

// What a user agent alone says about an event; the deny list wins over the crawler list. agentUnmatched: the lists have not
// been run for it yet — its first events came from a denied address, whose reason needs no lists, or screening is off.
const (
	agentUnmatched uint64 = iota
	agentValid
	agentCrawler
	agentDenied
)

// A cache word: the enricher's Agent word in the low 32 bits (it uses 24), the verdict above them.
const (
	verdictShift = 32
	agentMask    = 1<<verdictShift - 1
)

// agentVerdicts answers, per user agent, the enricher's parse and the deny list + crawler list verdict, from one cache: the
// parse costs ~0.4 µs and the crawler list, one large regular expression, ~100 µs and a few allocations, so each distinct user
// agent is parsed once and matched at most once while it stays in the cache, and a known one costs one hash and one probe for
// both. The lists run only when a verdict is asked for, so a flood from a denied address pays parses, not list matches.
type agentVerdicts struct {
	deny   [][]byte // lower case
	cache  *uacache.Cache
	enrich Enricher // nil: no Agent word (0)
}

// agentEntry is one user agent's cache entry as lookup found or made it.
type agentEntry struct {
	hash uint64 // 0: an empty user agent, which has no entry
	word uint64
}

func newAgentVerdicts(deny []string, entries int, en Enricher) *agentVerdicts {
	a := &agentVerdicts{cache: uacache.New(entries), enrich: en}
	for _, d := range deny {
		if d = strings.TrimSpace(d); d != "" {
			a.deny = append(a.deny, lowerASCII(nil, []byte(d)))
		}
	}
	return a
}

// lookup returns ua's entry, parsing ua into a new one when the cache does not hold it. An empty user agent needs no entry:
// its Agent word is 0 and it is valid.
func (a *agentVerdicts) lookup(ua []byte) agentEntry {
	if len(ua) == 0 {
		return agentEntry{word: agentValid << verdictShift}
	}
	h := a.cache.Hash(ua)
	w, ok := a.cache.Get(h)
	if !ok {
		w = agentUnmatched << verdictShift
		if a.enrich != nil {
			w |= a.enrich.Agent(ua) & agentMask
		}
		a.cache.Put(h, w)
	}
	return agentEntry{hash: h, word: w}
}

// agent is the entry's Agent word.
func (en agentEntry) agent() uint64 { return en.word & agentMask }

// verdict returns the lists' verdict for ua (whose entry lookup returned), matching them and keeping the answer in the entry
// the first time.
func (a *agentVerdicts) verdict(ua []byte, en agentEntry) uint64 {
	if v := en.word >> verdictShift; v != agentUnmatched {
		return v
	}
	cacheMisses.Inc()
	v := a.compute(ua)
	a.cache.Put(en.hash, en.agent()|v<<verdictShift)
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
