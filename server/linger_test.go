package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// A client that writes its whole request before it reads still gets the refusal, though the server hung up with the request's rest
// unread: without the lingering close the kernel resets the connection and the answer is lost (the write or the read fails with
// "connection reset by peer"; checked by turning linger off).
func TestRefusalReachesClientThatSendsBeforeReading(t *testing.T) {
	const limit = 100 << 10
	cases := []struct {
		name    string
		perIP   int // MaxConnsPerIP: fasthttp then wraps the connection in its own type
		headers string
		body    []byte
		chunked bool
		status  int
	}{
		{name: "content-length limit+1", headers: fmt.Sprintf("Content-Length: %d\r\n", limit+1), body: make([]byte, limit+1), status: 413},
		{name: "content-length limit+1, per-IP limit", perIP: 8, headers: fmt.Sprintf("Content-Length: %d\r\n", limit+1),
			body: make([]byte, limit+1), status: 413},
		{name: "content-length twice the limit", headers: fmt.Sprintf("Content-Length: %d\r\n", 2*limit), body: make([]byte, 2*limit),
			status: 413},
		{name: "chunked limit+1", headers: "Transfer-Encoding: chunked\r\n", body: make([]byte, limit+1), chunked: true, status: 413},
		{name: "headers too large, then a body", headers: "X-Junk: " + strings.Repeat("j", 8<<10) + "\r\nContent-Length: 65536\r\n",
			body: make([]byte, 64<<10), status: 431},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr, _ := listen(t, Options{ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, MaxBodyBytes: limit,
				MaxHeaderBytes: 4096, MaxConnsPerIP: tc.perIP}, nil)
			var req bytes.Buffer
			req.WriteString("POST /echo HTTP/1.1\r\nHost: tracker\r\nContent-Type: application/json\r\n" + tc.headers + "\r\n")
			if tc.chunked {
				fmt.Fprintf(&req, "%x\r\n%s\r\n0\r\n\r\n", len(tc.body), tc.body)
			} else {
				req.Write(tc.body)
			}
			c := dial(t, addr)
			// A small send buffer keeps the client writing while the server answers: the unread rest then sits in the server's
			// buffer when it hangs up, as with a client on a slow link.
			if err := c.(*net.TCPConn).SetWriteBuffer(4 << 10); err != nil {
				t.Fatal(err)
			}
			if err := c.SetWriteDeadline(time.Now().Add(20 * time.Second)); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write(req.Bytes()); err != nil {
				t.Fatalf("writing the request: %v", err)
			}
			resp := readResponse(t, c)
			if resp.status != tc.status || !strings.Contains(resp.body, `"error":`) { // readResponse checked the connection closed
				t.Fatalf("got %d %s\n%v", resp.status, resp.body, resp.header)
			}
		})
	}
}

// refusedMidBody sends a request declaring ten times limit and the first limit bytes of its body (fasthttp waits for its prefetch
// before the gate runs), reads the start of the 413, and returns the connection with the server lingering on it.
func refusedMidBody(t *testing.T, addr string, limit int) net.Conn {
	t.Helper()
	c := dial(t, addr)
	if _, err := fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: tracker\r\nContent-Length: %d\r\n\r\n%s", 10*limit,
		bytes.Repeat([]byte{'x'}, limit)); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 12)
	if _, err := io.ReadFull(c, head); err != nil || string(head) != "HTTP/1.1 413" {
		t.Fatalf("answer %q, %v", head, err)
	}
	return c
}

// Lingering is bounded in time: a client that keeps the connection open and trickles bytes after the refusal is hung up on after
// the wait (here the read timeout, 1 s), not served forever.
func TestLingeringEndsAfterItsWait(t *testing.T) {
	const limit = 16 << 10
	addr, s := listen(t, Options{ReadTimeout: time.Second, WriteTimeout: 5 * time.Second, MaxBodyBytes: limit}, nil)
	if s.linger.wait != time.Second {
		t.Fatalf("linger wait %v, want the read timeout (1s)", s.linger.wait)
	}
	c := refusedMidBody(t, addr, limit)
	start := time.Now()
	for time.Since(start) < 20*time.Second {
		if _, err := c.Write([]byte{'x'}); err != nil {
			t.Logf("hung up on after %v: %v", time.Since(start).Round(10*time.Millisecond), err)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the server still read the trickle 20 s after its answer")
}

// Lingering reads at most twice the body limit (TestHugeBodyRefusedWithoutReadingIt shows a 256 MB sender cut off) and waits at most
// lingerWaitMax; a mark counts only under Serve's listener, and is taken once.
func TestLingerSetBoundsAndMarks(t *testing.T) {
	l := newLingerSet(100<<10, 10*time.Second)
	if l.bytes != 200<<10 || l.wait != lingerWaitMax {
		t.Fatalf("bytes %d wait %v", l.bytes, l.wait)
	}
	a := net.TCPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.1:5000"))
	l.mark(a)
	if l.take(a) {
		t.Fatal("a mark made before Serve was kept")
	}
	l.on.Store(true)
	l.mark(a)
	l.mark(a)
	if l.pending.Load() != 1 || !l.take(a) || l.take(a) || l.pending.Load() != 0 {
		t.Fatalf("mark/take: pending %d", l.pending.Load())
	}
}

// Shutdown does not wait for a lingering connection: fasthttp stops counting a connection before it closes it, and the lingering
// runs in that close. With the wait at its 5 s bound and the client still trickling bytes, Shutdown returns within a 2.5 s context
// (a linger moved into the handler, or a fasthttp that counts the close, would make it wait the 5 s).
func TestShutdownDoesNotWaitForLingering(t *testing.T) {
	const limit = 16 << 10
	addr, s := listen(t, Options{ReadTimeout: 30 * time.Second, WriteTimeout: 5 * time.Second, MaxBodyBytes: limit}, nil)
	if s.linger.wait != lingerWaitMax {
		t.Fatalf("linger wait %v, want %v", s.linger.wait, lingerWaitMax)
	}
	c := refusedMidBody(t, addr, limit)
	// The mark is taken when fasthttp closes the connection, which is where the lingering starts.
	for deadline := time.Now().Add(5 * time.Second); s.linger.pending.Load() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the refused connection was not closed within 5 s")
		}
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() { // the trickle keeps the lingering read going
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				if _, err := c.Write([]byte{'x'}); err != nil {
					return
				}
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a connection lingering: %v", err)
	}
}
