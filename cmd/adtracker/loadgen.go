package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/adtracker/adtracker/internal/noop"
	lg "github.com/adtracker/adtracker/loadgen"
)

const loadgenUsage = `usage: adtracker loadgen [flags]        send event traffic and report throughput and latency
       adtracker loadgen noop [--addr A]  serve the no-op HTTP ceiling (answers 202 to everything) until SIGINT/SIGTERM

Traffic: Zipf-distributed ad ids, per view impression 1 : start 0.9 : quartiles 0.8/0.7/0.6 : complete 0.5 : click 0.02
(single mode: impressions and clicks only), distinct viewers, sessions and addresses, a client event_id (UUID) on every event.
--rate R runs open loop (R requests/s on a fixed schedule; latency from the scheduled time), otherwise closed loop on --conns.

flags:
`

// stringList collects a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func defaultURL() string {
	addr := envOr("ADTRACKER_HTTP_ADDR", ":8080")
	if _, port, err := net.SplitHostPort(addr); err == nil {
		return "http://127.0.0.1:" + port
	}
	return "http://127.0.0.1:8080"
}

func loadgen(args []string) error {
	if len(args) > 0 && args[0] == "noop" {
		return serveNoop(args[1:])
	}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), loadgenUsage)
		fs.PrintDefaults()
	}
	var (
		cfg        lg.Config
		mode       = fs.String("mode", "single", "single (POST /ads/impression, /ads/click), pixel (GET /t/{event}), batch (POST /events), get (GET --path)")
		format     = fs.String("format", "ndjson", "batch body: ndjson or json (array)")
		ads        = fs.String("ads", "", "comma-separated ad ids; the first is the most popular")
		adsFromAPI = fs.Bool("ads-from-api", false, "use the active ads listed by GET /ads")
		paths      stringList
		asJSON     = fs.Bool("json", false, "print the summary as JSON on stdout")
		quiet      = fs.Bool("quiet", false, "no progress lines on stderr")
		cpuprofile = fs.String("cpuprofile", "", "write the load generator's own CPU profile (go tool pprof) to this file")
		verify     = fs.Bool("verify", false, "after the run, check in ClickHouse that every event answered 2xx is stored exactly once")
		vc         lg.VerifyConfig
	)
	fs.StringVar(&cfg.URL, "url", defaultURL(), "adtracker base URL")
	fs.IntVar(&cfg.Batch, "batch", 100, "events per request in batch mode")
	fs.Float64Var(&cfg.Rate, "rate", 0, "open loop: requests per second (0 = closed loop, as fast as --conns allow)")
	fs.IntVar(&cfg.Conns, "conns", 64, "connections (= requests in flight)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "how long to send (default 10s when --count is not given)")
	fs.Int64Var(&cfg.Count, "count", 0, "events to send, whatever the answer (acked + refused + unknown; not events stored), rounded up to whole requests; requests in get mode")
	fs.Float64Var(&cfg.Traffic.ZipfS, "zipf-s", 1.1, "Zipf exponent of ad popularity (> 1)")
	fs.Uint64Var(&cfg.Traffic.Viewers, "viewers", 1_000_000, "viewer population")
	fs.Uint64Var(&cfg.Traffic.Seed, "seed", 0, "random seed of the traffic (0 = from the clock)")
	fs.Var(&paths, "path", "get mode: request URI to GET (repeatable; sent in turn)")
	fs.StringVar(&cfg.AcceptEncoding, "accept-encoding", "", "get mode: Accept-Encoding to send (gzip, as players do); empty sends none")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "per-request timeout")
	fs.DurationVar(&cfg.Backoff, "backoff", 100*time.Millisecond, "closed loop: pause after a 503 (Retry-After, at most this; negative: none)")
	fs.StringVar(&vc.Addr, "clickhouse", envOr("ADTRACKER_CLICKHOUSE_ADDR", "127.0.0.1:9000"), "verify: ClickHouse native address")
	fs.StringVar(&vc.Database, "database", envOr("ADTRACKER_CLICKHOUSE_DATABASE", "adtracker"), "verify: ClickHouse database")
	fs.StringVar(&vc.Username, "clickhouse-user", envOr("ADTRACKER_CLICKHOUSE_USERNAME", "default"), "verify: ClickHouse user")
	fs.DurationVar(&vc.Timeout, "verify-timeout", 2*time.Minute, "verify: longest wait for the pipeline to drain")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	fail := func(format string, a ...any) error {
		fmt.Fprintf(os.Stderr, "loadgen: "+format+"\n", a...)
		return errLogged
	}
	if fs.NArg() > 0 {
		return fail("unexpected argument %q", fs.Arg(0))
	}
	m, err := lg.ParseMode(*mode)
	if err != nil {
		return fail("%v", err)
	}
	cfg.Mode, cfg.Paths = m, paths
	switch *format {
	case "ndjson":
		cfg.NDJSON = true
	case "json":
	default:
		return fail("--format must be ndjson or json")
	}
	vc.Password = os.Getenv("ADTRACKER_CLICKHOUSE_PASSWORD")
	if cfg.Traffic.Seed == 0 {
		cfg.Traffic.Seed = uint64(time.Now().UnixNano())
	}
	if m != lg.ModeGet {
		switch {
		case *ads != "" && *adsFromAPI:
			return fail("give --ads or --ads-from-api, not both")
		case *ads != "":
			if cfg.Traffic.Ads, err = lg.ParseAds(*ads); err != nil {
				return fail("%v", err)
			}
		case *adsFromAPI:
			if cfg.Traffic.Ads, err = lg.FetchAds(cfg.URL); err != nil {
				return fail("%v", err)
			}
		default:
			return fail("give the ads to send events for: --ads 1,2,3 or --ads-from-api")
		}
	}
	if *verify && m == lg.ModeGet {
		return fail("--verify needs a mode that sends events")
	}
	if !*quiet {
		cfg.Progress = os.Stderr
		vc.Progress = io.Discard
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return fail("%v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return fail("%v", err)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	if *verify {
		// The table's size before the run lets Verify follow the drain in system.parts instead of scanning the run's ids. A
		// ClickHouse that is down when the run starts is a case to test, not an error (make chaos starts load with it killed):
		// BaseRows 0 is always safe, the drain is then followed by counting the run's rows whenever the table grows.
		if vc.BaseRows, err = lg.BaseRows(ctx, vc); err != nil {
			fmt.Fprintf(os.Stderr, "loadgen: verify: no row count before the run (%v); following the drain by the run's rows\n", err)
			vc.BaseRows = 0
		}
	}
	cpu0 := cpuSeconds()
	res, err := lg.Run(ctx, cfg)
	if err != nil {
		return fail("%v", err)
	}
	sum := res.Summary()
	sum.ClientCPU = cpuSeconds() - cpu0
	if *verify {
		if !*quiet {
			fmt.Fprintf(os.Stderr, "verify: waiting for %d events in %s/%s\n", res.Acked, vc.Addr, vc.Database)
		}
		v, err := lg.Verify(context.Background(), vc, res)
		if err != nil {
			return fail("verify: %v", err)
		}
		sum.Verify = v
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(sum); err != nil {
			return err
		}
	} else {
		sum.WriteText(os.Stdout)
	}
	if sum.Verify != nil && !sum.Verify.OK {
		return errLogged
	}
	return nil
}

// cpuSeconds is this process's user+system CPU time: the load generator shares the machine with the server, so its own cost is
// part of every figure.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// serveNoop runs the ceiling server used by scripts/bench.sh.
func serveNoop(args []string) error {
	fs := flag.NewFlagSet("loadgen noop", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:18081", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen noop:", err)
		return errLogged
	}
	srv := noop.NewServer()
	errc := make(chan error, 1)
	go func() { errc <- noop.Serve(srv, ln) }()
	fmt.Fprintf(os.Stderr, "noop server on %s\n", ln.Addr())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-sigs:
		return srv.Shutdown()
	case err := <-errc:
		fmt.Fprintln(os.Stderr, "loadgen noop:", err)
		return errLogged
	}
}
