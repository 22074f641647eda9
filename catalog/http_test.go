package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/adtracker/adtracker/storage/postgres"
	"github.com/adtracker/adtracker/storage/postgres/pgtest"
	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const token = "s3cret-admin-token"

// api is an in-memory HTTP server running the /ads handlers.
type api struct {
	t      *testing.T
	client *fasthttp.Client
}

func newAPI(t *testing.T, repo Repo, adminToken string) *api {
	t.Helper()
	r := router.New()
	RegisterRoutes(r, &Handlers{Repo: repo, AdminToken: adminToken, Timeout: 3 * time.Second})
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: r.Handler}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(); _ = ln.Close() })
	return &api{t: t, client: &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}}
}

type response struct {
	status int
	header map[string]string
	body   string
}

// do sends a request; headers are "Name: value" strings. An admin request gets the token
// unless it sets Authorization itself.
func (a *api) do(method, path, body string, headers ...string) response {
	a.t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://adtracker" + path)
	if method != fasthttp.MethodGet {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	if body != "" {
		req.Header.SetContentType("application/json")
		req.SetBodyString(body)
	}
	if err := a.client.DoTimeout(req, resp, 10*time.Second); err != nil {
		a.t.Fatal(err)
	}
	out := response{status: resp.StatusCode(), header: map[string]string{}, body: string(resp.Body())}
	for _, k := range []string{"Content-Type", "ETag", "Link", "Location", "WWW-Authenticate", "Retry-After"} {
		if v := resp.Header.Peek(k); len(v) > 0 {
			out.header[k] = string(v)
		}
	}
	if ct := out.header["Content-Type"]; ct != "application/json; charset=utf-8" {
		a.t.Fatalf("%s %s: Content-Type %q", method, path, ct)
	}
	return out
}

// ad decodes a single-ad response, checking status and ETag.
func (a *api) ad(r response, wantStatus int) postgres.Ad {
	a.t.Helper()
	if r.status != wantStatus {
		a.t.Fatalf("status %d, want %d: %s", r.status, wantStatus, r.body)
	}
	var ad postgres.Ad
	if err := json.Unmarshal([]byte(r.body), &ad); err != nil {
		a.t.Fatal(err)
	}
	if r.header["ETag"] != fmt.Sprintf(`"%d"`, ad.Version) {
		a.t.Fatalf("ETag %q for version %d", r.header["ETag"], ad.Version)
	}
	return ad
}

// wantError checks an error response's status and JSON body.
func wantError(t *testing.T, r response, status int, field, msgPart string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	var e map[string]string
	if err := json.Unmarshal([]byte(r.body), &e); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	if e["field"] != field || !strings.Contains(e["error"], msgPart) || e["error"] == "" {
		t.Fatalf("error body %s, want field %q and a message containing %q", r.body, field, msgPart)
	}
	if _, has := e["field"]; !has && field != "" || has && field == "" {
		t.Fatalf("error body %s: field presence wrong", r.body)
	}
}

// memRepo is an in-memory Repo for handler tests that need no Postgres.
type memRepo struct {
	mu  sync.Mutex
	ads []postgres.Ad
	err error // returned by every call when set
}

func (m *memRepo) List(ctx context.Context, status string, after int64, limit int) ([]postgres.Ad, bool, error) {
	return nil, false, m.err
}

func (m *memRepo) Get(ctx context.Context, id int64) (postgres.Ad, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return postgres.Ad{}, m.err
	}
	for _, a := range m.ads {
		if a.ID == id {
			return a, nil
		}
	}
	return postgres.Ad{}, postgres.ErrNotFound
}

func (m *memRepo) Create(ctx context.Context, ad postgres.Ad) (postgres.Ad, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return postgres.Ad{}, m.err
	}
	ad.ID, ad.Version = int64(len(m.ads)+1), 1
	m.ads = append(m.ads, ad)
	return ad, nil
}

var errNotInMem = errors.New("memRepo: not implemented")

func (m *memRepo) Update(context.Context, postgres.Ad, int64) (postgres.Ad, error) {
	return postgres.Ad{}, errNotInMem
}
func (m *memRepo) Patch(context.Context, int64, postgres.AdPatch, int64) (postgres.Ad, error) {
	return postgres.Ad{}, errNotInMem
}
func (m *memRepo) Archive(context.Context, int64, int64) (postgres.Ad, error) {
	return postgres.Ad{}, errNotInMem
}

func TestAdminAuth(t *testing.T) {
	body := `{"name":"n","target_url":"https://example.com/"}`
	open := newAPI(t, &memRepo{}, token)
	f := func(r response, status int, msg string) {
		t.Helper()
		wantError(t, r, status, "", msg)
		if status == 401 && r.header["WWW-Authenticate"] == "" {
			t.Fatal("401 without WWW-Authenticate")
		}
	}
	for _, m := range []string{"POST /ads", "PUT /ads/1", "PATCH /ads/1", "DELETE /ads/1"} {
		method, path, _ := strings.Cut(m, " ")
		f(open.do(method, path, body, "Authorization: "), 401, "admin token")
		f(open.do(method, path, body, "Authorization: Bearer wrong"), 401, "admin token")
		f(open.do(method, path, body, "Authorization: Bearer "+token+"x"), 401, "admin token")
		f(open.do(method, path, body, "Authorization: Basic "+token), 401, "admin token")
		f(open.do(method, path, body, "Authorization: Bearer"), 401, "admin token")
	}
	if r := open.do("POST", "/ads", body, "Authorization: bearer "+token); r.status != 201 {
		t.Fatalf("lower-case scheme: %d %s", r.status, r.body)
	}
	if r := open.do("GET", "/ads/1", ""); r.status != 200 {
		t.Fatalf("GET needs no token: %d %s", r.status, r.body)
	}

	disabled := newAPI(t, &memRepo{}, "")
	for _, m := range []string{"POST /ads", "PUT /ads/1", "PATCH /ads/1", "DELETE /ads/1"} {
		method, path, _ := strings.Cut(m, " ")
		f(disabled.do(method, path, body), 403, "admin API disabled: set admin.token")
		// Not even an empty bearer token gets in when the API is disabled.
		f(disabled.do(method, path, body, "Authorization: Bearer "), 403, "admin API disabled")
	}
}

func TestValidation(t *testing.T) {
	a := newAPI(t, &memRepo{}, token)
	valid := map[string]any{"name": "n", "target_url": "https://example.com/"}
	// body returns the valid body with key set to v (or removed when v is "<absent>").
	body := func(key string, v any) string {
		m := map[string]any{}
		for k, x := range valid {
			m[k] = x
		}
		if v == "<absent>" {
			delete(m, key)
		} else {
			m[key] = v
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	bad := func(key string, v any) {
		t.Helper()
		wantError(t, a.do("POST", "/ads", body(key, v)), 422, key, key)
	}
	good := func(key string, v any) {
		t.Helper()
		if r := a.do("POST", "/ads", body(key, v)); r.status != 201 {
			t.Fatalf("%s = %v: %d %s", key, v, r.status, r.body)
		}
	}
	long := "https://example.com/" + strings.Repeat("a", 2048-len("https://example.com/"))
	bad("name", "<absent>")
	bad("name", "")
	bad("name", nil)
	bad("name", 5)
	bad("name", strings.Repeat("x", 201))
	bad("name", "two\nlines")
	bad("name", "nul\x00")
	good("name", strings.Repeat("é", 200)) // characters, not bytes
	for _, k := range []string{"image_url", "video_url", "target_url"} {
		bad(k, "ftp://example.com/x")
		bad(k, "/relative/path")
		bad(k, "example.com")
		bad(k, "https://")
		bad(k, "HTTPS://example.com/") // the table's CHECK is case-sensitive
		bad(k, "https://example.com/a b")
		bad(k, long+"a")
		bad(k, nil)
		bad(k, 7)
		good(k, long)
		good(k, "http://127.0.0.1:8080/x?y=z#f")
	}
	good("image_url", "")
	good("video_url", "")
	bad("target_url", "")
	bad("target_url", "<absent>")
	bad("duration_seconds", 0)
	bad("duration_seconds", 3601)
	bad("duration_seconds", -5)
	bad("duration_seconds", 1.5)
	bad("duration_seconds", "30")
	bad("duration_seconds", nil)
	good("duration_seconds", 1)
	good("duration_seconds", 3600)
	bad("status", "deleted")
	bad("status", "ACTIVE")
	bad("status", "")
	bad("status", nil)
	good("status", "paused")
	good("status", "archived")
	bad("id", 5)
	good("created_at", "2020-01-01T00:00:00Z") // read-only, ignored

	// Defaults filled for what the body leaves out.
	r := a.do("POST", "/ads", `{"name":"d","target_url":"https://example.com/"}`)
	if ad := a.ad(r, 201); ad.DurationSeconds != 30 || ad.Status != "active" || ad.ImageURL != "" {
		t.Fatalf("defaults: %+v", ad)
	} else if r.header["Location"] != fmt.Sprintf("/ads/%d", ad.ID) {
		t.Fatalf("Location %q", r.header["Location"])
	}

	// Not a JSON object of known fields: 400.
	f400 := func(b, field, msg string) {
		t.Helper()
		wantError(t, a.do("POST", "/ads", b), 400, field, msg)
	}
	f400(`{"name":"n","target_url":"https://example.com/","colour":"red"}`, "colour", `unknown field "colour"`)
	f400(`{"name":"n",`, "", "not valid JSON")
	f400(`not json`, "", "not valid JSON")
	f400(`[]`, "", "JSON object")
	f400(`"x"`, "", "JSON object")
	f400(`{"name":"n","target_url":"https://example.com/"} {}`, "", "exactly one JSON object")
	// A field given twice is refused (encoding/json would keep the last silently), however its name is cased.
	f400(`{"name":"a","target_url":"https://example.com/","name":"b"}`, "name", `field "name" appears more than once`)
	f400(`{"name":"a","NAME":"b","target_url":"https://example.com/"}`, "NAME", "appears more than once")
	f400("\xef\xbb\xbf\xef\xbb\xbf{\"name\":\"n\"}", "", "not valid JSON") // one byte order mark is skipped, not two
	// A body that starts with a UTF-8 byte order mark is the JSON after it.
	if ad := a.ad(a.do("POST", "/ads", "\xef\xbb\xbf{\"name\":\"bom\",\"target_url\":\"https://example.com/\"}"), 201); ad.Name != "bom" {
		t.Fatalf("created after a byte order mark: %+v", ad)
	}
	wantError(t, a.do("POST", "/ads", ""), 400, "", "empty body")
	// Text that is not Unicode is refused, not stored with U+FFFD in its place as encoding/json would: bytes that are not UTF-8
	// anywhere in the body (400, the offset counted from the body's first byte), and a \u escape that is half a surrogate pair
	// in a string field (422, naming the field). A whole pair, escaped or not, is a character.
	f400("{\"name\":\"bad \xff\xfe\",\"target_url\":\"https://example.com/\"}", "body", "not valid UTF-8: byte 0xff at offset 13")
	f400("\xef\xbb\xbf{\"name\":\"n\xc3\",\"target_url\":\"https://example.com/\"}", "body", "byte 0xc3 at offset 13")
	wantError(t, a.do("POST", "/ads", `{"name":"lone \ud800 high","target_url":"https://example.com/"}`), 422, "name", `\ud800 is half of a surrogate pair`)
	wantError(t, a.do("POST", "/ads", `{"name":"n","target_url":"https://example.com/\uDC00"}`), 422, "target_url", `\uDC00 is half`)
	wantError(t, a.do("POST", "/ads", `{"name":"two highs \ud83d\ud83d","target_url":"https://example.com/"}`), 422, "name", `\ud83d is half`)
	wantError(t, a.do("PATCH", "/ads/1", `{"video_mime_type":"video/\ud800mp4"}`), 422, "video_mime_type", "surrogate")
	for _, name := range []string{`pair \ud83d\ude00 escaped`, "pair \U0001F600 literal", `escaped backslash \\ud800 is text`} {
		if ad := a.ad(a.do("POST", "/ads", `{"name":"`+name+`","target_url":"https://example.com/"}`), 201); strings.ContainsRune(ad.Name, utf8.RuneError) {
			t.Fatalf("%s stored as %q", name, ad.Name)
		}
	}

	// List parameters.
	wantError(t, a.do("GET", "/ads?status=deleted", ""), 422, "status", "status")
	wantError(t, a.do("GET", "/ads?limit=0", ""), 422, "limit", "limit")
	wantError(t, a.do("GET", "/ads?limit=ten", ""), 422, "limit", "limit")
	wantError(t, a.do("GET", "/ads?after=-1", ""), 422, "after", "after")
	wantError(t, a.do("GET", "/ads?after=x", ""), 422, "after", "after")
	// A name the list does not take is refused, not ignored (before, offset= was answered with the first page), and so is one
	// given twice; "_" (a cache buster) passes.
	wantError(t, a.do("GET", "/ads?offset=5", ""), 400, "offset", `unknown parameter "offset": this route takes status, limit, after`)
	wantError(t, a.do("GET", "/ads?stauts=archived", ""), 400, "stauts", "unknown parameter")
	wantError(t, a.do("GET", "/ads?limit=2&limit=3", ""), 400, "limit", "appears more than once")
	wantError(t, a.do("GET", "/ads?%25s=1", ""), 400, "%s", `unknown parameter "%s"`)
	if r := a.do("GET", "/ads?status=all&_=1712345678901", ""); r.status != 200 {
		t.Fatalf("list with a cache buster: %d %s", r.status, r.body)
	}

	// Ids and preconditions.
	wantError(t, a.do("GET", "/ads/abc", ""), 404, "", "ad not found")
	wantError(t, a.do("GET", "/ads/0", ""), 404, "", "ad not found")
	wantError(t, a.do("GET", "/ads/99999999999999999999", ""), 404, "", "ad not found")
	wantError(t, a.do("PUT", "/ads/1", body("id", 2)), 422, "id", "does not match")
	wantError(t, a.do("PUT", "/ads/1", body("version", "x")), 422, "version", "version")
	wantError(t, a.do("PUT", "/ads/1", body("version", 0)), 422, "version", "version")
	wantError(t, a.do("PUT", "/ads/1", body("name", ""), `If-Match: "1"`), 422, "name", "name")
	wantError(t, a.do("PATCH", "/ads/1", `{"duration_seconds":0}`), 422, "duration_seconds", "duration")
	wantError(t, a.do("PATCH", "/ads/1", `{"image_url":null}`), 422, "image_url", "null")
	wantError(t, a.do("PATCH", "/ads/1", `{"bogus":1}`), 400, "bogus", "unknown field")
	wantError(t, a.do("DELETE", "/ads/1", "", "If-Match: soon"), 400, "", "If-Match")
}

func TestUnavailableIs503(t *testing.T) {
	a := newAPI(t, &memRepo{err: fmt.Errorf("get ad: %w", context.DeadlineExceeded)}, token)
	for _, r := range []response{a.do("GET", "/ads/1", ""), a.do("GET", "/ads", ""), a.do("POST", "/ads", `{"name":"n","target_url":"https://e.com"}`)} {
		if r.status != 503 || strings.TrimSpace(r.body) != `{"error":"catalogue database unavailable"}` || r.header["Retry-After"] == "" {
			t.Fatalf("got %d %q %v", r.status, r.body, r.header)
		}
	}
	other := newAPI(t, &memRepo{err: errors.New("boom")}, token)
	wantError(t, other.do("GET", "/ads/1", ""), 500, "", "internal error")
}

// openPG returns a migrated private schema, or skips without ADTRACKER_TEST_PG_DSN.
func openPG(t *testing.T, dsn string) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if _, err := db.MigrateEmbedded(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db
}

func TestCRUDRoundTrip(t *testing.T) {
	t.Parallel()
	db := openPG(t, pgtest.DSN(t))
	a := newAPI(t, db, token)

	created := a.ad(a.do("POST", "/ads", `{"name":"Launch","image_url":"https://cdn.example.com/i.jpg",
		"target_url":"https://example.com/buy","duration_seconds":15}`), 201)
	if created.Version != 1 || created.Status != "active" || created.VideoURL != "" || created.DurationSeconds != 15 {
		t.Fatalf("created %+v", created)
	}
	path := fmt.Sprintf("/ads/%d", created.ID)
	if got := a.ad(a.do("GET", path, ""), 200); got != created {
		t.Fatalf("GET %+v, want %+v", got, created)
	}

	put := a.ad(a.do("PUT", path, `{"name":"Launch v2","target_url":"https://example.com/buy2","status":"paused"}`, `If-Match: "1"`), 200)
	// PUT replaces: fields left out take their defaults.
	if put.Version != 2 || put.Name != "Launch v2" || put.ImageURL != "" || put.DurationSeconds != 30 || put.Status != "paused" ||
		!put.CreatedAt.Equal(created.CreatedAt) {
		t.Fatalf("PUT %+v", put)
	}
	wantError(t, a.do("PUT", path, `{"name":"late","target_url":"https://example.com/"}`, `If-Match: "1"`), 409, "", "changed by someone else")

	patched := a.ad(a.do("PATCH", path, `{"video_url":"https://cdn.example.com/v.mp4"}`, `If-Match: W/"2"`), 200)
	if patched.Version != 3 || patched.Name != "Launch v2" || patched.VideoURL != "https://cdn.example.com/v.mp4" {
		t.Fatalf("PATCH %+v", patched)
	}
	// The body's version is a precondition too, so GET → edit → PUT detects lost updates.
	wantError(t, a.do("PATCH", path, `{"name":"x","version":2}`), 409, "", "since version 2")

	// A GET response sent back unchanged (read-only fields and all) is a valid PUT.
	got := a.do("GET", path, "")
	again := a.ad(a.do("PUT", path, got.body), 200)
	if again.Version != 4 || again.Name != patched.Name || again.VideoURL != patched.VideoURL {
		t.Fatalf("round-trip PUT %+v", again)
	}

	wantError(t, a.do("DELETE", path, "", `If-Match: "3"`), 409, "", "changed")
	archived := a.ad(a.do("DELETE", path, "", `If-Match: "4"`), 200)
	if archived.Status != "archived" || archived.Version != 5 {
		t.Fatalf("DELETE %+v", archived)
	}
	if got := a.ad(a.do("DELETE", path, ""), 200); got != archived {
		t.Fatalf("second DELETE %+v", got)
	}
	if got := a.ad(a.do("GET", path, ""), 200); got.Status != "archived" {
		t.Fatalf("archived ad is gone: %+v", got)
	}
	listIDs := func(q string) []int64 {
		var ads []postgres.Ad
		r := a.do("GET", "/ads"+q, "")
		if r.status != 200 || json.Unmarshal([]byte(r.body), &ads) != nil {
			t.Fatalf("GET /ads%s: %d %s", q, r.status, r.body)
		}
		var ids []int64
		for _, ad := range ads {
			ids = append(ids, ad.ID)
		}
		return ids
	}
	if ids := listIDs(""); len(ids) != 0 {
		t.Fatalf("active list holds %v", ids)
	}
	if ids := listIDs("?status=archived"); len(ids) != 1 || ids[0] != created.ID {
		t.Fatalf("archived list %v", ids)
	}
	if r := a.do("GET", "/ads", ""); strings.TrimSpace(r.body) != "[]" {
		t.Fatalf("empty list is %q, want []", r.body)
	}

	wantError(t, a.do("GET", "/ads/424242", ""), 404, "", "ad not found")
	wantError(t, a.do("PUT", "/ads/424242", `{"name":"n","target_url":"https://example.com/"}`), 404, "", "ad not found")
	wantError(t, a.do("PATCH", "/ads/424242", `{"name":"n"}`), 404, "", "ad not found")
	wantError(t, a.do("DELETE", "/ads/424242", ""), 404, "", "ad not found")
}

func TestPagingFollowsLink(t *testing.T) {
	t.Parallel()
	db := openPG(t, pgtest.DSN(t))
	a := newAPI(t, db, token)
	var want []int64
	for i := range 25 {
		status := "active"
		if i%5 == 4 {
			status = "paused"
		}
		ad := a.ad(a.do("POST", "/ads", fmt.Sprintf(`{"name":"ad %d","target_url":"https://example.com/%d","status":%q}`, i, i, status)), 201)
		if status == "active" {
			want = append(want, ad.ID)
		}
	}
	var got []int64
	next, pages := "/ads?limit=7", 0
	for next != "" {
		if pages++; pages > 10 {
			t.Fatal("paging does not end")
		}
		r := a.do("GET", next, "")
		var ads []postgres.Ad
		if r.status != 200 || json.Unmarshal([]byte(r.body), &ads) != nil {
			t.Fatalf("GET %s: %d %s", next, r.status, r.body)
		}
		for _, ad := range ads {
			if ad.Status != "active" {
				t.Fatalf("default list holds %+v", ad)
			}
			got = append(got, ad.ID)
		}
		next = ""
		if link := r.header["Link"]; link != "" {
			target, rel, ok := strings.Cut(link, ">; ")
			if !ok || rel != `rel="next"` || !strings.HasPrefix(target, "</ads?") {
				t.Fatalf("Link %q", link)
			}
			next = strings.TrimPrefix(target, "<")
			if want := fmt.Sprintf("after=%d", ads[len(ads)-1].ID); !strings.Contains(next, want) ||
				!strings.Contains(next, "limit=7") || !strings.Contains(next, "status=active") {
				t.Fatalf("Link %q, want %s, limit=7, status=active", link, want)
			}
		}
	}
	if pages != 3 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%d pages gave %v, want 3 pages of %v", pages, got, want)
	}
	// status=all and a clamped limit.
	r := a.do("GET", "/ads?status=all&limit=5000", "")
	var all []postgres.Ad
	if err := json.Unmarshal([]byte(r.body), &all); err != nil || len(all) != 25 || r.header["Link"] != "" {
		t.Fatalf("status=all: %d ads, Link %q, %v", len(all), r.header["Link"], err)
	}
}

// timeField matches the time fields of an ad in a response body.
var timeField = regexp.MustCompile(`"(created_at|updated_at)":"([^"]*)"`)

// normalise replaces what differs between runs (times, after checking they are RFC 3339 UTC)
// and indents, keeping the field order the API writes, so responses compare with golden files.
func normalise(t *testing.T, body string) []byte {
	t.Helper()
	out := timeField.ReplaceAllStringFunc(body, func(m string) string {
		sub := timeField.FindStringSubmatch(m)
		ts, err := time.Parse(time.RFC3339Nano, sub[2])
		if err != nil || ts.Location() != time.UTC || !strings.HasSuffix(sub[2], "Z") {
			t.Fatalf("%s %q is not an RFC 3339 UTC time", sub[1], sub[2])
		}
		return `"` + sub[1] + `":"<` + sub[1] + `>"`
	})
	var buf bytes.Buffer
	if err := json.Indent(&buf, []byte(out), "", "  "); err != nil {
		t.Fatalf("response %q: %v", body, err)
	}
	return buf.Bytes()
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if string(got) != string(want) {
		t.Fatalf("%s differs:\n--- got\n%s--- want\n%s", path, got, want)
	}
}

func TestGoldenResponses(t *testing.T) {
	t.Parallel()
	db := openPG(t, pgtest.DSN(t))
	a := newAPI(t, db, token)
	a.ad(a.do("POST", "/ads", `{"name":"Golden ad","image_url":"https://cdn.example.com/g.jpg","video_url":"https://cdn.example.com/g.mp4",
		"target_url":"https://example.com/golden?utm_source=adtracker","duration_seconds":20}`), 201)
	a.ad(a.do("POST", "/ads", `{"name":"Second","target_url":"http://example.org/","status":"paused"}`), 201)
	a.ad(a.do("POST", "/ads", `{"name":"Third","target_url":"https://example.net/"}`), 201)
	a.ad(a.do("PATCH", "/ads/1", `{"name":"Golden ad (edited)"}`), 200)

	golden(t, "ad_get.golden.json", normalise(t, a.do("GET", "/ads/1", "").body))
	list := a.do("GET", "/ads?status=all&limit=2", "")
	if list.header["Link"] != `</ads?after=2&limit=2&status=all>; rel="next"` {
		t.Fatalf("Link %q", list.header["Link"])
	}
	golden(t, "ads_list.golden.json", normalise(t, list.body))
	golden(t, "error_validation.golden.json", normalise(t, a.do("POST", "/ads", `{"name":"x","target_url":"ftp://x"}`).body))
}
