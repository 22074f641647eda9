package httpx

import (
	"bytes"
	"strings"
)

// Origins is a CORS origin allow-list (http.cors_origins, http.read_cors_origins): "*" allows any origin, other entries are
// compared case-insensitively without a trailing slash; empty entries are ignored. The zero value allows nothing.
type Origins struct {
	any  bool
	list [][]byte
}

// ParseOrigins builds the allow-list from a config list.
func ParseOrigins(list []string) Origins {
	var o Origins
	for _, s := range list {
		s = strings.TrimSuffix(strings.TrimSpace(s), "/")
		switch s {
		case "":
		case "*":
			o.any = true
		default:
			o.list = append(o.list, []byte(s))
		}
	}
	return o
}

// Enabled reports whether any origin is allowed at all (no CORS headers are sent otherwise).
func (o *Origins) Enabled() bool { return o.any || len(o.list) > 0 }

// Any reports whether every origin is allowed ("*").
func (o *Origins) Any() bool { return o.any }

// Allows reports whether origin may read answers.
func (o *Origins) Allows(origin []byte) bool {
	if o.any {
		return true
	}
	for _, a := range o.list {
		if bytes.EqualFold(a, origin) {
			return true
		}
	}
	return false
}
