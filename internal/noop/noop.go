// Package noop is the HTTP ceiling for benchmarks: a fasthttp server set up like adtracker's (same buffer size, limits and header
// options) whose handler answers 202 and does nothing else. Whatever adtracker does per request costs the difference.
package noop

import (
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// Handler answers every request 202 Accepted with an empty body; fasthttp has already read the whole request.
func Handler(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(fasthttp.StatusAccepted) }

// NewServer returns a fasthttp server with the options server.Server uses for adtracker.
func NewServer() *fasthttp.Server {
	return &fasthttp.Server{
		Handler:               Handler,
		Name:                  "noop",
		MaxRequestBodySize:    1 << 20,
		ReadTimeout:           10 * time.Second,
		WriteTimeout:          10 * time.Second,
		IdleTimeout:           60 * time.Second,
		ReadBufferSize:        8192,
		NoDefaultServerHeader: true,
		NoDefaultDate:         true,
	}
}

// Serve answers on ln until srv.Shutdown.
func Serve(srv *fasthttp.Server, ln net.Listener) error { return srv.Serve(ln) }
