package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/internal/testenv"
)

// A batch sent in several chunks is still one INSERT: one level-0 part in events and in each rollup (so chunking costs ClickHouse
// no extra parts or merges), every row stored once, and the rollups count every chunk's events.
func TestSinkChunksMakeOnePart(t *testing.T) {
	db := migrated(t)
	ctx := context.Background()
	s := NewSink(db)
	f := func(n, chunk int) {
		t.Helper()
		for _, tbl := range []string{"events", "ad_stats_minute", "ad_stats_hour"} {
			if err := db.Conn.Exec(ctx, "TRUNCATE TABLE "+tbl); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.insert(ctx, testBatch(n, 9), chunk); err != nil {
			t.Fatal(err)
		}
		parts := func(tbl string) (n, level uint64) {
			t.Helper()
			q := "SELECT count(), toUInt64(max(level)) FROM system.parts WHERE database = currentDatabase() AND table = '" + tbl + "' AND active"
			if err := db.Conn.QueryRow(ctx, q).Scan(&n, &level); err != nil {
				t.Fatal(err)
			}
			return n, level
		}
		for _, tbl := range []string{"events", "ad_stats_minute", "ad_stats_hour"} {
			if p, lvl := parts(tbl); p != 1 || lvl != 0 {
				t.Fatalf("%d events in chunks of %d: %s has %d active parts (max level %d), want 1 unmerged part", n, chunk, tbl, p, lvl)
			}
		}
		var rows, ids, impressions uint64
		if err := db.Conn.QueryRow(ctx, "SELECT count(), uniqExact(toString(event_id)) FROM events").Scan(&rows, &ids); err != nil {
			t.Fatal(err)
		}
		if err := db.Conn.QueryRow(ctx, "SELECT sum(impressions) FROM ad_stats_hour").Scan(&impressions); err != nil {
			t.Fatal(err)
		}
		wantImp := uint64((n + 12) / 13) // testBatch cycles through the 13 types, impressions first
		if rows != uint64(n) || ids != uint64(n) || impressions != wantImp {
			t.Fatalf("%d events in chunks of %d: stored %d rows, %d ids, %d impressions in the rollup; want %d, %d, %d",
				n, chunk, rows, ids, impressions, n, n, wantImp)
		}
	}
	f(4500, 1000) // four full chunks and a partial one
	f(3000, 1000) // the last chunk full: Send ends the INSERT with no rows of its own
	f(999, 1000)  // one partial chunk
}

// A server that stops reading in the middle of a chunked insert must not hold the inserter: Flush does not watch the context, so
// the connection's write deadline has to end it, with an error that says retry and that the batch may be stored.
func TestSinkWriteStallEndsInsert(t *testing.T) {
	db := migrated(t)
	p := newStallProxy(t, testenv.ClickHouseAddr(t))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stalled, err := Open(ctx, Config{Addr: p.addr, Database: db.Database, WriteTimeout: time.Second}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	// Incompressible user agents, so LZ4 cannot shrink the batch below what the socket buffers absorb once the proxy stalls.
	b := randomBatch(120000)
	p.stallAfter(1 << 20)
	done := make(chan error, 1)
	go func() {
		ictx, icancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer icancel()
		done <- NewSink(stalled).Insert(ictx, b)
	}()
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("Insert still blocked 60 s after the server stopped reading (write timeout 1 s, insert context 3 s)")
	}
	var e *Error
	if !errors.As(err, &e) || !e.Retryable() || !e.IsUncertain() {
		t.Fatalf("Insert against a stalled server returned %v, want a retryable, uncertain *Error", err)
	}
	if p.forwarded() < 1<<20 {
		t.Fatalf("only %d bytes reached the proxy: the stall did not happen inside the insert", p.forwarded())
	}
}

func randomBatch(n int) *event.Batch {
	var b event.Batch
	var e event.Event
	rng := rand.New(rand.NewPCG(1, 2))
	ua := make([]byte, 200)
	for i := 0; i < n; i++ {
		e.Reset()
		e.ID[0], e.ID[1], e.ID[2], e.ID[6] = byte(i>>16), byte(i>>8), byte(i), 0x40
		e.Type, e.AdID = event.TypeImpression, 5
		e.EventTime = time.Date(2025, 4, 21, 15, 0, 0, 0, time.UTC).Unix()
		e.ReceiveTime = e.EventTime
		for j := range ua {
			ua[j] = byte('!' + rng.IntN(90))
		}
		e.SetUserAgent(ua)
		e.SetViewerID(fmt.Appendf(nil, "v%d", i))
		b.Append(&e)
	}
	return &b
}

// stallProxy forwards TCP to a server and, once told, stops reading from the client after a number of bytes: from the client's side
// the server froze mid-request. Replies keep flowing, so the handshake and the query's first answer work.
type stallProxy struct {
	addr  string
	limit atomic.Int64 // bytes to forward per connection before stalling; 0 = no limit
	n     atomic.Int64
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func newStallProxy(t *testing.T, upstream string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{addr: ln.Addr().String(), ln: ln}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); _, _ = io.Copy(c, u) }()
			go func() { defer p.wg.Done(); p.up(c, u) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *stallProxy) stallAfter(n int64) { p.limit.Store(n) }
func (p *stallProxy) forwarded() int64   { return p.n.Load() }

func (p *stallProxy) up(c, u net.Conn) {
	buf := make([]byte, 32<<10)
	var sent int64
	for {
		if lim := p.limit.Load(); lim > 0 && sent >= lim {
			// Stalled: hold the connection open without reading until the test ends and closes it.
			var one [1]byte
			_, _ = u.Read(one[:])
			return
		}
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := u.Write(buf[:n]); werr != nil {
				return
			}
			sent += int64(n)
			p.n.Add(int64(n))
		}
		if err != nil {
			return
		}
	}
}
