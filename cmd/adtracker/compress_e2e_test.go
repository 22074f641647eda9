package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"regexp"
	"testing"
)

// serveIDs are the serve ids (UUIDs) in a VAST tag.
var serveIDs = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// http.compress against the real server: the VAST tag, the catalogue list and the analytics (a timeseries: a fresh stack's
// /ads/analytics and breakdowns are under httpx.MinCompressBytes, a timeseries is zero-filled) go out gzipped to a client that
// asks (Go's transport is told not to ask on its own, so it hands back the raw bytes), and decompress to what an uncompressed
// request gets; an ad with a strong ETag, a pixel and /healthz do not.
func TestE2ECompressedAnswers(t *testing.T) {
	s := newStack(t)
	s.start()
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	get := func(path, acceptEncoding string) (int, http.Header, []byte) {
		t.Helper()
		req, err := http.NewRequest("GET", s.url+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if acceptEncoding != "" {
			req.Header.Set("Accept-Encoding", acceptEncoding)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Header, body
	}
	for _, path := range []string{"/vast/1", "/ads", "/ads/1/timeseries?interval=hour"} {
		status, header, body := get(path, "gzip, deflate, br, zstd")
		if status != 200 || header.Get("Content-Encoding") != "gzip" {
			t.Errorf("%s: %d, Content-Encoding %q; want 200 gzip", path, status, header.Get("Content-Encoding"))
			continue
		}
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		plain, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		_, _, want := get(path, "")
		if path == "/vast/1" { // every serve has its own serve id: compare the tags without them
			plain, want = serveIDs.ReplaceAll(plain, []byte("SV")), serveIDs.ReplaceAll(want, []byte("SV"))
		}
		if !bytes.Equal(plain, want) {
			t.Errorf("%s: gzipped answer decompresses to %d bytes that differ from the %d of an uncompressed one", path, len(plain), len(want))
		}
		t.Logf("%s: %d bytes, %d gzipped", path, len(want), len(body))
	}
	for _, path := range []string{"/ads/1", "/t/impression?ad_id=1", "/healthz"} {
		if _, header, _ := get(path, "gzip"); header.Get("Content-Encoding") != "" {
			t.Errorf("%s: Content-Encoding %q, want none", path, header.Get("Content-Encoding"))
		}
	}
}
