package server

import (
	"bufio"
	"bytes"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// echoBody answers a body's length and checksum, so a test can tell the handler saw it whole.
func echoBody(ctx *fasthttp.RequestCtx) {
	b := ctx.PostBody()
	fmt.Fprintf(ctx, "%d %08x", len(b), crc32.ChecksumIEEE(b))
}

func wantEcho(b []byte) string { return fmt.Sprintf("%d %08x", len(b), crc32.ChecksumIEEE(b)) }

// post sends body and returns the answer's status, headers and body; Connection: close shows as a "Connection" header (net/http
// takes it out of the header it hands back).
func post(t *testing.T, c *http.Client, url string, body io.Reader, length int64) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest("POST", url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = length // -1: chunked
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Close {
		resp.Header.Set("Connection", "close")
	}
	return resp.StatusCode, resp.Header, string(b)
}

// onlyReader hides bytes.Reader's size, so net/http sends the body chunked.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// Every body reaches the handler whole, whatever its size and framing, and the connection stays usable for the next request.
func TestBodyGateHandsOverWholeBodies(t *testing.T) {
	const limit = 100 << 10
	addr, _ := listen(t, Options{ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, MaxBodyBytes: limit},
		func(s *Server) { s.Router.POST("/echo", echoBody) })
	c := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}, Timeout: 20 * time.Second}
	defer c.CloseIdleConnections()
	url := "http://" + addr + "/echo"
	for _, n := range []int{0, 1, prefetchBytes - 1, prefetchBytes, prefetchBytes + 1, minClass, minClass + 1, 70_000, limit} {
		body := make([]byte, n)
		for i := range body {
			body[i] = byte(i * 7)
		}
		for _, chunked := range []bool{false, true} {
			var r io.Reader = bytes.NewReader(body)
			length := int64(n)
			if chunked && n > 0 {
				r, length = onlyReader{r}, -1
			}
			code, _, got := post(t, c, url, r, length)
			if code != 200 || got != wantEcho(body) {
				t.Fatalf("%d bytes, chunked %v: %d %q, want %q", n, chunked, code, got, wantEcho(body))
			}
		}
	}
	// Over the limit by one byte, each framing: 413, naming the body.
	for _, chunked := range []bool{false, true} {
		body := bytes.Repeat([]byte{'x'}, limit+1)
		var r io.Reader = bytes.NewReader(body)
		length := int64(len(body))
		if chunked {
			r, length = onlyReader{r}, -1
		}
		code, h, got := post(t, c, url, r, length)
		if code != 413 || got != `{"error":"request body too large","field":"body"}` || h.Get("Connection") != "close" {
			t.Fatalf("chunked %v, limit+1: %d %q %v", chunked, code, got, h)
		}
	}
}

// The bodies over prefetchBytes held at once stay within the budget: the others wait for room, then are served whole. Small bodies
// never wait.
func TestBodyGateBoundsBodiesInFlight(t *testing.T) {
	const bodySize, class = 40 << 10, 64 << 10
	var (
		in, most atomic.Int64
		hold     = make(chan struct{})
	)
	addr, srv := listen(t, Options{ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, MaxBodyBytes: bodySize,
		BodyBufferBytes: 2 * class}, func(s *Server) {
		s.Router.POST("/hold", func(ctx *fasthttp.RequestCtx) {
			n := in.Add(1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			<-hold
			in.Add(-1)
			echoBody(ctx)
		})
		s.Router.POST("/echo", echoBody)
	})
	c := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 16, MaxIdleConnsPerHost: 16}, Timeout: 20 * time.Second}
	defer c.CloseIdleConnections()
	body := bytes.Repeat([]byte("0123456789abcdef"), bodySize/16)
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _, got := post(t, c, "http://"+addr+"/hold", bytes.NewReader(body), int64(len(body)))
			if code != 200 || got != wantEcho(body) {
				errs <- fmt.Sprintf("%d %q", code, got)
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for in.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // room for a third body to get in, were the budget not enforced
	if n := in.Load(); n != 2 {
		t.Fatalf("%d large bodies in handlers at once, want 2 (budget of two 64 KiB classes)", n)
	}
	if h := srv.body.held.Load(); h != 2*class {
		t.Fatalf("held %d bytes, want %d", h, 2*class)
	}
	// A small body passes while the large ones wait.
	small := []byte(`{"ad_id":1}`)
	if code, _, got := post(t, c, "http://"+addr+"/echo", bytes.NewReader(small), int64(len(small))); code != 200 || got != wantEcho(small) {
		t.Fatalf("small body while the budget is full: %d %q", code, got)
	}
	for srv.body.waits.Load() < 6 && time.Now().Before(deadline) { // the six others are queued before the first two leave
		time.Sleep(5 * time.Millisecond)
	}
	close(hold)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatalf("a held request: %s", e)
	}
	if most.Load() != 2 || srv.body.held.Load() != 0 || srv.body.waits.Load() != 6 {
		t.Fatalf("most at once %d, held after %d, waits %d", most.Load(), srv.body.held.Load(), srv.body.waits.Load())
	}
}

// A body that finds no room within the read timeout gets 503 + Retry-After, and its connection is closed (its body was not read).
func TestBodyGateBusyAnswers503(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	const class = 64 << 10
	addr, s := listen(t, Options{ReadTimeout: time.Second, WriteTimeout: 5 * time.Second, MaxBodyBytes: class, BodyBufferBytes: 2 * class},
		func(s *Server) {
			s.Router.POST("/hold", func(ctx *fasthttp.RequestCtx) {
				if string(ctx.QueryArgs().Peek("wait")) == "1" {
					<-hold
				}
				echoBody(ctx)
			})
		})
	c := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 4, MaxIdleConnsPerHost: 4}, Timeout: 20 * time.Second}
	defer c.CloseIdleConnections()
	body := bytes.Repeat([]byte{'b'}, 60<<10)
	// Two requests that stay in the handler take the whole budget.
	for range 2 {
		go func() {
			req, _ := http.NewRequest("POST", "http://"+addr+"/hold?wait=1", bytes.NewReader(body))
			if resp, err := c.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.body.held.Load() < 2*class && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if h := s.body.held.Load(); h != 2*class {
		t.Fatalf("the holders took %d bytes of room, want %d", h, 2*class)
	}
	start := time.Now()
	code, h, got := post(t, c, "http://"+addr+"/hold", bytes.NewReader(body), int64(len(body)))
	if code != 503 || h.Get("Retry-After") != "1" || h.Get("Connection") != "close" ||
		!strings.Contains(got, "too many request bodies in flight") {
		t.Fatalf("got %d %q %v after %v", code, got, h, time.Since(start))
	}
	if w := s.body.waits.Load(); w != 1 {
		t.Fatalf("%d waits counted, want 1", w)
	}
}

// A large body sent after "Expect: 100-continue" is read once the server said to go on; one that stalls half way gets 408.
func TestBodyGateRawConnections(t *testing.T) {
	addr, _ := listen(t, Options{ReadTimeout: time.Second, WriteTimeout: 5 * time.Second, MaxBodyBytes: 64 << 10},
		func(s *Server) { s.Router.POST("/echo", echoBody) })
	body := bytes.Repeat([]byte("expect"), 5000)

	c := dial(t, addr)
	if _, err := fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: tracker\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", len(body)); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 Continue") {
		t.Fatalf("before the body: %q %v", line, err)
	}
	if _, err := br.ReadString('\n'); err != nil { // the empty line closing the interim answer
		t.Fatal(err)
	}
	if _, err := c.Write(body); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(got) != wantEcho(body) {
		t.Fatalf("after 100-continue: %d %q", resp.StatusCode, got)
	}

	c = dial(t, addr)
	if _, err := fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: tracker\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:len(body)/2]); err != nil {
		t.Fatal(err)
	}
	if r := readResponse(t, c); r.status != 408 || r.body != `{"error":"request timeout"}` {
		t.Fatalf("stalled body: %d %q", r.status, r.body)
	}
}

// pipeConn feeds a server pipelined requests from memory and discards its answers.
type pipeConn struct{ r *bytes.Reader }

func (c *pipeConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *pipeConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *pipeConn) Close() error                     { return nil }
func (c *pipeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (c *pipeConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2} }
func (c *pipeConn) SetDeadline(time.Time) error      { return nil }
func (c *pipeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *pipeConn) SetWriteDeadline(time.Time) error { return nil }

// BenchmarkServeBody is fasthttp's whole request path plus the middleware for one POST, with the body gate (streaming, as served)
// and without it (fasthttp reading the body before the handler, as before the gate): a single event's ~200-byte body, and a
// batch-sized one.
func BenchmarkServeBody(b *testing.B) {
	for _, size := range []int{200, 256 << 10} {
		for _, stream := range []bool{true, false} {
			b.Run(fmt.Sprintf("bytes=%d/stream=%v", size, stream), func(b *testing.B) {
				s := New(Options{MaxBodyBytes: 1 << 20})
				var seen int
				s.Router.POST("/e", func(ctx *fasthttp.RequestCtx) { seen += len(ctx.PostBody()) })
				s.buildOnce.Do(func() { s.handler, s.buildErr = s.build() })
				srv := s.fasthttpServer()
				srv.StreamRequestBody = stream
				req := append(fmt.Appendf(nil, "POST /e HTTP/1.1\r\nHost: tracker\r\nContent-Length: %d\r\n\r\n", size),
					bytes.Repeat([]byte{'e'}, size)...)
				const perConn = 64
				input := bytes.Repeat(req, perConn)
				b.ReportAllocs()
				b.SetBytes(int64(size))
				b.ResetTimer()
				for i := 0; i < b.N; i += perConn {
					if err := srv.ServeConn(&pipeConn{r: bytes.NewReader(input)}); err != nil {
						b.Fatal(err)
					}
				}
				if seen == 0 {
					b.Fatal("the handler saw no body")
				}
			})
		}
	}
}
