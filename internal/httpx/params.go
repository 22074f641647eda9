package httpx

import (
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
)

// Params is the query parameters a JSON API route takes. Any other name is refused (400 naming it) instead of ignored: a
// misspelt or guessed one (from= and to= for the analytics' start= and end=, offset= for the catalogue's after=) would otherwise
// be answered as if it had not been sent, a wrong answer that looks right (a client paging with offset= would get the first
// page forever). "_" passes, the cache buster some HTTP clients add (jQuery's cache: false). Each name may appear once, but those
// in Repeatable: with two limits or two starts it is unclear which one the client meant, as with a JSON key given twice on ingest.
//
// Routes that players and ad servers call (pixels, VAST, click redirects) do not use it: they carry macros and parameters of the
// player's own that we must not refuse.
type Params struct {
	Names      []string
	Repeatable []string // names that may appear more than once (a subset of Names)
}

// CacheBuster is the parameter every checked route ignores.
const CacheBuster = "_"

// maxNameInError bounds how much of an unknown name the error repeats, so the answer stays small whatever the URL holds.
const maxNameInError = 64

// Check returns the parameter to refuse and why, or msg "" when every parameter is one the route takes, given at most once unless
// repeatable. field may be "" with a msg: a parameter with an empty name ("?=1") is refused too.
func (p Params) Check(args *fasthttp.Args) (field, msg string) {
	for k := range args.All() {
		name := string(k)
		switch {
		case name == CacheBuster:
		case !slices.Contains(p.Names, name):
			if len(name) > maxNameInError {
				name = strings.ToValidUTF8(name[:maxNameInError], "") + "…"
			}
			if !utf8.ValidString(name) {
				name = strings.ToValidUTF8(name, "\uFFFD")
			}
			return name, `unknown parameter "` + name + `": this route takes ` + strings.Join(p.Names, ", ")
		case !slices.Contains(p.Repeatable, name) && len(args.PeekMulti(name)) > 1:
			return name, name + " appears more than once"
		}
	}
	return "", ""
}
