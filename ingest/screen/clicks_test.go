package screen

import (
	"fmt"
	"testing"
	"time"

	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/internal/testenv"
)

func click(s *Screener, ad uint64, viewer, ip, ua string, at int64, stored bool) event.IVT {
	e := ev(event.TypeClick, ad, ip, ua)
	e.ReceiveTime = at
	if viewer != "" {
		e.SetViewerID([]byte(viewer))
	}
	s.Screen(nil, e)
	s.Settle(e, stored)
	return e.IVT
}

func TestDuplicateClicks(t *testing.T) {
	s := newScreener(t, Config{ClickWindow: 10 * time.Minute, ClickTableBytes: 1 << 16})
	f := func(ad uint64, viewer, ip, ua string, at int64, want event.IVT) {
		t.Helper()
		if got := click(s, ad, viewer, ip, ua, at, true); got != want {
			t.Errorf("ad %d viewer %q %s %.20q at +%ds: %s, want %s", ad, viewer, ip, ua, at-now, got, want)
		}
	}
	const dup, ok = event.IVTDuplicateClick, event.IVTNone
	// A viewer id identifies the client, whatever its address.
	f(1, "v1", "203.0.113.1", chrome, now, ok)
	f(1, "v1", "203.0.113.99", chrome, now+5, dup)
	f(1, "v1", "203.0.113.1", chrome, now+599, dup)
	f(1, "v1", "203.0.113.1", chrome, now+600, ok) // the window counts from the counted click
	f(1, "v1", "203.0.113.1", chrome, now+601, dup)
	f(2, "v1", "203.0.113.1", chrome, now+5, ok) // another ad
	f(1, "v2", "203.0.113.1", chrome, now+5, ok) // another viewer
	// Without a viewer id: address + user agent.
	f(3, "", "203.0.113.1", chrome, now, ok)
	f(3, "", "203.0.113.1", chrome, now+1, dup)
	f(3, "", "203.0.113.2", chrome, now+1, ok)
	f(3, "", "203.0.113.1", chrome+" Edg/124.0", now+1, ok)
	// Impressions never enter the table.
	for i := 0; i < 3; i++ {
		e := ev(event.TypeImpression, 4, "203.0.113.1", chrome)
		s.Screen(nil, e)
		if e.IVT != ok {
			t.Fatalf("impression flagged %s", e.IVT)
		}
	}
	// An invalid click is not the counted one: the client's first valid click still counts.
	pre := ev(event.TypeClick, 5, "203.0.113.1", chrome)
	s.Screen(request("Sec-Purpose", "prefetch"), pre)
	if pre.IVT != event.IVTPrefetch {
		t.Fatalf("prefetched click: %s", pre.IVT)
	}
	f(5, "", "203.0.113.1", chrome, now, ok)
	f(5, "", "203.0.113.1", chrome, now+1, dup)
}

// A valid click the queue refused (503) is forgotten, so the client's retry counts; a refused duplicate leaves the counted
// click in place.
func TestRefusedClickIsNotDuplicate(t *testing.T) {
	s := newScreener(t, Config{ClickWindow: time.Hour, ClickTableBytes: 4096})
	if got := click(s, 1, "v", "203.0.113.1", chrome, now, false); got != event.IVTNone {
		t.Fatalf("first click %s", got)
	}
	if got := click(s, 1, "v", "203.0.113.1", chrome, now, true); got != event.IVTNone {
		t.Fatalf("retry of a refused click: %s", got)
	}
	if got := click(s, 1, "v", "203.0.113.1", chrome, now+1, false); got != event.IVTDuplicateClick {
		t.Fatalf("second click %s", got)
	}
	if got := click(s, 1, "v", "203.0.113.1", chrome, now+2, true); got != event.IVTDuplicateClick {
		t.Fatalf("after a refused duplicate the counted click was forgotten: %s", got)
	}
}

// A full table forgets its oldest click: that client's next click counts (a missed duplicate), no first click is ever flagged.
func TestClickTableFullForgetsOldest(t *testing.T) {
	s := newScreener(t, Config{ClickWindow: time.Hour, ClickTableBytes: 64}) // one bucket
	if clicks, bytes := s.ClickTableSize(); clicks != bucketWays || bytes != 64 {
		t.Fatalf("table of %d clicks in %d bytes", clicks, bytes)
	}
	evictions := testenv.CounterValue(t, clickEvictions)
	for i := 0; i <= bucketWays; i++ { // one more client than slots
		if got := click(s, 1, fmt.Sprint("viewer-", i), "203.0.113.1", chrome, now+int64(i), true); got != event.IVTNone {
			t.Fatalf("first click of viewer %d flagged %s", i, got)
		}
	}
	if d := testenv.CounterValue(t, clickEvictions) - evictions; d != 1 {
		t.Fatalf("%v evictions, want 1", d)
	}
	if got := click(s, 1, "viewer-0", "203.0.113.1", chrome, now+100, true); got != event.IVTNone {
		t.Fatalf("the evicted (oldest) client: %s, want none", got)
	}
	// viewer-0 took the slot of viewer-1, now the oldest; the others are remembered.
	for i := 2; i <= bucketWays; i++ {
		if got := click(s, 1, fmt.Sprint("viewer-", i), "203.0.113.1", chrome, now+101, true); got != event.IVTDuplicateClick {
			t.Fatalf("viewer %d: %s, want duplicate_click", i, got)
		}
	}
}

func TestClickTableSizing(t *testing.T) {
	for _, c := range []struct{ bytes, wantBuckets int }{{0, 1}, {64, 1}, {127, 1}, {128, 2}, {8 << 20, 131072}, {(8 << 20) + 64, 131072}} {
		tab := newClickTable(time.Second, c.bytes)
		if len(tab.buckets) != c.wantBuckets {
			t.Errorf("%d bytes: %d buckets, want %d", c.bytes, len(tab.buckets), c.wantBuckets)
		}
	}
	if w := newClickTable(1500*time.Millisecond, 64).window; w != 2 {
		t.Errorf("1.5s window is %d s, want 2 (rounded up)", w)
	}
}
