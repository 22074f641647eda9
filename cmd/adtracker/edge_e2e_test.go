package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The HTTP edge against the real binary and ClickHouse: behind a trusted proxy that adds its own X-Forwarded-For line, the stored
// address is the one the proxy vouched for, never the client's forged first line; the User-Agent header is stored cleaned like
// the JSON field; analytics need the read token from anyone but this host.
func TestE2EEdgeForwardedUserAgentReadAccess(t *testing.T) {
	s := newStack(t, "ADTRACKER_HTTP_TRUSTED_PROXIES=127.0.0.1", "ADTRACKER_HTTP_READ_TOKEN=e2e-read-token")
	s.start()
	addr := strings.TrimPrefix(s.url, "http://")
	body := `{"ad_id":1,"viewer_id":"edge-xff"}`
	// Raw bytes, so the header lines reach the server exactly as written (fasthttp refuses control characters other than a tab in a
	// header with 400; a tab and bytes above 0x7f pass, so those are what a client can smuggle into the User-Agent).
	raw := "POST /ads/impression HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 203.0.113.77\r\n" +
		"User-Agent: evil\tplayer\xff\xfe/1 é\r\nContent-Type: application/json\r\nConnection: close\r\n" +
		fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("event: %d", resp.StatusCode)
	}
	conn := s.conn()
	var ip, ua string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		err := conn.QueryRow(context.Background(), "SELECT IPv6NumToString(ip), user_agent FROM events WHERE viewer_id = 'edge-xff'").Scan(&ip, &ua)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the event never reached ClickHouse: %v", err)
		}
	}
	if ip != "::ffff:203.0.113.77" || ua != "evil player\uFFFD\uFFFD/1 é" {
		t.Fatalf("stored ip %q, user agent %q", ip, ua)
	}

	get := func(headers ...string) int {
		t.Helper()
		req, err := http.NewRequest("GET", s.url+"/ads/analytics?ad_id=1", nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get(); got != 200 {
		t.Fatalf("analytics from this host: %d", got)
	}
	if got := get("X-Forwarded-For", "203.0.113.77"); got != 401 {
		t.Fatalf("analytics from a remote client through the trusted local proxy, no token: %d, want 401", got)
	}
	if got := get("X-Forwarded-For", "203.0.113.77", "Authorization", "Bearer e2e-read-token"); got != 200 {
		t.Fatalf("analytics with the read token: %d", got)
	}
}
