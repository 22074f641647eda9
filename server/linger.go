package server

import (
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Lingering close: a connection the server hangs up on while the client may still be sending (a body refused with 413 or 503, a
// request fasthttp refused before routing) first reads and throws away what the client goes on sending, so the client gets to read
// the answer.
//
// Closing a TCP socket with unread bytes in its receive buffer makes the kernel answer with RST instead of FIN, and a client that is
// still writing its body then gets "connection reset by peer" on the write, or on the read of an answer already in its buffer: the
// 413 it was owed never reaches it (CI saw this for a body one byte over the limit). So the server, after writing the answer, shuts
// its write side (the client sees the answer end), then reads and discards for at most lingerWait and lingerBytes, and closes.
//
// Both bounds keep a hostile client from holding the connection: lingerBytes is twice the body limit (so a body of up to twice the
// limit, sent whole before the client reads, still gets its answer), and the worker goroutine fasthttp runs the connection on stays
// taken meanwhile, so fasthttp's Concurrency bounds the connections lingering at once.
//
// The handler cannot reach the connection it would mark: with MaxConnsPerIP fasthttp wraps every connection in its own type, which
// ctx.Conn() returns. So a refusal marks the client's address and port, unique among the listener's open connections, and the
// connection looks its own up when fasthttp closes it; marks are rare (refusals only), and a close finds none with one atomic load.
type lingerSet struct {
	bytes   int64
	wait    time.Duration
	pending atomic.Int64 // len(marked): lets Close skip the lock when nothing is marked
	mu      sync.Mutex
	marked  map[netip.AddrPort]struct{}
	on      atomic.Bool // Serve wraps its listener: only then does every marked connection come back to take its mark
}

// lingerWaitMax bounds how long a refused connection reads before it closes: long enough for a client on a slow link to finish a
// body of the limit's size or to read the answer and hang up, short enough that a client holding the socket open cannot keep the
// worker.
const lingerWaitMax = 5 * time.Second

func newLingerSet(maxBody int, readTimeout time.Duration) *lingerSet {
	wait := lingerWaitMax
	if readTimeout > 0 {
		wait = min(wait, readTimeout)
	}
	return &lingerSet{bytes: 2 * int64(maxBody), wait: wait, marked: make(map[netip.AddrPort]struct{})}
}

// mark asks for a lingering close of the connection from remote (its next close).
func (l *lingerSet) mark(remote net.Addr) {
	ap, ok := addrPort(remote)
	if !ok || !l.on.Load() {
		return
	}
	l.mu.Lock()
	if _, dup := l.marked[ap]; !dup {
		l.marked[ap] = struct{}{}
		l.pending.Add(1)
	}
	l.mu.Unlock()
}

// take reports whether the connection from remote was marked, and forgets the mark.
func (l *lingerSet) take(remote net.Addr) bool {
	if l.pending.Load() == 0 {
		return false
	}
	ap, ok := addrPort(remote)
	if !ok {
		return false
	}
	l.mu.Lock()
	_, marked := l.marked[ap]
	if marked {
		delete(l.marked, ap)
		l.pending.Add(-1)
	}
	l.mu.Unlock()
	return marked
}

func addrPort(a net.Addr) (netip.AddrPort, bool) {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort(), true
	}
	return netip.AddrPort{}, false
}

// listener wraps ln so that its connections close lingering when marked.
func (l *lingerSet) listener(ln net.Listener) net.Listener {
	l.on.Store(true)
	return lingerListener{Listener: ln, set: l}
}

type lingerListener struct {
	net.Listener
	set *lingerSet
}

func (ll lingerListener) Accept() (net.Conn, error) {
	c, err := ll.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &lingerConn{Conn: c, set: ll.set}, nil
}

type lingerConn struct {
	net.Conn
	set *lingerSet
}

func (c *lingerConn) Close() error {
	if c.set.take(c.RemoteAddr()) {
		c.linger()
	}
	return c.Conn.Close()
}

// linger runs after fasthttp flushed the answer: FIN to the client, then discard its bytes until it hangs up or a bound is reached.
func (c *lingerConn) linger() {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	if c.SetReadDeadline(time.Now().Add(c.set.wait)) != nil {
		return
	}
	_, _ = io.CopyN(io.Discard, c.Conn, c.set.bytes)
}
