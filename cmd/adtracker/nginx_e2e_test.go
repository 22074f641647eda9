package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/adtracker/adtracker/internal/testenv"
)

// envRequireNginx makes a missing nginx a failure instead of a skip; make test sets it (and installs nginx-light).
const envRequireNginx = "ADTRACKER_REQUIRE_NGINX"

// nginxBinary is Debian's nginx; it skips t when nginx is missing, or fails it when envRequireNginx is set.
func nginxBinary(t *testing.T) string {
	t.Helper()
	if bin, err := exec.LookPath("nginx"); err == nil {
		return bin
	}
	const bin = "/usr/sbin/nginx" // root's PATH has it, another user's may not
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv(envRequireNginx) != "" {
			t.Fatalf("nginx is missing and %s is set: apt-get install nginx-light (make test does it)", envRequireNginx)
		}
		t.Skipf("nginx is missing: apt-get install nginx-light, or run make test (it does it); set %s to fail instead", envRequireNginx)
	}
	return bin
}

// startNginx runs the cluster's shipped load balancer config (deploy/cluster/compose/nginx.conf) with bin in front of upstream:
// its one upstream server is upstream, it listens on a free loopback port, and its pid file and error log are in a temporary
// directory. It returns the proxy's URL; nginx is stopped at t's cleanup.
func startNginx(t *testing.T, bin, upstream string) string {
	t.Helper()
	conf, err := os.ReadFile("../../deploy/cluster/compose/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	listen := regexp.MustCompile(`(?m)^(\s*)listen 8080;`)
	servers := regexp.MustCompile(`(?m)^\s*server adtracker-\d:8080 [^\n]*\n`)
	if len(listen.FindAll(conf, -1)) != 1 || len(servers.FindAll(conf, -1)) != 2 {
		t.Fatalf("nginx.conf no longer has the one listen 8080 and the two adtracker-N servers this test rewrites")
	}
	conf = listen.ReplaceAll(conf, []byte("${1}listen 127.0.0.1:"+strconv.Itoa(port)+";"))
	n := 0
	conf = servers.ReplaceAllFunc(conf, func([]byte) []byte {
		n++
		if n > 1 {
			return nil
		}
		return []byte("        server " + upstream + " max_fails=3 fail_timeout=5s;\n")
	})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	cmd := exec.Command(bin, "-e", "stderr", "-p", dir, "-c", filepath.Join(dir, "nginx.conf"),
		"-g", "daemon off; pid "+filepath.Join(dir, "nginx.pid")+";")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // fast shutdown: the master stops its workers
		var err error
		select {
		case err = <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			err = <-exited
		}
		if err != nil {
			t.Logf("nginx stopped: %v", err) // SIGTERM's exit is 0; anything else shows in the log below when the test failed
		}
		if t.Failed() {
			t.Logf("nginx log:\n%s", log.String())
		}
	})
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return "http://" + addr
		}
		select {
		case err := <-exited:
			t.Fatalf("nginx exited: %v\n%s", err, log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not listen on %s\n%s", addr, log.String())
		}
	}
}

// Behind the shipped nginx (the cluster's load balancer config, one node), over its kept-alive upstream connections: events are
// stored once each, under the address nginx saw the client at, not the one the client forged in X-Forwarded-For; what nginx
// refuses itself (a body over client_max_body_size, no node answering) comes back in the API's JSON shape, the latter with
// Retry-After. The client connects from 127.0.0.2, so that nginx (127.0.0.1, http.trusted_proxies) and the client differ.
func TestE2EBehindNginx(t *testing.T) {
	bin := nginxBinary(t) // first: skips before the databases are touched when nginx is missing and not required
	s := newStack(t, "ADTRACKER_HTTP_TRUSTED_PROXIES=127.0.0.1")
	s.start()
	proxy := startNginx(t, bin, strings.TrimPrefix(s.url, "http://"))
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}}
	defer client.CloseIdleConnections()
	post := func(path, ctype, body string, headers ...string) (int, http.Header, string) {
		t.Helper()
		req, err := http.NewRequest("POST", proxy+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", ctype)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("POST %s through nginx: %v", path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Header, string(b)
	}

	const events = 40
	ids := make([]string, events)
	for i := range ids {
		ids[i] = vastUUID()
		code, h, body := post("/ads/impression", "application/json", fmt.Sprintf(`{"ad_id":2,"event_id":%q,"viewer_id":"nginx"}`, ids[i]),
			"X-Forwarded-For", "6.6.6.6")
		if code != 202 || !strings.Contains(body, ids[i]) || h.Get("X-Request-Id") == "" {
			t.Fatalf("event %d through nginx: %d %s %v", i, code, body, h)
		}
	}
	code, _, body := post("/events", "application/x-ndjson", `{"type":"start","ad_id":2,"viewer_id":"nginx"}`+"\n")
	if code != 202 || !strings.Contains(body, `"accepted":1`) {
		t.Fatalf("batch through nginx: %d %s", code, body)
	}

	// Refused by nginx itself: the API's 413.
	code, h, body := post("/events", "application/x-ndjson", strings.Repeat("x", 1<<20+1))
	if code != 413 || body != `{"error":"request body too large","field":"body"}` || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		t.Errorf("a body over client_max_body_size: %d %s %v", code, body, h)
	}

	s.vastFlushed(t, vastSeededAds[0])
	stored := map[string]int{}
	rs, err := s.conn().Query(context.Background(),
		"SELECT toString(event_id), IPv6NumToString(ip) FROM events WHERE viewer_id = 'nginx' AND type = 'impression'")
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var id, ip string
		if err := rs.Scan(&id, &ip); err != nil {
			t.Fatal(err)
		}
		stored[id]++
		if ip != "::ffff:127.0.0.2" {
			t.Errorf("event %s stored with address %s, want the client's 127.0.0.2 (not the forged 6.6.6.6, not nginx's)", id, ip)
		}
	}
	rs.Close()
	for _, id := range ids {
		if stored[id] != 1 {
			t.Errorf("event %s stored %d times, want once", id, stored[id])
		}
	}
	if len(stored) != events {
		t.Errorf("%d impressions stored through nginx, want %d", len(stored), events)
	}

	// No node answers: the 502 in the API's shape with Retry-After, not nginx's HTML page.
	s.kill()
	code, h, body = post("/ads/impression", "application/json", `{"ad_id":2}`)
	if code != 502 || body != `{"error":"no tracker node answered; retry with the same event_id"}` || h.Get("Retry-After") != "1" ||
		!strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		t.Errorf("with the node down: %d %s %v", code, body, h)
	}
}
