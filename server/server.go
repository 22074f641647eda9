// Package server assembles the HTTP server: router, health and metrics endpoints, middleware (request id, metrics, rate limits, read
// access, CORS, security headers, sampled error logs), JSON errors for what no handler answers, and deliberately set connection limits.
package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/router"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/adtracker/adtracker/internal/httpx"
	"github.com/adtracker/adtracker/ratelimit"
)

// Check is one readiness component: it returns nil when the component can serve.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Defaults for the limits left zero in Options.
const (
	DefaultMaxHeaderBytes = 8192
	DefaultConcurrency    = 50_000
)

// Options configure the server.
type Options struct {
	MaxBodyBytes  int
	ReadTimeout   time.Duration // whole request, headers and body: what cuts off a slowloris client
	WriteTimeout  time.Duration
	IdleTimeout   time.Duration // keep-alive wait for the next request
	MaxConnsPerIP int           // 0 = unlimited (players behind one NAT share an address)
	// BodyBufferBytes bounds the memory of request bodies over 8 KiB being read at once, all connections together (body.go); a body
	// waits for room up to ReadTimeout, then gets 503. Zero means DefaultBodyBufferBytes; it is raised to fit one MaxBodyBytes body.
	BodyBufferBytes int
	// MaxHeaderBytes bounds the request line plus headers (fasthttp's ReadBufferSize, allocated per connection); more answers 431.
	MaxHeaderBytes int
	// Concurrency bounds the connections served at once (~20 KB each when idle); past it fasthttp answers 503 at once.
	Concurrency int
	// CORSOrigins are the origins browsers may call the ingest routes from (and read the answers of requests no route took):
	// exact "https://player.example.com" entries, or "*" for any. Empty disables CORS there.
	CORSOrigins []string
	// ReadCORSOrigins are the same for every other route — reads, admin, health. Empty (the default) sends no CORS headers there,
	// so a web page cannot read the catalogue or analytics through a visitor's browser.
	ReadCORSOrigins []string
	// ReadTokens are the bearer tokens that open the read routes (the ads catalogue, analytics, /metrics) to non-local clients:
	// http.read_token and admin.token. Empty entries are ignored. See readAccess for who passes without one.
	ReadTokens []string
	// PublicReads opens the read routes to everyone (http.public_reads), e.g. behind a gateway that authenticates.
	PublicReads bool
	// Proxies is the client-address rule (http.trusted_proxies), which the loopback exemption of the read routes uses; nil means
	// the TCP peer.
	Proxies *httpx.Proxies
	// SeparateMetrics leaves /metrics off the main router: ServeMetrics serves it, unguarded, on its own listener (http.metrics_addr).
	SeparateMetrics bool
	// Limiter rate-limits per client address by route class; nil disables rate limiting. Its metrics are registered with Registry.
	Limiter *ratelimit.Limiter
	// RouteClass maps a route (method, pattern) to its rate-limit class; nil means ratelimit.ClassOf.
	RouteClass func(method, pattern string) ratelimit.Class
	// RouteLabel maps a route (method, pattern) to the route label of its metrics; nil means the pattern. Routes that are one
	// route to their users share a label, e.g. the static pixel routes /t/impression, /t/firstQuartile, … and /t/{event}
	// (ingest.RouteLabel).
	RouteLabel func(method, pattern string) string
	// Compress says which routes' answers are gzipped for clients that accept it (http.compress; httpx.Compress says which
	// answers qualify). Nil compresses none.
	Compress func(method, pattern string) bool
	Log      *zap.Logger
	Registry *prometheus.Registry
	// Checks make up /readyz. They run in the background every ReadyInterval (default DefaultReadyInterval) while Serve runs, never
	// per request; see RefreshReadiness.
	Checks        []Check
	ReadyInterval time.Duration
}

// Server is the HTTP front.
type Server struct {
	// Router is where handlers register their routes, before Serve or Handler.
	Router *router.Router

	opt      Options
	log      *zap.Logger
	hotLog   *zap.Logger // sampled: for lines a flood of bad requests could otherwise repeat thousands of times a second
	draining atomic.Bool

	refusedLog *zap.Logger // the 4xx request lines, at most RefusedLogPerSecond a second

	mu         sync.Mutex // guards srv, metricsSrv and shut: Serve, ServeMetrics and Shutdown run on different goroutines
	srv        *fasthttp.Server
	shut       bool
	metrics    *httpMetrics
	cors       corsPolicy // ingest routes and answers no route gave
	readCORS   corsPolicy // every other route
	access     *readAccess
	rid        requestIDs
	body       *bodyGate
	linger     *lingerSet              // connections to close lingering after a refusal (linger.go)
	metricsH   fasthttp.RequestHandler // the /metrics handler, when Registry is set
	metricsSrv *fasthttp.Server        // ServeMetrics' server, for Shutdown

	unmatched, preflight, preflightRead, rejected *fallbackRoutes

	buildOnce sync.Once
	handler   fasthttp.RequestHandler
	buildErr  error

	ready readiness

	// bgCtx ends at Shutdown; the limiter's sweeper and the readiness refresher run under it.
	bgCtx  context.Context
	stopBg context.CancelFunc
}

// New builds a server; register routes on Router before Serve. It registers its own and the Limiter's metrics with Registry.
func New(opt Options) *Server {
	if opt.Log == nil {
		opt.Log = zap.NewNop()
	}
	if opt.RouteLabel == nil {
		opt.RouteLabel = func(_, pattern string) string { return pattern }
	}
	if opt.RouteClass == nil {
		opt.RouteClass = ratelimit.ClassOf
	}
	r := router.New()
	r.RedirectTrailingSlash = false
	r.HandleMethodNotAllowed = true
	s := &Server{Router: r, opt: opt, log: opt.Log, metrics: newHTTPMetrics(), cors: newCORS(opt.CORSOrigins),
		readCORS: newCORS(opt.ReadCORSOrigins), access: newReadAccess(opt.PublicReads, opt.ReadTokens, opt.Proxies), rid: newRequestIDs(),
		body: newBodyGate(opt.MaxBodyBytes, opt.BodyBufferBytes, opt.ReadTimeout)}
	s.linger = newLingerSet(s.body.maxBody, opt.ReadTimeout)
	s.body.linger = s.linger
	s.bgCtx, s.stopBg = context.WithCancel(context.Background())
	s.ready = readiness{checks: opt.Checks, interval: opt.ReadyInterval}
	if s.ready.interval <= 0 {
		s.ready.interval = DefaultReadyInterval
	}
	// At most 5 identical messages a second, then 1 in 100.
	s.hotLog = opt.Log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return zapcore.NewSamplerWithOptions(c, time.Second, 5, 100)
	}))
	s.refusedLog = newRefusedLog(opt.Log)
	s.unmatched = newFallback(s.metrics, routeUnmatched)
	s.preflight = newFallback(s.metrics, routePreflight)
	s.preflightRead = newFallback(s.metrics, routePreflight) // the same series; answers carry the read-route CORS policy
	for _, rt := range s.preflightRead {
		rt.readCORS = true
	}
	s.rejected = newFallback(s.metrics, routeRejected)
	r.NotFound = func(ctx *fasthttp.RequestCtx) {
		httpx.WriteError(ctx, fasthttp.StatusNotFound, "no such route", "")
	}
	r.MethodNotAllowed = func(ctx *fasthttp.RequestCtx) {
		httpx.WriteError(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed", "")
	}
	r.PanicHandler = func(ctx *fasthttp.RequestCtx, v any) {
		var buf [maxRequestIDLen]byte
		id := append(buf[:0], RequestID(ctx)...)
		s.log.Error("handler panic", zap.Any("panic", v), zap.ByteString("request_id", id),
			zap.ByteString("method", ctx.Method()), zap.ByteString("path", ctx.Path()), zap.Stack("stack"))
		// Drop whatever the handler had half written (a Location, a partial body) before answering 500.
		ctx.Response.Reset()
		ctx.Response.Header.SetBytesV(HeaderRequestID, id)
		httpx.WriteError(ctx, fasthttp.StatusInternalServerError, "internal error", "")
	}
	r.GET("/healthz", func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType(httpx.ContentJSON)
		ctx.SetBodyString(`{"status":"ok"}`)
	})
	r.GET("/readyz", s.readyz)
	if opt.Registry != nil {
		s.metricsH = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(opt.Registry, promhttp.HandlerOpts{}))
		if !opt.SeparateMetrics {
			r.GET("/metrics", s.metricsH)
		}
		opt.Registry.MustRegister(s.metrics.collectors()...)
		opt.Registry.MustRegister(s.body.collectors()...)
		if opt.Limiter != nil {
			opt.Registry.MustRegister(opt.Limiter.Collectors()...)
		}
	}
	return s
}

// Handler returns the complete request handler: middleware around a router built from Router's routes, each route wrapped with its
// pre-resolved metrics and rate-limit class. The first call freezes the routes; routes added to Router later are not served. It
// panics if a route cannot be instrumented (see build), a programming error every test of the full router catches.
func (s *Server) Handler() fasthttp.RequestHandler {
	s.buildOnce.Do(func() { s.handler, s.buildErr = s.build() })
	if s.buildErr != nil {
		panic(s.buildErr)
	}
	return s.handler
}

// Serve listens on ln until Shutdown. It also runs the Limiter's sweeper and the readiness refresher.
func (s *Server) Serve(ln net.Listener) error {
	s.buildOnce.Do(func() { s.handler, s.buildErr = s.build() })
	if s.buildErr != nil {
		return s.buildErr
	}
	srv := s.fasthttpServer()
	s.mu.Lock()
	if s.shut {
		s.mu.Unlock()
		return ln.Close() // Shutdown came first: serve nothing rather than forever
	}
	s.srv = srv
	s.mu.Unlock()
	if s.opt.Limiter != nil {
		go s.opt.Limiter.Run(s.bgCtx)
	}
	go s.ready.run(s.bgCtx)
	return srv.Serve(s.linger.listener(ln))
}

func (s *Server) fasthttpServer() *fasthttp.Server {
	headerBytes := s.opt.MaxHeaderBytes
	if headerBytes <= 0 {
		headerBytes = DefaultMaxHeaderBytes
	}
	conc := s.opt.Concurrency
	if conc <= 0 {
		conc = DefaultConcurrency
	}
	return &fasthttp.Server{
		Handler:            s.handler,
		Name:               "adtracker",
		MaxRequestBodySize: s.opt.MaxBodyBytes,
		ReadTimeout:        s.opt.ReadTimeout,
		WriteTimeout:       s.opt.WriteTimeout,
		IdleTimeout:        s.opt.IdleTimeout,
		MaxConnsPerIP:      s.opt.MaxConnsPerIP,
		ReadBufferSize:     headerBytes,
		Concurrency:        conc,
		// The handler is called after the headers and at most 8 KiB of the body; the body gate reads the rest within its memory
		// budget and refuses what is over MaxBodyBytes (body.go).
		StreamRequestBody: true,
		// No route takes multipart; pre-parsing it would spool uploads to memory or disk for nothing.
		DisablePreParseMultipartForm: true,
		// Shutdown closes idle keep-alive connections instead of waiting for their idle timeout.
		CloseOnShutdown:               true,
		NoDefaultServerHeader:         true,
		NoDefaultDate:                 true,
		DisableHeaderNamesNormalizing: false,
		Logger:                        printfLogger{s.hotLog},
		ErrorHandler:                  s.errorHandler,
		ExpectHandler:                 s.expect,
	}
}

// errExpectedBodyTooLarge is expect's refusal, answered by errorHandler.
var errExpectedBodyTooLarge = errors.New("declared body over the limit, with Expect: 100-continue")

// expect answers a request that waits for "100 Continue" before sending its body (curl does for large bodies, and any client with
// Expect: 100-continue): a declared Content-Length over the limit gets its 413 at once and sends no body. Without it fasthttp sends
// 100 Continue for every such request, the client sends the whole body, and one over the lingering close's bound (linger.go) ends in
// a reset instead of the 413. The answer is errorHandler's, as for any request refused before routing; fasthttp then closes the
// connection without calling the handler. (fasthttp's doc asks an ExpectHandler not to modify the response, since fasthttp sets
// its status; v1.74.0 writes the response as the handler left it, and TestExpectContinueOverLimitAnswered413 holds it to that.)
func (s *Server) expect(ctx *fasthttp.RequestCtx) int {
	if ctx.Request.Header.ContentLength() > s.body.maxBody {
		s.errorHandler(ctx, errExpectedBodyTooLarge)
		return fasthttp.StatusRequestEntityTooLarge
	}
	return fasthttp.StatusContinue
}

// errorHandler answers requests fasthttp refused before routing (the connection is closed afterwards), and expect's refusals. A body
// over the limit is otherwise not among them: in streaming mode fasthttp hands it to the body gate, which answers 413 (body.go).
func (s *Server) errorHandler(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var te interface{ Timeout() bool }
	switch {
	case errors.Is(err, errExpectedBodyTooLarge):
		httpx.WriteError(ctx, fasthttp.StatusRequestEntityTooLarge, "request body too large", "body")
	case errors.As(err, &small):
		httpx.WriteError(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, "request headers too large", "")
	case errors.As(err, &te) && te.Timeout():
		httpx.WriteError(ctx, fasthttp.StatusRequestTimeout, "request timeout", "")
	default:
		httpx.WriteError(ctx, fasthttp.StatusBadRequest, "malformed HTTP request", "")
	}
	s.linger.mark(ctx.RemoteAddr()) // fasthttp closes the connection after this answer, maybe with the request's rest unread
	s.rid.set(ctx)
	s.decorate(ctx, nil) // no route ran: the ingest CORS rule, as for an unmatched path
	s.rejected.of(ctx).counter(ctx.Response.StatusCode()).Inc()
	if ce := s.hotLog.Check(zap.DebugLevel, "request rejected before routing"); ce != nil {
		ce.Write(zap.ByteString("request_id", RequestID(ctx)), zap.Int("status", ctx.Response.StatusCode()),
			zap.String("remote", ctx.RemoteAddr().String()), zap.Error(err))
	}
}

type printfLogger struct{ l *zap.Logger }

func (p printfLogger) Printf(format string, args ...any) {
	p.l.Warn("fasthttp: " + fmt.Sprintf(format, args...))
}

// ServeMetrics serves /metrics alone on ln until Shutdown, without the read guard: the listener's address (http.metrics_addr) is
// the access control, e.g. a private interface Prometheus scrapes. Use it with Options.SeparateMetrics.
func (s *Server) ServeMetrics(ln net.Listener) error {
	if s.metricsH == nil {
		return errors.New("server: ServeMetrics needs Options.Registry")
	}
	r := router.New()
	r.GET("/metrics", s.metricsH)
	r.NotFound = func(ctx *fasthttp.RequestCtx) {
		httpx.WriteError(ctx, fasthttp.StatusNotFound, "no such route: this listener serves /metrics only", "")
	}
	srv := &fasthttp.Server{
		Handler: r.Handler, Name: "adtracker", ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: time.Minute,
		ReadBufferSize: DefaultMaxHeaderBytes, MaxRequestBodySize: 4096, Concurrency: 64, CloseOnShutdown: true,
		NoDefaultServerHeader: true, NoDefaultDate: true, Logger: printfLogger{s.hotLog},
	}
	s.mu.Lock()
	if s.shut {
		s.mu.Unlock()
		return ln.Close()
	}
	s.metricsSrv = srv
	s.mu.Unlock()
	return srv.Serve(ln)
}

// Drain makes /readyz answer 503 so load balancers stop sending traffic before Shutdown.
func (s *Server) Drain() { s.draining.Store(true) }

// Shutdown stops accepting connections and waits for in-flight requests.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopBg()
	s.mu.Lock()
	s.shut = true
	srv, msrv := s.srv, s.metricsSrv
	s.mu.Unlock()
	var merr error
	if msrv != nil {
		merr = msrv.ShutdownWithContext(ctx)
	}
	if srv == nil {
		return merr
	}
	return errors.Join(srv.ShutdownWithContext(ctx), merr)
}
