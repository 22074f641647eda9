package httpx

import (
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestParamsCheck(t *testing.T) {
	p := Params{Names: []string{"start", "end", "fields"}, Repeatable: []string{"fields"}}
	f := func(query, field, msg string) {
		t.Helper()
		var args fasthttp.Args
		args.Parse(query)
		gotField, gotMsg := p.Check(&args)
		refused := field != "" || msg != ""
		if gotField != field || (msg != "" && gotMsg != msg) || refused != (gotMsg != "") {
			t.Errorf("%q: got %q %q, want %q %q", query, gotField, gotMsg, field, msg)
		}
	}
	f("", "", "")
	f("start=1&end=2&fields=a&fields=b", "", "")
	f("_=1712345678901&start=1", "", "")
	f("start=1&_=1&_=2", "", "") // the cache buster is ignored, however often
	f("from=1", "from", `unknown parameter "from": this route takes start, end, fields`)
	f("start=1&to=2", "to", "")
	f("Start=1", "Start", "") // names are exact
	f("start=1&start=2", "start", "start appears more than once")
	f("start=1&end=2&start=3", "start", "")
	f("start", "", "")             // a name without a value is still that name
	f("start&start=", "start", "") // and counts as given
	f("=1", "", `unknown parameter "": this route takes start, end, fields`)
	f(strings.Repeat("é", 40)+"=1", strings.Repeat("é", 32)+"…", "") // cut at 64 bytes, on a character boundary
	f("%ff%fe=1", "\uFFFD", "")                                      // not UTF-8: replaced, so the JSON answer stays valid
}
