package httpx

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/adtracker/adtracker/internal/testenv"
)

func TestAcceptsGzip(t *testing.T) {
	for _, c := range []struct {
		lines []string
		want  bool
	}{
		{nil, false},
		{[]string{""}, false},
		{[]string{"gzip"}, true},
		{[]string{"gzip, deflate, br, zstd"}, true}, // Chromium
		{[]string{"br, gzip, deflate"}, true},       // curl --compressed, Node's fetch over https
		{[]string{"deflate,gzip"}, true},
		{[]string{"GZIP"}, true},
		{[]string{"x-gzip"}, true},
		{[]string{"gzip;q=0.5"}, true},
		{[]string{"gzip; q=1.000"}, true},
		{[]string{"gzip;Q=0.001"}, true},
		{[]string{"gzip;q=0"}, false},
		{[]string{"gzip;q=0.000"}, false},
		{[]string{"gzip;q=0."}, false},
		{[]string{"gzip;q=1.5"}, false},
		{[]string{"gzip;q=2"}, false},
		{[]string{"gzip;q=abc"}, false},
		{[]string{"gzip;q="}, false},
		{[]string{"identity"}, false},
		{[]string{"deflate, br"}, false},
		{[]string{"gzipx"}, false},
		{[]string{"*"}, true},
		{[]string{"*;q=0"}, false},
		{[]string{"*, gzip;q=0"}, false},
		{[]string{"gzip;q=0, *"}, false},
		{[]string{"gzip, gzip;q=0"}, false},
		{[]string{"deflate", "gzip"}, true}, // two lines are one list
		{[]string{"gzip", "gzip;q=0"}, false},
	} {
		var lines [][]byte
		for _, l := range c.lines {
			lines = append(lines, []byte(l))
		}
		if got := AcceptsGzip(lines); got != c.want {
			t.Errorf("Accept-Encoding %q: %v, want %v", c.lines, got, c.want)
		}
	}
}

func TestCompress(t *testing.T) {
	long := strings.Repeat(`{"t":"2026-12-08T00:00:00Z","impressions":0},`, 40)
	h := Compress(func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType(string(ctx.QueryArgs().Peek("type")))
		n, _ := ctx.QueryArgs().GetUint("repeat")
		ctx.SetBodyString(strings.Repeat(long, n))
		if enc := ctx.QueryArgs().Peek("enc"); len(enc) > 0 {
			ctx.Response.Header.Set("Content-Encoding", string(enc))
		}
	})
	for _, c := range []struct {
		contentType, extra  string
		repeat              int
		acceptEncoding, why string
		gzipped             bool
	}{
		{"application/json;+charset=utf-8", "", 1, "gzip, deflate", "", true},
		{"application/xml", "", 1, "gzip", "", true},
		{"text/html", "", 1, "gzip", "", true},
		{"application/javascript", "", 11, "deflate, gzip", "a large one", true},
		{"application/json", "", 1, "", "no Accept-Encoding", false},
		{"application/json", "", 1, "gzip;q=0", "gzip refused", false},
		{"application/json", "", 0, "gzip", "empty: under MinCompressBytes", false},
		{"image/gif", "", 1, "gzip", "not text", false},
		{"application/octet-stream", "", 1, "gzip", "not text", false},
		{"application/json", "&enc=identity", 1, "gzip", "encoded already", false},
	} {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI(fmt.Sprintf("/?type=%s&repeat=%d%s", c.contentType, c.repeat, c.extra))
		if c.acceptEncoding != "" {
			ctx.Request.Header.Set("Accept-Encoding", c.acceptEncoding)
		}
		h(&ctx)
		r := &ctx.Response
		name := fmt.Sprintf("%s ×%d, Accept-Encoding %q", c.contentType, c.repeat, c.acceptEncoding)
		if !bytes.Contains(bytes.Join(r.Header.PeekAll("Vary"), []byte(",")), []byte("Accept-Encoding")) {
			t.Errorf("%s: no Vary: Accept-Encoding", name)
		}
		gz := string(r.Header.ContentEncoding()) == "gzip"
		if gz != c.gzipped {
			t.Errorf("%s (%s): gzipped %v, want %v", name, c.why, gz, c.gzipped)
			continue
		}
		if !gz {
			continue
		}
		zr, err := gzip.NewReader(bytes.NewReader(r.Body()))
		if err != nil {
			t.Fatal(err)
		}
		plain, err := io.ReadAll(zr)
		if want := strings.Repeat(long, c.repeat); err != nil || string(plain) != want || len(r.Body())*4 > len(plain) {
			t.Errorf("%s: %d gzipped bytes decompress to %d (%v), want the %d written", name, len(r.Body()), len(plain), err, len(want))
		}
	}
}

// Compressing allocates nothing once its pools are warm.
func TestCompressAllocs(t *testing.T) {
	if testenv.RaceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	body := strings.Repeat("<Tracking event=\"start\"><![CDATA[https://t.example/t/start?sv=x]]></Tracking>", 60)
	h := Compress(func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/xml")
		ctx.SetBodyString(body)
	})
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.Set("Accept-Encoding", "gzip")
	h(&ctx)
	if n := testing.AllocsPerRun(100, func() { ctx.Response.Reset(); h(&ctx) }); n != 0 {
		t.Errorf("%v allocations per answer", n)
	}
}

func FuzzAcceptsGzip(f *testing.F) {
	for _, s := range []string{"gzip", "gzip;q=0", "*, gzip;q=0.5", "br;q=1, GZIP ; q=0.001", ",,;=;q"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := AcceptsGzip([][]byte{[]byte(s)})
		// The same list split over two lines is the same list.
		if i := strings.IndexByte(s, ','); i >= 0 {
			if two := AcceptsGzip([][]byte{[]byte(s[:i]), []byte(s[i+1:])}); two != got {
				t.Fatalf("%q: %v as one line, %v as two", s, got, two)
			}
		}
		if got && !strings.Contains(strings.ToLower(s), "gzip") && !strings.Contains(s, "*") {
			t.Fatalf("%q accepts gzip without naming it or *", s)
		}
	})
}
