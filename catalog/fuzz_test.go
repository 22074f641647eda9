package catalog

import (
	"bytes"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseAdInput checks the /ads body decoder and validator never panic and that whatever
// they accept satisfies the table's constraints (so a 500 from a CHECK violation cannot happen).
// Seeds: the f.Add calls below and testdata/fuzz/FuzzParseAdInput.
func FuzzParseAdInput(f *testing.F) {
	f.Add([]byte(`{"name":"n","target_url":"https://example.com/"}`))
	f.Add([]byte(`{"name":"n","image_url":"","video_url":"http://v.example/x.mp4","target_url":"https://e.com/?a=b","duration_seconds":3600,"status":"paused"}`))
	f.Add([]byte(`{"id":1,"version":2,"created_at":"2020-01-01T00:00:00Z","name":"x","target_url":"http://a"}`))
	f.Add([]byte(`{"name":null}`))
	f.Add([]byte(`[]`))
	f.Add([]byte("\xef\xbb\xbf{\"name\":\"n\",\"NAME\":\"m\"}"))
	f.Add([]byte(`{"name":"a\ud800","target_url":"https://e.com/\udc00"}`))
	f.Add([]byte("{\"name\":\"\xff\",\"target_url\":\"https://e.com/\"}"))
	f.Fuzz(func(t *testing.T, body []byte) {
		in, perr := parseAdInput(body)
		if perr != nil {
			if perr.Error == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if ad, err := in.full(); err == nil {
			checkAccepted(t, ad.Name, ad.ImageURL, ad.VideoURL, ad.TargetURL, ad.DurationSeconds, ad.Status)
			// Nothing was replaced on the way in: U+FFFD is stored only when the body wrote it.
			wrote := bytes.Contains(body, []byte("\uFFFD")) || bytes.Contains(bytes.ToLower(body), []byte(`\ufffd`))
			for _, s := range []string{ad.Name, ad.ImageURL, ad.VideoURL, ad.TargetURL, ad.Status, ad.VideoMimeType} {
				if strings.ContainsRune(s, utf8.RuneError) && !wrote {
					t.Fatalf("accepted %q from a body without U+FFFD", s)
				}
			}
		} else if err.Field == "" || err.Error == "" {
			t.Fatalf("validation error without field or message: %+v", err)
		}
		if p, err := in.partial(); err == nil {
			get := func(s *string) string {
				if s == nil {
					return "https://unset.example/"
				}
				return *s
			}
			name, status, dur := "unset", "active", 30
			if p.Name != nil {
				name = *p.Name
			}
			if p.Status != nil {
				status = *p.Status
			}
			if p.DurationSeconds != nil {
				dur = *p.DurationSeconds
			}
			checkAccepted(t, name, get(p.ImageURL), get(p.VideoURL), get(p.TargetURL), dur, status)
		}
	})
}

func checkAccepted(t *testing.T, name, image, video, target string, dur int, status string) {
	t.Helper()
	if n := utf8.RuneCountInString(name); n < 1 || n > 200 || strings.ContainsRune(name, 0) {
		t.Fatalf("accepted name %q", name)
	}
	for i, u := range []string{image, video, target} {
		if u == "" && i < 2 {
			continue
		}
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") || utf8.RuneCountInString(u) > 2048 {
			t.Fatalf("accepted URL %q", u)
		}
		if p, err := url.Parse(u); err != nil || p.Host == "" || strings.ContainsAny(u, " \r\n\t") {
			t.Fatalf("accepted URL %q", u)
		}
	}
	if dur < 1 || dur > 3600 {
		t.Fatalf("accepted duration %d", dur)
	}
	if !validStatus(status) {
		t.Fatalf("accepted status %q", status)
	}
}
