package catalog

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/adtracker/adtracker/storage/postgres"
)

// fakeSource is a Source whose rows and failure the test controls.
type fakeSource struct {
	mu     sync.Mutex
	rows   []postgres.SnapshotRow
	err    error
	loads  int
	notify func(string) // set while Listen runs
}

func (f *fakeSource) AllForSnapshot(ctx context.Context) ([]postgres.SnapshotRow, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loads++
	if f.err != nil {
		return nil, f.err
	}
	return append([]postgres.SnapshotRow(nil), f.rows...), nil
}

func (f *fakeSource) Listen(ctx context.Context, channel string, fn func(string)) error {
	f.mu.Lock()
	f.notify = fn
	f.mu.Unlock()
	fn("")
	<-ctx.Done()
	return nil
}

func (f *fakeSource) set(err error, rows ...postgres.SnapshotRow) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rows, f.err = rows, err
}

func (f *fakeSource) send(payload string) {
	f.mu.Lock()
	fn := f.notify
	f.mu.Unlock()
	fn(payload)
}

func (f *fakeSource) loadCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.loads
}

func row(id int64, status, target string) postgres.SnapshotRow {
	return postgres.SnapshotRow{ID: id, Status: status, TargetURL: target}
}

// waitFor polls cond until it holds; the bound only stops a hung test.
func waitFor(t *testing.T, what string, bound time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", bound, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// start runs c until the test ends.
func start(t *testing.T, c *Catalog) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
}

func TestEntryAccepts(t *testing.T) {
	f := func(status string, want bool) {
		t.Helper()
		if got := (Entry{Status: ParseStatus(status)}).Accepts(); got != want {
			t.Fatalf("Accepts(%q) = %v, want %v", status, got, want)
		}
	}
	f("active", true)
	f("paused", true)
	f("archived", false)
	f("bogus", false)
	for _, s := range []string{"active", "paused", "archived"} {
		if ParseStatus(s).String() != s {
			t.Fatalf("ParseStatus(%q).String() = %q", s, ParseStatus(s))
		}
	}
}

func TestCatalogBeforeLoad(t *testing.T) {
	c := New(&fakeSource{}, Config{})
	if c.Ready() || c.Size() != 0 || c.Age() != 0 || c.Snapshot() != nil {
		t.Fatalf("fresh catalogue: ready %v size %d age %v", c.Ready(), c.Size(), c.Age())
	}
	if _, ok := c.Lookup(1); ok {
		t.Fatal("Lookup found an ad before any load")
	}
}

func TestCatalogLoadsAndFollowsNotify(t *testing.T) {
	src := &fakeSource{}
	src.set(nil, row(1, "active", "https://a.example/"), row(2, "archived", "https://b.example/"))
	// An hour-long refresh: only the start-up load and NOTIFY can change the snapshot here.
	c := New(src, Config{RefreshInterval: time.Hour, Debounce: time.Millisecond})
	start(t, c)
	waitFor(t, "first load", 10*time.Second, func() bool { return c.Ready() && c.Listening() })
	if e, ok := c.Lookup(1); !ok || e.Status != StatusActive || e.TargetURL != "https://a.example/" || !e.Accepts() {
		t.Fatalf("Lookup(1) = %+v, %v", e, ok)
	}
	if e, ok := c.Lookup(2); !ok || e.Accepts() {
		t.Fatalf("Lookup(2) = %+v, %v; want a known, archived ad", e, ok)
	}
	if c.Size() != 2 {
		t.Fatalf("Size = %d", c.Size())
	}
	old := c.Snapshot()

	src.set(nil, row(1, "paused", "https://a.example/"), row(2, "archived", "https://b.example/"), row(3, "active", "https://c.example/"))
	src.send("3")
	waitFor(t, "ad 3 after NOTIFY", 10*time.Second, func() bool { _, ok := c.Lookup(3); return ok })
	if e, _ := c.Lookup(1); e.Status != StatusPaused || !e.Accepts() {
		t.Fatalf("Lookup(1) after reload = %+v", e)
	}
	// Copy-on-write: a reader still holding the old snapshot sees it unchanged.
	if _, ok := old.Lookup(3); ok || old.Len() != 2 {
		t.Fatal("the old snapshot was modified in place")
	}
}

func TestCatalogNotifyBurstCoalesces(t *testing.T) {
	src := &fakeSource{}
	src.set(nil, row(1, "active", "https://a.example/"))
	c := New(src, Config{RefreshInterval: time.Hour, Debounce: 200 * time.Millisecond})
	start(t, c)
	waitFor(t, "first load", 10*time.Second, func() bool { return c.Ready() && c.Listening() })
	before := src.loadCount()
	src.set(nil, row(1, "active", "https://a.example/"), row(2, "active", "https://b.example/"))
	for range 1000 {
		src.send("2")
	}
	waitFor(t, "ad 2", 10*time.Second, func() bool { _, ok := c.Lookup(2); return ok })
	// 1000 notifications sent within the debounce window: a handful of loads, not 1000.
	if n := src.loadCount() - before; n > 5 {
		t.Fatalf("%d loads for one burst of NOTIFYs", n)
	}
}

func TestCatalogKeepsSnapshotWhenSourceFails(t *testing.T) {
	src := &fakeSource{}
	src.set(nil, row(7, "active", "https://a.example/"))
	c := New(src, Config{RefreshInterval: 20 * time.Millisecond, RetryMin: time.Millisecond})
	start(t, c)
	waitFor(t, "first load", 10*time.Second, c.Ready)
	src.set(errors.New("connection refused"))
	loads := src.loadCount()
	// Several failed reloads later, the last good snapshot still answers.
	waitFor(t, "failed reloads", 10*time.Second, func() bool { return src.loadCount() >= loads+3 })
	if e, ok := c.Lookup(7); !ok || !e.Accepts() || !c.Ready() || c.Size() != 1 {
		t.Fatalf("after failures: Lookup(7) = %+v, %v, ready %v, size %d", e, ok, c.Ready(), c.Size())
	}
	age := c.Age()
	waitFor(t, "age to grow", 10*time.Second, func() bool { return c.Age() > age })

	src.set(nil, row(8, "active", "https://b.example/"))
	waitFor(t, "recovery", 10*time.Second, func() bool { _, ok := c.Lookup(8); return ok })
	if _, ok := c.Lookup(7); ok {
		t.Fatal("ad 7 survived a successful reload that no longer has it")
	}
}

func TestCatalogNotReadyWhileSourceDown(t *testing.T) {
	src := &fakeSource{}
	src.set(errors.New("connection refused"))
	c := New(src, Config{RefreshInterval: time.Hour, RetryMin: time.Millisecond})
	start(t, c)
	// Retries come from the backoff, not from the hour-long refresh.
	waitFor(t, "retries", 10*time.Second, func() bool { return src.loadCount() >= 3 })
	if c.Ready() {
		t.Fatal("Ready without a successful load")
	}
	src.set(nil, row(1, "active", "https://a.example/"))
	waitFor(t, "first successful load", 10*time.Second, c.Ready)
}

func TestLookupDoesNotAllocate(t *testing.T) {
	c := bigCatalog(t, 10000)
	allocs := testing.AllocsPerRun(1000, func() {
		if _, ok := c.Lookup(1234); !ok {
			t.Fatal("missing")
		}
		c.Lookup(99999999)
	})
	if allocs != 0 {
		t.Fatalf("Lookup allocates %v times per call", allocs)
	}
}

func bigCatalog(tb testing.TB, n int) *Catalog {
	rows := make([]postgres.SnapshotRow, n)
	for i := range rows {
		rows[i] = row(int64(i+1), "active", "https://example.com/landing")
	}
	src := &fakeSource{}
	src.set(nil, rows...)
	c := New(src, Config{})
	if err := c.Reload(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return c
}

func BenchmarkLookup(b *testing.B) {
	const n = 10000
	c := bigCatalog(b, n)
	ids := make([]uint64, 1024)
	for i := range ids {
		ids[i] = uint64(rand.IntN(n + n/10)) // about 9% unknown ids
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			e, ok := c.Lookup(ids[i&1023])
			if ok && !e.Accepts() {
				b.Fatal("unexpected status")
			}
			i++
		}
	})
}

func TestCatalogNotifyCutsRetryBackoffShort(t *testing.T) {
	src := &fakeSource{}
	src.set(errors.New("connection refused"))
	// Hour-long retry and refresh: only the NOTIFY can trigger the successful load.
	c := New(src, Config{RefreshInterval: time.Hour, RetryMin: time.Hour, Debounce: time.Millisecond})
	start(t, c)
	waitFor(t, "the first, failed load", 10*time.Second, func() bool { return src.loadCount() >= 1 && c.Listening() })
	src.set(nil, row(1, "active", "https://a.example/"))
	src.send("1")
	waitFor(t, "load after NOTIFY", 10*time.Second, c.Ready)
}
