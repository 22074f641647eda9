package query

import (
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
)

// params is the query parameters a route takes. Any other name is refused (400 naming it) instead of ignored: a misspelt or
// guessed one (from= and to=, which the answer's own "from" and "to" suggest, for start= and end=) would otherwise be answered
// for the default window, a wrong figure that looks right. "_" passes, the cache buster some HTTP clients add (jQuery's
// cache: false). Each name may appear once, but fields (documented to combine): with two limits or two starts it is unclear
// which one the client meant, as with a JSON key given twice on ingest.
type params []string

// The routes' parameters; docs/openapi.yaml lists the same (TestParamsMatchOpenAPI).
var (
	analyticsParams  = params{"ad_id", "start", "end", "fields", "sort", "limit", "by", "by_limit"}
	timeseriesParams = params{"start", "end", "fields", "interval"}
	breakdownParams  = params{"by", "start", "end", "limit"}
)

// cacheBuster is the parameter every route ignores.
const cacheBuster = "_"

// maxNameInError bounds how much of an unknown name the error repeats, so the answer stays small whatever the URL holds.
const maxNameInError = 64

// check refuses a name ps does not hold and a repeated one.
func (ps params) check(args *fasthttp.Args) *ParamError {
	var err *ParamError
	for k := range args.All() {
		name := string(k)
		switch {
		case err != nil || name == cacheBuster:
		case !slices.Contains(ps, name):
			shown := name
			if len(shown) > maxNameInError {
				shown = strings.ToValidUTF8(shown[:maxNameInError], "") + "…"
			}
			if !utf8.ValidString(shown) {
				shown = strings.ToValidUTF8(shown, "\uFFFD")
			}
			err = &ParamError{Field: shown, Msg: `unknown parameter "` + shown + `": this route takes ` + strings.Join(ps, ", ")}
		case name != "fields" && len(args.PeekMulti(name)) > 1:
			err = &ParamError{Field: name, Msg: name + " appears more than once"}
		}
	}
	return err
}
