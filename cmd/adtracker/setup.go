package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/adtracker/adtracker/config"
	"github.com/adtracker/adtracker/migrations"
	chstore "github.com/adtracker/adtracker/storage/clickhouse"
	"github.com/adtracker/adtracker/storage/postgres"
)

// env holds what every subcommand starts from.
type env struct {
	cfg *config.Config
	log *zap.Logger
}

// errLogged marks an error already logged with its one clear line, so main only sets the exit code.
var errLogged = errors.New("logged")

// setup parses the common flags, loads the configuration and builds the logger. A bad config is reported on stderr as one JSON line
// (the logger's format may be what is broken) and fails the command.
func setup(name string, args []string, extra func(fs *flag.FlagSet)) (*env, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	cfgPath := fs.String("config", "", "YAML config file")
	format := fs.String("log-format", "", "json or console (overrides log.format)")
	level := fs.String("log-level", "", "log level (overrides log.level)")
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, `{"level":"fatal","msg":"invalid configuration","error":%q}`+"\n", err.Error())
		return nil, errLogged
	}
	if *format != "" {
		cfg.Log.Format = *format
	}
	if *level != "" {
		cfg.Log.Level = *level
	}
	log, err := newLogger(cfg.Log.Format, cfg.Log.Level)
	if err != nil {
		fmt.Fprintf(os.Stderr, `{"level":"fatal","msg":"invalid log settings","error":%q}`+"\n", err.Error())
		return nil, errLogged
	}
	warnUnknownEnv(log, os.Environ())
	return &env{cfg: cfg, log: log}, nil
}

// warnUnknownEnv logs each ADTRACKER_* variable that is no setting's, with the one it probably meant. The value is not logged:
// it may be a secret.
func warnUnknownEnv(log *zap.Logger, environ []string) {
	for _, u := range config.UnknownEnv(environ) {
		fields := []zap.Field{zap.String("name", u.Name)}
		if u.DidYouMean != "" {
			fields = append(fields, zap.String("did_you_mean", u.DidYouMean))
		}
		log.Warn("environment variable ignored: no setting has this name (README, \"Configuration\")", fields...)
	}
}

func newLogger(format, level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	var zc zap.Config
	switch format {
	case "console":
		zc = zap.NewDevelopmentConfig()
		zc.DisableStacktrace = true
	case "json":
		zc = zap.NewProductionConfig()
		zc.EncoderConfig.TimeKey = "ts"
		zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
		zc.DisableStacktrace = true // one line per failure; the message carries the cause
	default:
		return nil, fmt.Errorf("log.format must be json or console, not %q", format)
	}
	zc.Level = zap.NewAtomicLevelAt(lvl)
	return zc.Build()
}

func (e *env) openPostgres(ctx context.Context) (*postgres.DB, error) {
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	db, err := postgres.Open(c, e.cfg.Postgres.DSN)
	if err != nil {
		e.log.Error("postgres unreachable at start", zap.Error(err))
		return nil, errLogged
	}
	return db, nil
}

func (e *env) openClickHouse(ctx context.Context) (*chstore.DB, error) {
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	db, err := chstore.Open(c, chstore.Config{
		Addr: e.cfg.ClickHouse.Addr, Database: e.cfg.ClickHouse.Database,
		Username: e.cfg.ClickHouse.Username, Password: e.cfg.ClickHouse.Password, Cluster: e.cfg.ClickHouse.Cluster,
		Compression: e.cfg.ClickHouse.Compression,
		// Reads (analytics, stored check, readiness) and inserts get separate pools, so slow reads never hold an insert's.
		ReadConns: e.cfg.ClickHouse.ReadConns, WriteConns: e.cfg.ClickHouseWriteConns(), NodeID: e.cfg.ClickHouse.NodeID,
		// A write that makes no progress for an insert's whole budget ends it, so its batch spills (see Config.WriteTimeout).
		WriteTimeout: e.cfg.Ingest.InsertTimeout,
	}, true)
	if err != nil {
		e.log.Error("clickhouse unreachable at start", zap.Error(err))
		return nil, errLogged
	}
	return db, nil
}

// migrateBoth applies Postgres then ClickHouse migrations.
func (e *env) migrateBoth(ctx context.Context, pg *postgres.DB, ch *chstore.DB) error {
	pgFiles, err := migrations.Postgres()
	if err != nil {
		return err
	}
	applied, err := pg.Migrate(ctx, pgFiles)
	if err != nil {
		e.log.Error("postgres migration failed", zap.Error(err))
		return errLogged
	}
	chFiles, err := ch.MigrationFiles()
	if err != nil {
		return err
	}
	res, err := ch.Migrate(ctx, chFiles)
	if err != nil {
		e.log.Error("clickhouse migration failed", zap.Error(err))
		return errLogged
	}
	version, _ := ch.Version(ctx)
	var chApplied, chSkipped []string
	for _, r := range res {
		switch r.Status {
		case "applied":
			chApplied = append(chApplied, r.Name)
		case "skipped":
			chSkipped = append(chSkipped, r.Name)
		}
	}
	e.log.Info("migrations done", zap.Strings("postgres_applied", applied), zap.Strings("clickhouse_applied", chApplied),
		zap.Strings("clickhouse_skipped_for_server_version", chSkipped), zap.String("clickhouse_version", version))
	return nil
}

func migrate(args []string) error {
	e, err := setup("migrate", args, nil)
	if err != nil {
		return err
	}
	ctx := context.Background()
	pg, err := e.openPostgres(ctx)
	if err != nil {
		return err
	}
	defer pg.Close()
	ch, err := e.openClickHouse(ctx)
	if err != nil {
		return err
	}
	defer ch.Close()
	return e.migrateBoth(ctx, pg, ch)
}

func seed(args []string) error {
	e, err := setup("seed", args, nil)
	if err != nil {
		return err
	}
	ctx := context.Background()
	pg, err := e.openPostgres(ctx)
	if err != nil {
		return err
	}
	defer pg.Close()
	n, err := pg.Seed(ctx)
	if err != nil {
		e.log.Error("seed failed", zap.Error(err))
		return errLogged
	}
	e.log.Info("seeded demo ads", zap.Int("inserted", n))
	return nil
}

// logServing logs, once the listener is open, where to go and what is off: a newcomer's first screen should say the URL to open and
// whether the admin API (ads writes) is on, and how to turn it on when it is not.
func logServing(log *zap.Logger, cfg *config.Config, addr net.Addr) {
	log.Info("serving", zap.String("url", serveURL(addr)), zap.String("addr", addr.String()), zap.String("data_dir", cfg.Ingest.DataDir))
	if cfg.Admin.Token == "" {
		log.Info("admin API off: POST/PUT/PATCH/DELETE /ads answer 403; set ADTRACKER_ADMIN_TOKEN (admin.token) to turn it on",
			zap.Bool("admin_api", false))
		return
	}
	log.Info("admin API on: send Authorization: Bearer <admin.token> to POST/PUT/PATCH/DELETE /ads", zap.Bool("admin_api", true))
}

// serveURL is the URL to open for a listener: localhost for a wildcard address (":8080", "0.0.0.0", "::"), else its address.
func serveURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String() + "/"
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}
