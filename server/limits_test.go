package server

// Connection limits against a real listener on 127.0.0.1. Deadlines in these tests only bound a failing run; nothing asserts speed.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
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

func listen(t *testing.T, opt Options, routes func(*Server)) (string, *Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(opt)
	if routes != nil {
		routes(s)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String(), s
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// response is what the tests inspect of an answer, its body already read and closed.
type response struct {
	status int
	header http.Header
	body   string
}

// readResponse reads one response, then checks the server closed the connection (EOF, or a reset when it closed with our unread bytes
// in its buffer).
func readResponse(t *testing.T, c net.Conn) response {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	if n, err := br.Read(make([]byte, 1)); n != 0 || err == nil || isTimeout(err) {
		t.Fatalf("connection still open after the error response: n=%d err=%v", n, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestSlowlorisIsCutOffWhileOthersAreServed(t *testing.T) {
	var served atomic.Int64
	addr, _ := listen(t, Options{ReadTimeout: time.Second, WriteTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second, MaxBodyBytes: 1 << 20},
		func(s *Server) {
			s.Router.POST("/ads/click", func(ctx *fasthttp.RequestCtx) {
				served.Add(1)
				ctx.SetStatusCode(fasthttp.StatusAccepted)
			})
		})
	const header = "POST /ads/click HTTP/1.1\r\nHost: tracker\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
	const slow = 20
	type result struct {
		sent   int
		status int
		err    error
	}
	results := make(chan result, slow)
	for i := 0; i < slow; i++ {
		c := dial(t, addr)
		if err := c.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
			t.Fatal(err)
		}
		go func() {
			// One byte a second, as a slowloris client does to hold a worker, until the server answers or hangs up.
			var r result
			statusc := make(chan int, 1)
			go func() {
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					statusc <- 0
					return
				}
				resp.Body.Close()
				statusc <- resp.StatusCode
			}()
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			answered := false
			for !answered && r.sent < len(header) {
				if _, err := c.Write([]byte{header[r.sent]}); err != nil {
					r.err = err
					break
				}
				r.sent++
				select {
				case r.status = <-statusc:
					answered = true
				case <-tick.C:
				}
			}
			if !answered {
				r.status = <-statusc
			}
			results <- r
		}()
	}
	// Meanwhile a normal client is served on its own keep-alive connection.
	client := &fasthttp.HostClient{Addr: addr}
	for i := 0; i < 20; i++ {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI("http://" + addr + "/ads/click")
		req.Header.SetMethod("POST")
		req.SetBodyString("{}")
		if err := client.DoTimeout(req, resp, 5*time.Second); err != nil || resp.StatusCode() != 202 {
			t.Fatalf("normal request %d during the slowloris: %v %d", i, err, resp.StatusCode())
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}
	for i := 0; i < slow; i++ {
		r := <-results
		if r.sent >= len(header) {
			t.Fatalf("slow client sent its whole request (%d bytes): not cut off", r.sent)
		}
		if r.status != fasthttp.StatusRequestTimeout {
			t.Fatalf("slow client got status %d (write err %v), want 408", r.status, r.err)
		}
	}
	if served.Load() != 20 {
		t.Fatalf("handler served %d requests, want the normal client's 20", served.Load())
	}
}

// streamBody writes body bytes until the server hangs up or limit bytes are written.
func streamBody(t *testing.T, c net.Conn, chunked bool, limit int) <-chan int {
	t.Helper()
	if err := c.SetWriteDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() {
		block := []byte(strings.Repeat("x", 64<<10))
		if chunked {
			block = []byte(fmt.Sprintf("%x\r\n%s\r\n", len(block), block))
		}
		sent := 0
		for sent < limit {
			n, err := c.Write(block)
			sent += n
			if err != nil {
				break
			}
		}
		done <- sent
	}()
	return done
}

func TestHugeBodyRefusedWithoutReadingIt(t *testing.T) {
	var called atomic.Int64
	addr, _ := listen(t, Options{ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, MaxBodyBytes: 1 << 20},
		func(s *Server) {
			s.Router.POST("/events", func(ctx *fasthttp.RequestCtx) { called.Add(1) })
		})
	f := func(name, headers string, chunked bool) {
		t.Run(name, func(t *testing.T) {
			const limit = 256 << 20
			c := dial(t, addr)
			if _, err := io.WriteString(c, "POST /events HTTP/1.1\r\nHost: tracker\r\nContent-Type: application/json\r\n"+headers+"\r\n"); err != nil {
				t.Fatal(err)
			}
			sent := streamBody(t, c, chunked, limit)
			resp := readResponse(t, c)
			if resp.status != 413 || resp.body != `{"error":"request body too large","field":"body"}` ||
				resp.header.Get("Content-Type") != "application/json; charset=utf-8" || resp.header.Get("X-Request-Id") == "" ||
				resp.header.Get("X-Content-Type-Options") != "nosniff" {
				t.Fatalf("got %d %s\n%v", resp.status, resp.body, resp.header)
			}
			c.Close() // unblocks the writer if the kernel buffers still had room
			if n := <-sent; n >= limit {
				t.Fatalf("the server kept reading: %d bytes sent", n)
			} else {
				t.Logf("client managed to send %.1f MB before the server hung up", float64(n)/1e6)
			}
		})
	}
	f("content-length 1GB", "Content-Length: 1073741824\r\n", false)
	f("chunked", "Transfer-Encoding: chunked\r\n", true)
	if called.Load() != 0 {
		t.Fatalf("handler called %d times for refused bodies", called.Load())
	}
}

func TestOversizedHeadersAnswer431(t *testing.T) {
	addr, _ := listen(t, Options{ReadTimeout: 5 * time.Second, MaxBodyBytes: 1 << 20, MaxHeaderBytes: 4096}, nil)
	c := dial(t, addr)
	req := "GET /healthz HTTP/1.1\r\nHost: tracker\r\nX-Junk: " + strings.Repeat("j", 8192) + "\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	if resp := readResponse(t, c); resp.status != 431 || resp.body != `{"error":"request headers too large"}` {
		t.Fatalf("got %d %s", resp.status, resp.body)
	}
	// Under the bound the same request is fine.
	c = dial(t, addr)
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: tracker\r\nX-Junk: "+strings.Repeat("j", 1000)+"\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if resp := readResponse(t, c); resp.status != 200 {
		t.Fatalf("small headers: %d", resp.status)
	}
}

// Shutdown while a client sits on an idle keep-alive connection returns promptly (CloseOnShutdown).
func TestShutdownClosesIdleConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{ReadTimeout: time.Minute, IdleTimeout: time.Hour})
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	c := dial(t, ln.Addr().String())
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("healthz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz: status %d", resp.StatusCode)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown with an idle keep-alive connection: %v", err)
		}
	}()
	wg.Wait()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// countingReader counts the bytes a client read from its body, i.e. sent.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// A client that waits for "100 Continue" before its body (curl does for large bodies) gets the 413 instead, and sends no body;
// within the limit it gets 100 Continue and is served. Without the ExpectHandler the server said 100 Continue to the 4 MiB body too,
// and the client got a reset, not a 413 (checked).
func TestExpectContinueOverLimitAnswered413(t *testing.T) {
	const limit = 100 << 10
	addr, _ := listen(t, Options{ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, MaxBodyBytes: limit},
		func(s *Server) { s.Router.POST("/echo", echoBody) })
	t.Run("raw", func(t *testing.T) {
		c := dial(t, addr)
		if _, err := fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: tracker\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n", 4<<20); err != nil {
			t.Fatal(err)
		}
		resp := readResponse(t, c) // the first answer: 413, not 100; then the connection closes
		if resp.status != 413 || resp.body != `{"error":"request body too large","field":"body"}` || resp.header.Get("X-Request-Id") == "" ||
			resp.header.Get("Content-Type") != "application/json; charset=utf-8" {
			t.Fatalf("got %d %s\n%v", resp.status, resp.body, resp.header)
		}
	})
	t.Run("net/http client", func(t *testing.T) {
		c := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: 10 * time.Second}, Timeout: 20 * time.Second}
		defer c.CloseIdleConnections()
		for _, n := range []int{4 << 20, limit} {
			body := &countingReader{r: bytes.NewReader(make([]byte, n))}
			req, err := http.NewRequest("POST", "http://"+addr+"/echo", body)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = int64(n)
			req.Header.Set("Expect", "100-continue")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("%d bytes: %v", n, err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case n > limit && (resp.StatusCode != 413 || string(got) != `{"error":"request body too large","field":"body"}` || body.n.Load() != 0):
				t.Fatalf("%d bytes: %d %s, %d body bytes sent", n, resp.StatusCode, got, body.n.Load())
			case n <= limit && (resp.StatusCode != 200 || string(got) != wantEcho(make([]byte, n))):
				t.Fatalf("%d bytes: %d %s", n, resp.StatusCode, got)
			}
		}
	})
}
