// Package httpx is the HTTP toolkit every route shares: JSON error answers and JSON strings, the client address behind trusted
// proxies, and CIDR lists.
package httpx

import (
	"unicode/utf8"

	"github.com/valyala/fasthttp"
)

// ContentJSON is the Content-Type of every JSON answer.
const ContentJSON = "application/json; charset=utf-8"

// WriteError answers {"error": msg, "field": field} (field omitted when empty). Every 4xx/5xx of the service goes through it.
func WriteError(ctx *fasthttp.RequestCtx, status int, msg, field string) {
	ctx.SetStatusCode(status)
	ctx.SetContentType(ContentJSON)
	var buf [256]byte
	b := append(buf[:0], `{"error":`...)
	b = AppendJSONString(b, msg)
	if field != "" {
		b = append(b, `,"field":`...)
		b = AppendJSONString(b, field)
	}
	ctx.Response.SetBody(append(b, '}'))
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string literal (invalid UTF-8 becomes U+FFFD).
func AppendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < 0x80 {
			dst = append(dst, c)
			i++
			continue
		}
		if c >= 0x80 {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, `\ufffd`...)
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size
			continue
		}
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
	}
	return append(dst, '"')
}
