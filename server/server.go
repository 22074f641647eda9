// Package server assembles the HTTP server: router, health and metrics endpoints, JSON errors for what no handler answers, and limits.
package server

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/fasthttp/router"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
	"go.uber.org/zap"

	"github.com/adtracker/adtracker/ingest"
)

// Check is one readiness component: it returns nil when the component can serve.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Options configure the server.
type Options struct {
	Addr          string
	MaxBodyBytes  int
	ReadTimeout   time.Duration
	WriteTimeout  time.Duration
	IdleTimeout   time.Duration
	MaxConnsPerIP int
	Log           *zap.Logger
	Registry      *prometheus.Registry
	Checks        []Check
}

// Server is the HTTP front.
type Server struct {
	Router   *router.Router
	opt      Options
	srv      *fasthttp.Server
	draining atomic.Bool
}

// New builds a server; register routes on Router before Serve.
func New(opt Options) *Server {
	if opt.Log == nil {
		opt.Log = zap.NewNop()
	}
	r := router.New()
	r.RedirectTrailingSlash = false
	r.HandleMethodNotAllowed = true
	r.NotFound = func(ctx *fasthttp.RequestCtx) {
		ingest.WriteError(ctx, fasthttp.StatusNotFound, "no such route", "")
	}
	r.MethodNotAllowed = func(ctx *fasthttp.RequestCtx) {
		ingest.WriteError(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed", "")
	}
	r.PanicHandler = func(ctx *fasthttp.RequestCtx, v any) {
		opt.Log.Error("handler panic", zap.Any("panic", v), zap.ByteString("path", ctx.Path()))
		ingest.WriteError(ctx, fasthttp.StatusInternalServerError, "internal error", "")
	}
	s := &Server{Router: r, opt: opt}
	r.GET("/healthz", func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json; charset=utf-8")
		ctx.SetBodyString(`{"status":"ok"}`)
	})
	r.GET("/readyz", s.readyz)
	if opt.Registry != nil {
		r.GET("/metrics", fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(opt.Registry, promhttp.HandlerOpts{})))
	}
	return s
}

func (s *Server) readyz(ctx *fasthttp.RequestCtx) {
	type comp struct {
		name string
		err  error
	}
	results := make([]comp, len(s.opt.Checks))
	done := make(chan struct{}, len(s.opt.Checks))
	c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for i, ch := range s.opt.Checks {
		go func(i int, ch Check) {
			results[i] = comp{ch.Name, ch.Fn(c)}
			done <- struct{}{}
		}(i, ch)
	}
	for range s.opt.Checks {
		<-done
	}
	ok := !s.draining.Load()
	body := []byte(`{"status":`)
	comps := []byte(`"components":{`)
	for i, r := range results {
		if i > 0 {
			comps = append(comps, ',')
		}
		comps = append(comps, '"')
		comps = append(comps, r.name...)
		comps = append(comps, `":{"ok":`...)
		if r.err == nil {
			comps = append(comps, `true}`...)
		} else {
			ok = false
			comps = append(comps, `false,"error":`...)
			comps = appendQuoted(comps, r.err.Error())
			comps = append(comps, '}')
		}
	}
	comps = append(comps, '}')
	switch {
	case s.draining.Load():
		body = append(body, `"draining",`...)
	case ok:
		body = append(body, `"ready",`...)
	default:
		body = append(body, `"not ready",`...)
	}
	body = append(append(body, comps...), '}')
	ctx.SetContentType("application/json; charset=utf-8")
	if !ok {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
	}
	ctx.SetBody(body)
}

func appendQuoted(dst []byte, s string) []byte { return ingest.AppendJSONString(dst, s) }

// Serve listens on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.srv = &fasthttp.Server{
		Handler:                       s.Router.Handler,
		Name:                          "adtracker",
		MaxRequestBodySize:            s.opt.MaxBodyBytes,
		ReadTimeout:                   s.opt.ReadTimeout,
		WriteTimeout:                  s.opt.WriteTimeout,
		IdleTimeout:                   s.opt.IdleTimeout,
		MaxConnsPerIP:                 s.opt.MaxConnsPerIP,
		ReadBufferSize:                8192,
		NoDefaultServerHeader:         true,
		NoDefaultDate:                 true,
		DisableHeaderNamesNormalizing: false,
		ErrorHandler: func(ctx *fasthttp.RequestCtx, err error) {
			if errors.Is(err, fasthttp.ErrBodyTooLarge) {
				ingest.WriteError(ctx, fasthttp.StatusRequestEntityTooLarge, "request body too large", "body")
				return
			}
			var te interface{ Timeout() bool }
			if errors.As(err, &te) && te.Timeout() {
				ingest.WriteError(ctx, fasthttp.StatusRequestTimeout, "request timeout", "")
				return
			}
			ingest.WriteError(ctx, fasthttp.StatusBadRequest, "malformed HTTP request", "")
		},
	}
	return s.srv.Serve(ln)
}

// Drain makes /readyz answer 503 so load balancers stop sending traffic before Shutdown.
func (s *Server) Drain() { s.draining.Store(true) }

// Shutdown stops accepting connections and waits for in-flight requests.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	return s.srv.ShutdownWithContext(ctx)
}
