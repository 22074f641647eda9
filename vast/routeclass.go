package vast

import (
	"strings"

	"github.com/adtracker/adtracker/ratelimit"
)

// RouteClass wraps a route classifier (ratelimit.ClassOf) so the /vast routes are ingest-class: open to players without a read
// token, limited per client like a pixel (one ad load is one request), and answered under the ingest CORS policy. It classifies raw
// paths the same way, as the server's preflight handling asks it to.
func RouteClass(next func(method, pattern string) ratelimit.Class) func(method, pattern string) ratelimit.Class {
	return func(method, pattern string) ratelimit.Class {
		if pattern == PathAny || strings.HasPrefix(pattern, PathAny+"/") {
			return ratelimit.Ingest
		}
		return next(method, pattern)
	}
}
