package server

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"net/netip"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/adtracker/adtracker/internal/httpx"
)

// readAccess decides who may call the read routes (the ads catalogue, analytics and /metrics on the main listener), which hold
// business data and must not answer whoever reaches the port. A request passes when
//   - reads are public (http.public_reads), or
//   - it carries "Authorization: Bearer <token>" with one of the tokens (http.read_token, admin.token), or
//   - it comes from this host: the TCP peer is a loopback address AND the client address resolved through http.trusted_proxies is
//     too. Requiring both keeps a local reverse proxy from opening everything: once the proxy is listed in trusted_proxies the
//     resolved address is the remote client's, so the request needs a token; a proxy that is not trusted still makes every
//     request look local (README, "Read access"), and a remote trusted proxy cannot vouch for "127.0.0.1".
//
// Ingest routes are never guarded: players must reach them.
type readAccess struct {
	public  bool
	tokens  [][sha256.Size]byte // digests, so a comparison takes the same time whatever the lengths
	proxies *httpx.Proxies
}

func newReadAccess(public bool, tokens []string, proxies *httpx.Proxies) *readAccess {
	a := &readAccess{public: public, proxies: proxies}
	for _, t := range tokens {
		if t = strings.TrimSpace(t); t != "" {
			a.tokens = append(a.tokens, sha256.Sum256([]byte(t)))
		}
	}
	return a
}

// Answers of a refused read; clients and dashboards match on them.
const (
	errReadTokenWrong = "missing or wrong read token: send Authorization: Bearer <http.read_token> (admin.token works too)"
	errReadNoToken    = "reads are allowed from this host only: set http.read_token and send Authorization: Bearer <token>"
)

// check reports whether ctx may read; when not, it has written the 401.
func (a *readAccess) check(ctx *fasthttp.RequestCtx) bool {
	if a.public || a.local(ctx) {
		return true
	}
	if a.tokenOK(ctx.Request.Header.Peek("Authorization")) {
		return true
	}
	ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="adtracker"`)
	msg := errReadTokenWrong
	if len(a.tokens) == 0 {
		msg = errReadNoToken
	}
	httpx.WriteError(ctx, fasthttp.StatusUnauthorized, msg, "Authorization")
	return false
}

func (a *readAccess) local(ctx *fasthttp.RequestCtx) bool {
	peer, ok := netip.AddrFromSlice(ctx.RemoteIP())
	if !ok || !peer.Unmap().IsLoopback() {
		return false
	}
	return netip.AddrFrom16(a.proxies.ClientIP(ctx)).Unmap().IsLoopback()
}

func (a *readAccess) tokenOK(header []byte) bool {
	scheme, token, ok := bytes.Cut(bytes.TrimSpace(header), []byte(" "))
	if !ok || !bytes.EqualFold(scheme, []byte("Bearer")) || len(a.tokens) == 0 {
		return false
	}
	got := sha256.Sum256(bytes.TrimSpace(token))
	match := 0
	for i := range a.tokens {
		match |= subtle.ConstantTimeCompare(got[:], a.tokens[i][:])
	}
	return match == 1
}
