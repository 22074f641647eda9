package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/adtracker/adtracker/catalog"
	"github.com/adtracker/adtracker/ingest"
	"github.com/adtracker/adtracker/ingest/decode"
	"github.com/adtracker/adtracker/ingest/event"
	"github.com/adtracker/adtracker/ingest/pipeline"
	"github.com/adtracker/adtracker/ingest/screen"
	"github.com/adtracker/adtracker/internal/httpx"
	"github.com/adtracker/adtracker/query"
	"github.com/adtracker/adtracker/ratelimit"
	"github.com/adtracker/adtracker/server"
	chstore "github.com/adtracker/adtracker/storage/clickhouse"
	"github.com/adtracker/adtracker/vast"
	"github.com/adtracker/adtracker/web"
)

// catalogAdapter gives ingest its view of the catalogue.
type catalogAdapter struct{ c *catalog.Catalog }

func (a catalogAdapter) Lookup(id uint64) (ingest.Ad, bool) {
	e, ok := a.c.Lookup(id)
	return ingest.Ad{Accepts: e.Accepts(), TargetURL: e.TargetURL}, ok
}

func serve(args []string) error {
	e, err := setup("serve", args, nil)
	if err != nil {
		return err
	}
	cfg, log := e.cfg, e.log
	defer func() { _ = log.Sync() }()
	applyMemoryLimit(cfg, log)
	log.Info("starting adtracker", zap.Any("config", cfg.Redacted()))

	scr, closeScreener, err := newScreener(cfg, log)
	if err != nil {
		log.Error("invalid configuration", zap.Error(err))
		return errLogged
	}
	defer closeScreener()

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	pg, err := e.openPostgres(ctx)
	if err != nil {
		return err
	}
	defer pg.Close()
	// The node id names this node's inserts across restarts (the late-commit check looks for a previous process's by it); it is
	// read from, or created in, the data dir (`deadletter replay` inserts under "<id>_replay").
	nodeID, err := chstore.NodeID(cfg.ClickHouse.NodeID, cfg.Ingest.DataDir)
	if err != nil {
		log.Error("clickhouse node id", zap.Error(err))
		return errLogged
	}
	cfg.ClickHouse.NodeID = nodeID
	ch, err := e.openClickHouse(ctx)
	if err != nil {
		return err
	}
	defer ch.Close()
	log.Info("clickhouse pools", zap.Int("read_conns", cfg.ClickHouse.ReadConns), zap.Int("write_conns", cfg.ClickHouseWriteConns()),
		zap.String("node_id", nodeID))
	if cfg.Migrate.OnStart {
		if err := e.migrateBoth(ctx, pg, ch); err != nil {
			return err
		}
	}

	cat := catalog.New(pg, catalog.Config{RefreshInterval: cfg.Catalog.RefreshInterval, Logger: log.Named("catalog")})
	if err := cat.Reload(ctx); err != nil {
		log.Error("loading the ad catalogue failed", zap.Error(err))
		return errLogged
	}
	go func() {
		if err := cat.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("catalogue refresher stopped", zap.Error(err))
		}
	}()

	pcfg := pipeline.Defaults()
	pcfg.Dir = cfg.Ingest.DataDir
	pcfg.RingCapacity = cfg.Ingest.RingCapacity
	pcfg.BatchSize = cfg.Ingest.BatchSize
	pcfg.FlushInterval = cfg.Ingest.FlushInterval
	pcfg.Inserters = cfg.Ingest.Inserters
	pcfg.InsertTimeout = cfg.Ingest.InsertTimeout
	pcfg.SpillMaxBytes = cfg.Ingest.SpillMaxBytes
	pcfg.FsyncInterval = cfg.Ingest.FsyncInterval
	pcfg.DedupWindow = cfg.Ingest.DedupWindow
	pcfg.ReplayMaxAttempts = cfg.Ingest.ReplayMaxAttempts
	pcfg.ReplayMaxAge = cfg.Ingest.ReplayMaxAge
	pcfg.InMemoryRing = !cfg.Ingest.Durable
	sink := chstore.NewSink(ch)
	pipe, err := pipeline.Open(pcfg, sink, log.Named("pipeline"))
	if err != nil {
		log.Error("opening the ingest pipeline failed", zap.String("dir", cfg.Ingest.DataDir), zap.Error(err))
		return errLogged
	}
	if n := pipe.Recovered.Load(); n > 0 {
		log.Warn("events recovered from the ring file will be replayed", zap.Int64("events", n))
	}

	proxies, err := httpx.ParseProxies(cfg.HTTP.TrustedProxies)
	if err != nil {
		log.Error("invalid configuration", zap.Error(err))
		closePipe(pipe, log)
		return errLogged
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(pipe.Collectors()...)
	reg.MustRegister(ingest.Collectors()...)
	reg.MustRegister(screen.Collectors()...)
	reg.MustRegister(server.CatalogCollectors(cat)...)
	limiter, err := ratelimit.New(ratelimit.Config{
		Ingest: ratelimit.Rule(cfg.RateLimit.Ingest), Query: ratelimit.Rule(cfg.RateLimit.Query), Admin: ratelimit.Rule(cfg.RateLimit.Admin),
		Exempt: cfg.RateLimit.Exempt, MaxTracked: cfg.RateLimit.MaxClients, Proxies: proxies,
	})
	if err != nil {
		log.Error("invalid configuration", zap.Error(err))
		closePipe(pipe, log)
		return errLogged
	}

	srv := server.New(server.Options{
		MaxBodyBytes: cfg.HTTP.MaxBodyBytes, BodyBufferBytes: cfg.HTTP.BodyBuffer,
		ReadTimeout: cfg.HTTP.ReadTimeout, WriteTimeout: cfg.HTTP.WriteTimeout, IdleTimeout: cfg.HTTP.IdleTimeout,
		MaxConnsPerIP: cfg.HTTP.MaxConnsPerIP, MaxHeaderBytes: cfg.HTTP.MaxHeaderBytes, Concurrency: cfg.HTTP.Concurrency,
		CORSOrigins: cfg.HTTP.CORSOrigins, ReadCORSOrigins: cfg.HTTP.ReadCORS, Limiter: limiter, // the limiter's metrics are registered by server.New
		ReadTokens: []string{cfg.HTTP.ReadToken, cfg.Admin.Token}, PublicReads: cfg.HTTP.PublicReads, Proxies: proxies,
		SeparateMetrics: cfg.HTTP.MetricsAddr != "",
		// The dashboard's page and files are open; /status is a read route; /vast is served to players like a pixel.
		RouteClass: vast.RouteClass(web.RouteClass(ratelimit.ClassOf)),
		RouteLabel: ingest.RouteLabel,
		Compress:   compressedRoutes(cfg.HTTP.Compress),
		Log:        log.Named("http"), Registry: reg,
		Checks: readinessChecks(pg, sink, cat, pipe),
	})
	h := &ingest.Handlers{
		Decoder: &decode.Decoder{Limits: decode.Limits{
			MaxFutureSkew: cfg.Ingest.MaxFutureSkew, MaxAge: cfg.Ingest.MaxAge, MaxPlayback: decode.DefaultLimits().MaxPlayback,
			MaxBatchItems: cfg.Ingest.MaxBatchItems,
		}},
		Queue: pipe, Catalog: catalogAdapter{cat}, Proxies: proxies, IDs: event.NewIDs(),
		Screen: scr, EnqueueWait: cfg.Ingest.EnqueueWait,
	}
	h.Register(srv.Router)
	vh, err := vast.New(vast.Config{Catalog: cat, PublicURL: cfg.HTTP.PublicURL, Proxies: proxies, IDs: h.IDs,
		CORSOrigins: cfg.HTTP.CORSOrigins})
	if err != nil {
		log.Error("invalid configuration", zap.Error(err))
		closePipe(pipe, log)
		return errLogged
	}
	vh.Register(srv.Router)
	catalog.RegisterRoutes(srv.Router, &catalog.Handlers{Repo: pg, AdminToken: cfg.Admin.Token, Logger: log.Named("ads")})
	qs := query.New(ch.Conn, ch.Database)
	qs.Log = log.Named("query")
	qs.MaxRange, qs.Timeout = cfg.Query.MaxRange, cfg.Query.Timeout
	qs.Ads = cat // analytics of an ad not in the catalogue: 404, like /ads/{id} and /c/{id}
	qs.Register(srv.Router)
	status := web.NewStatus(web.PipelineSources(pipe))
	go status.Run(ctx)
	web.NewHandler().Register(srv.Router, status)

	if a := cfg.Debug.PprofAddr; a != "" {
		// Profiles on their own listener, never on the public port.
		go func() {
			log.Info("pprof listening", zap.String("addr", a))
			mux := http.NewServeMux()
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
			srv := &http.Server{Addr: a, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
			if err := srv.ListenAndServe(); err != nil {
				log.Error("pprof listener", zap.Error(err))
			}
		}()
	}
	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		log.Error("cannot listen", zap.String("addr", cfg.HTTP.Addr), zap.Error(err))
		closePipe(pipe, log)
		return errLogged
	}
	serveErr := make(chan error, 2)
	if a := cfg.HTTP.MetricsAddr; a != "" {
		mln, err := net.Listen("tcp", a)
		if err != nil {
			log.Error("cannot listen", zap.String("metrics_addr", a), zap.Error(err))
			_ = ln.Close()
			closePipe(pipe, log)
			return errLogged
		}
		go func() {
			if err := srv.ServeMetrics(mln); err != nil {
				serveErr <- fmt.Errorf("metrics listener: %w", err)
			}
		}()
		log.Info("metrics listening", zap.String("addr", mln.Addr().String()))
	}
	go func() { serveErr <- srv.Serve(ln) }()
	logServing(log, cfg, ln.Addr())

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	select {
	case s := <-sigs:
		log.Info("shutting down", zap.String("signal", s.String()), zap.Duration("timeout", cfg.Shutdown.Timeout))
	case err := <-serveErr:
		log.Error("http server stopped", zap.Error(err))
	}
	deadline, cancel := context.WithTimeout(context.Background(), cfg.Shutdown.Timeout)
	defer cancel()
	srv.Drain()
	// Stop taking connections first so no new event arrives, then drain the ring: every event answered 2xx is inserted or spilled.
	if err := srv.Shutdown(deadline); err != nil {
		log.Warn("http shutdown", zap.Error(err))
	}
	perr := pipe.Close(deadline)
	stop()
	log.Info("stopped",
		zap.Int64("inserted", pipe.Inserted.Load()), zap.Int64("spilled", pipe.Spilled.Load()),
		zap.Int64("replayed", pipe.Replayed.Load()), zap.Int64("dead_lettered", pipe.DeadLettered.Load()),
		zap.Int64("quarantined", pipe.Quarantined.Load()),
		zap.Int64("duplicates_dropped", pipe.Duplicates.Load()), zap.NamedError("drain_error", perr))
	if perr != nil {
		return errLogged
	}
	return nil
}

// readinessChecks are the components of /readyz. The server runs them in the background (every second), never per request, so
// they may ping the databases. ClickHouse is pinged through the sink, on the write pool: readiness says whether this node can store
// events, and a read pool full of slow analytics must not take an ingest node out of its balancer. The write pool holds one
// connection beyond the inserters (the replayer's), so while every inserter and the replayer are busy the ping waits, and past the
// check's budget reports ClickHouse failing.
// compressedRoutes are the routes whose answers are compressed when http.compress is on and the client accepts it: the VAST
// tags (~7 KB of repetitive XML fetched by every player before an ad, ~1 KB compressed) and the catalogue list and analytics
// (JSON up to thousands of rows). Not the ingest routes (answers under httpx.MinCompressBytes, and their CPU is the product's), nor
// GET /ads/{id} and the dashboard's files, whose strong ETags name one encoding (RFC 9110 §8.8.1).
func compressedRoutes(on bool) func(method, pattern string) bool {
	return func(method, pattern string) bool {
		if !on || method != fasthttp.MethodGet {
			return false
		}
		switch {
		case pattern == vast.PathAny || pattern == vast.PathAd:
			return true
		case pattern == "/ads" || pattern == "/ads/analytics" || strings.HasPrefix(pattern, "/ads/{id}/"):
			return true
		}
		return false
	}
}

func readinessChecks(pg interface{ Ping(context.Context) error }, ch interface{ Ping(context.Context) error }, cat *catalog.Catalog,
	pipe *pipeline.Pipeline) []server.Check {
	return []server.Check{
		{Name: "postgres", Fn: pg.Ping},
		{Name: "clickhouse", Fn: ch.Ping},
		{Name: "catalog", Fn: func(context.Context) error {
			if !cat.Ready() {
				return fmt.Errorf("not loaded")
			}
			return nil
		}},
		{Name: "ingest", Fn: func(context.Context) error {
			if ok, why := pipe.Ready(); !ok {
				return fmt.Errorf("%s", why)
			}
			return nil
		}},
	}
}

func healthcheck(args []string) error {
	var url string
	e, err := setup("healthcheck", args, func(fs *flag.FlagSet) {
		fs.StringVar(&url, "url", "", "URL to probe (default http://127.0.0.1:<port of http.addr>/healthz)")
	})
	if err != nil {
		return err
	}
	if url == "" {
		_, port, err := net.SplitHostPort(e.cfg.HTTP.Addr)
		if err != nil {
			return err
		}
		url = "http://127.0.0.1:" + port + "/healthz"
	}
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		fmt.Fprintln(os.Stderr, "healthcheck:", resp.Status)
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// closePipe drains the pipeline on an early exit; whatever it cannot finish stays in the ring file for the next start.
func closePipe(p *pipeline.Pipeline, log *zap.Logger) {
	if err := p.Close(context.Background()); err != nil {
		log.Error("pipeline close", zap.Error(err))
	}
}
