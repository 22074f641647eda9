package catalog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/adtracker/adtracker/internal/httpx"
	"github.com/adtracker/adtracker/storage/postgres"
	"github.com/fasthttp/router"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
)

// List paging limits of GET /ads.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// Field limits; they mirror the CHECK constraints of migrations/postgres/0001_ads.sql so the
// API answers 422 naming the field instead of the database answering a constraint error.
const (
	maxNameLen  = 200
	maxURLLen   = 2048
	minDuration = 1
	maxDuration = 3600
	// defaultDuration is the ads.duration_seconds column default.
	defaultDuration = 30
	// MediaFile and weight limits and defaults, as in migrations/postgres/0003_ads_vast.sql.
	maxMimeLen      = 100
	maxVideoSide    = 10000
	maxBitrateKbps  = 1000000
	maxWeight       = 1000000
	defaultMimeType = "video/mp4"
	defaultWidth    = 1280
	defaultHeight   = 720
	defaultDelivery = "progressive"
	defaultWeight   = 1
	deliveryStream  = "streaming"
)

// Repo is what the /ads handlers need from the ads table; *postgres.DB implements it.
type Repo interface {
	List(ctx context.Context, status string, after int64, limit int) ([]postgres.Ad, bool, error)
	Get(ctx context.Context, id int64) (postgres.Ad, error)
	Create(ctx context.Context, ad postgres.Ad) (postgres.Ad, error)
	Update(ctx context.Context, ad postgres.Ad, expectedVersion int64) (postgres.Ad, error)
	Patch(ctx context.Context, id int64, p postgres.AdPatch, expectedVersion int64) (postgres.Ad, error)
	Archive(ctx context.Context, id int64, expectedVersion int64) (postgres.Ad, error)
}

// Handlers serve the /ads API.
//
// Writes (POST, PUT, PATCH, DELETE) need "Authorization: Bearer <AdminToken>"; with an empty
// AdminToken they answer 403 so a forgotten setting closes the API instead of opening it.
//
// Bodies are the Ad JSON shape. The read-only fields id, version, created_at and updated_at
// are accepted so a GET response can be edited and sent back: created_at and updated_at are
// ignored, id must match the URL (and be absent on POST), and version acts like If-Match when
// that header is absent. A JSON null is rejected for every field (use "" to clear a URL).
// image_url and video_url may be empty, as the table allows; target_url may not.
//
// Responses carrying one ad have ETag: "<version>"; PUT, PATCH and DELETE with If-Match (or a
// body version) of another version answer 409.
type Handlers struct {
	Repo       Repo
	AdminToken string
	Logger     *zap.Logger
	// Timeout bounds each request's database work (default 5 s); running out answers 503.
	Timeout time.Duration
}

// RegisterRoutes adds the /ads routes to r.
func RegisterRoutes(r *router.Router, h *Handlers) {
	r.GET("/ads", h.list)
	r.GET("/ads/{id}", h.get)
	r.POST("/ads", h.admin(h.create))
	r.PUT("/ads/{id}", h.admin(h.update))
	r.PATCH("/ads/{id}", h.admin(h.patch))
	r.DELETE("/ads/{id}", h.admin(h.archive))
}

// apiError is a refused request, answered by httpx.WriteError as {"error": Error, "field": Field}.
type apiError struct {
	Error string
	Field string
}

// writeAPIError answers e through the service's one error writer, ending the body with a newline as every catalogue answer.
func writeAPIError(ctx *fasthttp.RequestCtx, status int, e *apiError) {
	httpx.WriteError(ctx, status, e.Error, e.Field)
	ctx.Response.AppendBodyString("\n")
}

// errUnavailable is the 503 body; ops dashboards and clients match on it.
const errUnavailable = "catalogue database unavailable"

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own types reach here; failing to marshal them is a programming error.
		writeAPIError(ctx, fasthttp.StatusInternalServerError, &apiError{Error: "internal error"})
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType(httpx.ContentJSON)
	ctx.SetBody(append(b, '\n'))
}

func writeError(ctx *fasthttp.RequestCtx, status int, field, format string, args ...any) {
	writeAPIError(ctx, status, &apiError{Error: fmt.Sprintf(format, args...), Field: field})
}

func writeAd(ctx *fasthttp.RequestCtx, status int, ad postgres.Ad) {
	ctx.Response.Header.Set("ETag", etag(ad.Version))
	writeJSON(ctx, status, ad)
}

func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

func (h *Handlers) log() *zap.Logger {
	if h.Logger == nil {
		return zap.NewNop()
	}
	return h.Logger
}

func (h *Handlers) ctx() (context.Context, context.CancelFunc) {
	d := h.Timeout
	if d <= 0 {
		d = 5 * time.Second
	}
	// Not the RequestCtx: its Done follows server shutdown, not this request.
	return context.WithTimeout(context.Background(), d)
}

// repoError answers for an error from Repo.
func (h *Handlers) repoError(ctx *fasthttp.RequestCtx, err error, expected int64) {
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, postgres.ErrNotFound):
		writeError(ctx, fasthttp.StatusNotFound, "", "ad not found")
	case errors.Is(err, postgres.ErrConflict) && expected > 0:
		writeError(ctx, fasthttp.StatusConflict, "",
			"ad was changed by someone else since version %d: fetch it again and retry", expected)
	case errors.Is(err, postgres.ErrConflict):
		writeError(ctx, fasthttp.StatusConflict, "", "ad was changed by someone else at the same time: fetch it again and retry")
	case postgres.IsUnavailable(err):
		ctx.Response.Header.Set("Retry-After", "5")
		writeError(ctx, fasthttp.StatusServiceUnavailable, "", errUnavailable)
		h.log().Warn("ads API: postgres unavailable", zap.Error(err))
	case errors.As(err, &pgErr) && pgErr.Code == "23514":
		// A CHECK the validation above should have caught; still the client's input.
		field := strings.TrimSuffix(strings.TrimPrefix(pgErr.ConstraintName, "ads_"), "_check")
		writeError(ctx, fasthttp.StatusUnprocessableEntity, field, "rejected by the database: %s", pgErr.Message)
	default:
		writeError(ctx, fasthttp.StatusInternalServerError, "", "internal error")
		h.log().Error("ads API", zap.ByteString("method", ctx.Method()), zap.ByteString("path", ctx.Path()), zap.Error(err))
	}
}

// admin guards a write route with the bearer token.
func (h *Handlers) admin(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if h.AdminToken == "" {
			writeError(ctx, fasthttp.StatusForbidden, "", "admin API disabled: set admin.token")
			return
		}
		if !h.authorized(ctx.Request.Header.Peek("Authorization")) {
			ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="adtracker"`)
			writeError(ctx, fasthttp.StatusUnauthorized, "", "missing or wrong admin token (Authorization: Bearer <admin.token>)")
			return
		}
		next(ctx)
	}
}

func (h *Handlers) authorized(header []byte) bool {
	scheme, token, ok := bytes.Cut(bytes.TrimSpace(header), []byte(" "))
	if !ok || !bytes.EqualFold(scheme, []byte("Bearer")) {
		return false
	}
	// Comparing digests keeps the time independent of the token's length too, which
	// ConstantTimeCompare alone would leak.
	got := sha256.Sum256(bytes.TrimSpace(token))
	want := sha256.Sum256([]byte(h.AdminToken))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

func pathID(ctx *fasthttp.RequestCtx) (int64, bool) {
	s, _ := ctx.UserValue("id").(string)
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		// No ad can have such an id, so it is simply not found.
		writeError(ctx, fasthttp.StatusNotFound, "", "ad not found")
		return 0, false
	}
	return id, true
}

// ifMatch parses If-Match: 0 and ok when absent or "*", the version otherwise.
func ifMatch(ctx *fasthttp.RequestCtx) (version int64, present, ok bool) {
	v := strings.TrimSpace(string(ctx.Request.Header.Peek("If-Match")))
	if v == "" || v == "*" {
		return 0, false, true
	}
	v = strings.TrimPrefix(v, "W/")
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		writeError(ctx, fasthttp.StatusBadRequest, "", `If-Match must be one ETag from this API, such as "3"`)
		return 0, false, false
	}
	return n, true, true
}

// listParams is GET /ads's query parameters: any other name, or one given twice, is refused with 400 naming it (httpx.Params;
// offset= is the likely guess for after=, and ignored it would page the first page forever).
var listParams = httpx.Params{Names: []string{"status", "limit", "after"}}

func (h *Handlers) list(ctx *fasthttp.RequestCtx) {
	args := ctx.QueryArgs()
	if field, msg := listParams.Check(args); msg != "" {
		writeError(ctx, fasthttp.StatusBadRequest, field, "%s", msg)
		return
	}
	status := postgres.StatusActive
	if s := args.Peek("status"); len(s) > 0 {
		status = string(s)
		if status != postgres.StatusAll && !validStatus(status) {
			writeError(ctx, fasthttp.StatusUnprocessableEntity, "status", "status must be one of active, paused, archived, all")
			return
		}
	}
	limit := DefaultListLimit
	if s := args.Peek("limit"); len(s) > 0 {
		n, err := strconv.Atoi(string(s))
		if err != nil || n < 1 {
			writeError(ctx, fasthttp.StatusUnprocessableEntity, "limit", "limit must be an integer from 1 to %d", MaxListLimit)
			return
		}
		// Larger asks are clamped rather than refused; the Link header tells the client the
		// limit actually used.
		limit = min(n, MaxListLimit)
	}
	var after int64
	if s := args.Peek("after"); len(s) > 0 {
		n, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil || n < 0 {
			writeError(ctx, fasthttp.StatusUnprocessableEntity, "after", "after must be an ad id (a non-negative integer)")
			return
		}
		after = n
	}
	rctx, cancel := h.ctx()
	defer cancel()
	ads, more, err := h.Repo.List(rctx, status, after, limit)
	if err != nil {
		h.repoError(ctx, err, 0)
		return
	}
	if ads == nil {
		ads = []postgres.Ad{} // "[]", not "null"
	}
	if more && len(ads) > 0 {
		q := url.Values{"status": {status}, "limit": {strconv.Itoa(limit)}, "after": {strconv.FormatInt(ads[len(ads)-1].ID, 10)}}
		ctx.Response.Header.Set("Link", "</ads?"+q.Encode()+`>; rel="next"`)
	}
	writeJSON(ctx, fasthttp.StatusOK, ads)
}

func (h *Handlers) get(ctx *fasthttp.RequestCtx) {
	id, ok := pathID(ctx)
	if !ok {
		return
	}
	rctx, cancel := h.ctx()
	defer cancel()
	ad, err := h.Repo.Get(rctx, id)
	if err != nil {
		h.repoError(ctx, err, 0)
		return
	}
	writeAd(ctx, fasthttp.StatusOK, ad)
}

func (h *Handlers) create(ctx *fasthttp.RequestCtx) {
	in, ok := decodeBody(ctx)
	if !ok {
		return
	}
	if len(in.ID) > 0 {
		writeError(ctx, fasthttp.StatusUnprocessableEntity, "id", "id is assigned by the server; leave it out")
		return
	}
	ad, ferr := in.full()
	if ferr != nil {
		writeAPIError(ctx, fasthttp.StatusUnprocessableEntity, ferr)
		return
	}
	rctx, cancel := h.ctx()
	defer cancel()
	ad, err := h.Repo.Create(rctx, ad)
	if err != nil {
		h.repoError(ctx, err, 0)
		return
	}
	ctx.Response.Header.Set("Location", "/ads/"+strconv.FormatInt(ad.ID, 10))
	writeAd(ctx, fasthttp.StatusCreated, ad)
}

// preconditions reads the path id, If-Match and the body's id/version for PUT and PATCH.
func preconditions(ctx *fasthttp.RequestCtx, in *adInput) (id, expected int64, ok bool) {
	if id, ok = pathID(ctx); !ok {
		return 0, 0, false
	}
	expected, present, ok := ifMatch(ctx)
	if !ok {
		return 0, 0, false
	}
	if in == nil {
		return id, expected, true
	}
	if len(in.ID) > 0 {
		bid, ferr := in.int64Field("id", in.ID)
		if ferr == nil && bid != id {
			ferr = &apiError{Error: fmt.Sprintf("id %d in the body does not match the URL's %d", bid, id), Field: "id"}
		}
		if ferr != nil {
			writeAPIError(ctx, fasthttp.StatusUnprocessableEntity, ferr)
			return 0, 0, false
		}
	}
	if len(in.Version) > 0 && !present {
		v, ferr := in.int64Field("version", in.Version)
		if ferr == nil && v < 1 {
			ferr = &apiError{Error: "version must be a positive integer", Field: "version"}
		}
		if ferr != nil {
			writeAPIError(ctx, fasthttp.StatusUnprocessableEntity, ferr)
			return 0, 0, false
		}
		expected = v
	}
	return id, expected, true
}

func (h *Handlers) update(ctx *fasthttp.RequestCtx) {
	in, ok := decodeBody(ctx)
	if !ok {
		return
	}
	id, expected, ok := preconditions(ctx, &in)
	if !ok {
		return
	}
	ad, ferr := in.full()
	if ferr != nil {
		writeAPIError(ctx, fasthttp.StatusUnprocessableEntity, ferr)
		return
	}
	ad.ID = id
	rctx, cancel := h.ctx()
	defer cancel()
	ad, err := h.Repo.Update(rctx, ad, expected)
	if err != nil {
		h.repoError(ctx, err, expected)
		return
	}
	writeAd(ctx, fasthttp.StatusOK, ad)
}

func (h *Handlers) patch(ctx *fasthttp.RequestCtx) {
	in, ok := decodeBody(ctx)
	if !ok {
		return
	}
	id, expected, ok := preconditions(ctx, &in)
	if !ok {
		return
	}
	p, ferr := in.partial()
	if ferr != nil {
		writeAPIError(ctx, fasthttp.StatusUnprocessableEntity, ferr)
		return
	}
	rctx, cancel := h.ctx()
	defer cancel()
	ad, err := h.Repo.Patch(rctx, id, p, expected)
	if err != nil {
		h.repoError(ctx, err, expected)
		return
	}
	writeAd(ctx, fasthttp.StatusOK, ad)
}

func (h *Handlers) archive(ctx *fasthttp.RequestCtx) {
	id, expected, ok := preconditions(ctx, nil)
	if !ok {
		return
	}
	rctx, cancel := h.ctx()
	defer cancel()
	ad, err := h.Repo.Archive(rctx, id, expected)
	if err != nil {
		h.repoError(ctx, err, expected)
		return
	}
	writeAd(ctx, fasthttp.StatusOK, ad)
}

// adInput is a request body with every field kept raw, so absent (nil), null ("null") and
// mistyped values can each be told apart and reported with the field's name.
type adInput struct {
	ID              json.RawMessage `json:"id"`
	Name            json.RawMessage `json:"name"`
	ImageURL        json.RawMessage `json:"image_url"`
	VideoURL        json.RawMessage `json:"video_url"`
	TargetURL       json.RawMessage `json:"target_url"`
	DurationSeconds json.RawMessage `json:"duration_seconds"`
	VideoMimeType   json.RawMessage `json:"video_mime_type"`
	VideoWidth      json.RawMessage `json:"video_width"`
	VideoHeight     json.RawMessage `json:"video_height"`
	VideoBitrate    json.RawMessage `json:"video_bitrate_kbps"`
	VideoDelivery   json.RawMessage `json:"video_delivery"`
	Weight          json.RawMessage `json:"weight"`
	Status          json.RawMessage `json:"status"`
	CreatedAt       json.RawMessage `json:"created_at"`
	UpdatedAt       json.RawMessage `json:"updated_at"`
	Version         json.RawMessage `json:"version"`
}

// decodeBody parses the request body, answering 400 itself when it is not one JSON object
// of known fields.
func decodeBody(ctx *fasthttp.RequestCtx) (adInput, bool) {
	in, err := parseAdInput(ctx.PostBody())
	if err != nil {
		writeAPIError(ctx, fasthttp.StatusBadRequest, err)
		return adInput{}, false
	}
	return in, true
}

func parseAdInput(body []byte) (adInput, *apiError) {
	var in adInput
	// JSON text is UTF-8 (RFC 8259 §8.1). encoding/json would store a byte that is not as U+FFFD, silently: refused, as on ingest.
	if off := invalidUTF8(body); off >= 0 {
		return in, &apiError{Error: fmt.Sprintf("body is not valid UTF-8: byte 0x%02x at offset %d", body[off], off), Field: "body"}
	}
	// A UTF-8 byte order mark first is skipped, as on ingest (RFC 8259 §8.1 lets a parser ignore it; .NET tools write one).
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&in); err != nil {
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &typeErr):
			return in, &apiError{Error: "body must be a JSON object"}
		case errors.Is(err, io.EOF):
			return in, &apiError{Error: "body must be a JSON object, got an empty body"}
		}
		return in, &apiError{Error: "body is not valid JSON: " + err.Error()}
	}
	if name, repeated, found := badKey(body); found {
		msg := fmt.Sprintf("unknown field %q", name)
		if repeated {
			msg = fmt.Sprintf("field %q appears more than once", name)
		}
		return in, &apiError{Error: msg, Field: name}
	}
	if _, err := dec.Token(); err != io.EOF {
		return in, &apiError{Error: "body must hold exactly one JSON object"}
	}
	return in, nil
}

// adInputFields are adInput's JSON names, read from its tags so the two cannot disagree.
var adInputFields = func() []string {
	t := reflect.TypeFor[adInput]()
	names := make([]string, t.NumField())
	for i := range names {
		names[i] = t.Field(i).Tag.Get("json")
	}
	return names
}()

// badKey walks the keys of body, a JSON object already decoded, once. It returns the first key that names no adInput field, or
// else (repeated) the first that names a field an earlier key named. Keys match as encoding/json matches them to fields: exactly
// or case-insensitively (strings.EqualFold). Unknown keys are checked here rather than with DisallowUnknownFields, whose error
// carries the name only in its text; repeated ones because encoding/json keeps the last silently, and with two it is unclear
// which the operator meant (ingest refuses a key given twice too).
func badKey(body []byte) (name string, repeated, found bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil { // the opening brace
		return "", false, false
	}
	seen := make([]bool, len(adInputFields))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		key, _ := tok.(string)
		i := slices.IndexFunc(adInputFields, func(f string) bool { return strings.EqualFold(f, key) })
		switch {
		case i < 0:
			return key, false, true
		case seen[i] && !repeated:
			name, repeated = key, true
		}
		seen[i] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			break
		}
	}
	return name, repeated, repeated
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

func (in *adInput) stringField(field string, raw json.RawMessage) (string, *apiError) {
	var s string
	if isNull(raw) {
		return "", &apiError{Error: field + " must be a string, not null", Field: field}
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", &apiError{Error: field + " must be a string", Field: field}
	}
	if esc := loneSurrogate(raw); esc != "" {
		// Valid JSON, but no character: encoding/json would store U+FFFD in its place.
		return "", &apiError{Error: field + " must be valid Unicode: " + esc + " is half of a surrogate pair", Field: field}
	}
	return s, nil
}

// invalidUTF8 is the offset of the first byte of b that is not part of valid UTF-8, or -1.
func invalidUTF8(b []byte) int {
	if utf8.Valid(b) {
		return -1
	}
	for off := 0; off < len(b); {
		r, n := utf8.DecodeRune(b[off:])
		if r == utf8.RuneError && n <= 1 {
			return off
		}
		off += n
	}
	return -1
}

// loneSurrogate returns the first \uXXXX escape in the JSON string raw that is a UTF-16 surrogate without its other half
// (a high one not followed by a low one, or a low one alone), or "".
func loneSurrogate(raw []byte) string {
	hex4 := func(i int) (rune, bool) {
		if i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
			return 0, false
		}
		n, err := strconv.ParseUint(string(raw[i+2:i+6]), 16, 16)
		return rune(n), err == nil
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		r, ok := hex4(i)
		switch {
		case !ok:
			i++ // another escape: skip the character it escapes (it may be a backslash)
		case r >= 0xD800 && r < 0xDC00:
			if lo, ok := hex4(i + 6); ok && lo >= 0xDC00 && lo < 0xE000 {
				i += 11
				continue
			}
			return string(raw[i : i+6])
		case r >= 0xDC00 && r < 0xE000:
			return string(raw[i : i+6])
		default:
			i += 5
		}
	}
	return ""
}

func (in *adInput) int64Field(field string, raw json.RawMessage) (int64, *apiError) {
	var n int64
	if isNull(raw) || json.Unmarshal(raw, &n) != nil {
		return 0, &apiError{Error: field + " must be an integer", Field: field}
	}
	return n, nil
}

// values validates every present field; with required, name and target_url must be present (POST, PUT).
func (in *adInput) values(required bool) (v fieldValues, err *apiError) {
	str := func(field string, raw json.RawMessage, check func(string, string) *apiError, dst **string) {
		if err != nil {
			return
		}
		if len(raw) == 0 {
			if required && (field == "name" || field == "target_url") {
				err = &apiError{Error: field + " is required", Field: field}
			}
			return
		}
		s, e := in.stringField(field, raw)
		if e == nil {
			e = check(field, s)
		}
		if e != nil {
			err = e
			return
		}
		*dst = &s
	}
	str("name", in.Name, checkName, &v.name)
	str("image_url", in.ImageURL, checkOptionalURL, &v.imageURL)
	str("video_url", in.VideoURL, checkOptionalURL, &v.videoURL)
	str("target_url", in.TargetURL, checkURL, &v.targetURL)
	num := func(field string, raw json.RawMessage, lo, hi int, dst **int) {
		if err != nil || len(raw) == 0 {
			return
		}
		var d int
		if isNull(raw) || json.Unmarshal(raw, &d) != nil || d < lo || d > hi {
			err = &apiError{Error: fmt.Sprintf("%s must be an integer from %d to %d", field, lo, hi), Field: field}
			return
		}
		*dst = &d
	}
	num("duration_seconds", in.DurationSeconds, minDuration, maxDuration, &v.duration)
	str("video_mime_type", in.VideoMimeType, checkMimeType, &v.mimeType)
	num("video_width", in.VideoWidth, 1, maxVideoSide, &v.width)
	num("video_height", in.VideoHeight, 1, maxVideoSide, &v.height)
	num("video_bitrate_kbps", in.VideoBitrate, 0, maxBitrateKbps, &v.bitrate)
	str("video_delivery", in.VideoDelivery, checkDelivery, &v.delivery)
	num("weight", in.Weight, 0, maxWeight, &v.weight)
	str("status", in.Status, checkStatus, &v.status)
	return v, err
}

type fieldValues struct {
	name, imageURL, videoURL, targetURL, status, mimeType, delivery *string
	duration, width, height, bitrate, weight                        *int
}

// full validates a POST/PUT body, filling the table defaults for optional fields.
func (in *adInput) full() (postgres.Ad, *apiError) {
	v, err := in.values(true)
	if err != nil {
		return postgres.Ad{}, err
	}
	ad := postgres.Ad{Name: *v.name, TargetURL: *v.targetURL, DurationSeconds: defaultDuration, Status: postgres.StatusActive,
		VideoMimeType: defaultMimeType, VideoWidth: defaultWidth, VideoHeight: defaultHeight, VideoDelivery: defaultDelivery,
		Weight: defaultWeight}
	setStr := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	setInt := func(dst *int, v *int) {
		if v != nil {
			*dst = *v
		}
	}
	setStr(&ad.VideoMimeType, v.mimeType)
	setStr(&ad.VideoDelivery, v.delivery)
	setInt(&ad.VideoWidth, v.width)
	setInt(&ad.VideoHeight, v.height)
	setInt(&ad.VideoBitrateKbps, v.bitrate)
	setInt(&ad.Weight, v.weight)
	if v.imageURL != nil {
		ad.ImageURL = *v.imageURL
	}
	if v.videoURL != nil {
		ad.VideoURL = *v.videoURL
	}
	if v.duration != nil {
		ad.DurationSeconds = *v.duration
	}
	if v.status != nil {
		ad.Status = *v.status
	}
	return ad, nil
}

// partial validates a PATCH body.
func (in *adInput) partial() (postgres.AdPatch, *apiError) {
	v, err := in.values(false)
	if err != nil {
		return postgres.AdPatch{}, err
	}
	return postgres.AdPatch{Name: v.name, ImageURL: v.imageURL, VideoURL: v.videoURL, TargetURL: v.targetURL,
		DurationSeconds: v.duration, VideoMimeType: v.mimeType, VideoWidth: v.width, VideoHeight: v.height,
		VideoBitrateKbps: v.bitrate, VideoDelivery: v.delivery, Weight: v.weight, Status: v.status}, nil
}

func checkName(field, s string) *apiError {
	n := utf8.RuneCountInString(s)
	if n < 1 || n > maxNameLen {
		return &apiError{Error: fmt.Sprintf("%s must be 1 to %d characters", field, maxNameLen), Field: field}
	}
	for _, r := range s {
		// Control characters (NUL in particular, which Postgres text refuses) have no place in
		// a one-line name.
		if r < 0x20 || r == 0x7f {
			return &apiError{Error: field + " must not contain control characters", Field: field}
		}
	}
	return nil
}

func checkOptionalURL(field, s string) *apiError {
	if s == "" {
		return nil
	}
	return checkURL(field, s)
}

// checkURL requires an absolute http(s) URL with a host. The scheme must be lowercase because
// the table's CHECK (target_url ~ '^https?://') is case-sensitive; spaces and control
// characters are refused because target_url is sent back verbatim in a Location header.
func checkURL(field, s string) *apiError {
	bad := func(why string) *apiError {
		return &apiError{Error: fmt.Sprintf("%s must be an absolute http(s) URL of at most %d characters: %s", field, maxURLLen, why), Field: field}
	}
	if s == "" {
		return bad("it is empty")
	}
	if utf8.RuneCountInString(s) > maxURLLen {
		return bad("it is too long")
	}
	if !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://") {
		return bad("it must start with http:// or https://")
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return bad("it contains a space or control character")
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Hostname() == "" {
		return bad("it has no valid host")
	}
	return nil
}

// checkMimeType requires a media type "type/subtype" (video/mp4, application/x-mpegURL) without parameters: it is written into the
// MediaFile type attribute, which players compare with what they can play.
func checkMimeType(field, s string) *apiError {
	bad := &apiError{Error: fmt.Sprintf("%s must be a media type such as video/mp4 (letters, digits, . + -; at most %d characters)",
		field, maxMimeLen), Field: field}
	if len(s) > maxMimeLen {
		return bad
	}
	typ, sub, ok := strings.Cut(s, "/")
	if !ok || !mimeToken(typ) || !mimeToken(sub) {
		return bad
	}
	return nil
}

func mimeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || (c != '.' && c != '+' && c != '-')) {
			return false
		}
	}
	return true
}

func checkDelivery(field, s string) *apiError {
	if s != defaultDelivery && s != deliveryStream {
		return &apiError{Error: field + " must be progressive or streaming", Field: field}
	}
	return nil
}

func validStatus(s string) bool {
	return s == postgres.StatusActive || s == postgres.StatusPaused || s == postgres.StatusArchived
}

func checkStatus(field, s string) *apiError {
	if !validStatus(s) {
		return &apiError{Error: field + " must be one of active, paused, archived", Field: field}
	}
	return nil
}
