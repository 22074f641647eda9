// Package postgres is adtracker's Postgres access: the pgx pool, the migration runner, the ads repository and LISTEN/NOTIFY.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
)

// PingTimeout bounds the reachability check in Open, so a wrong host fails start-up quickly
// instead of hanging on the OS connect timeout.
const PingTimeout = 5 * time.Second

// DB is a pool of connections to the adtracker Postgres database.
type DB struct {
	pool *pgxpool.Pool
	// Logger receives the few lines this package writes (listener disconnects). Set it right
	// after Open, before any Listen; nil means no logging.
	Logger *zap.Logger

	closeOnce sync.Once
	closed    chan struct{} // closed by Close, so Listen stops reconnecting to a pool nobody uses
}

// Open connects to dsn and checks the server answers within PingTimeout. The error names the
// host, database and user but never the password, so it can go to logs as is.
func Open(ctx context.Context, dsn string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgconn redacts the password in its parse errors.
		return nil, fmt.Errorf("postgres: bad dsn: %w", err)
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "adtracker"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres %s: %w", describe(cfg), err)
	}
	pctx, cancel := context.WithTimeout(ctx, PingTimeout)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres %s unreachable: %w", describe(cfg), err)
	}
	return &DB{pool: pool, closed: make(chan struct{})}, nil
}

// describe names where a config points, without the password.
func describe(cfg *pgxpool.Config) string {
	c := cfg.ConnConfig
	return fmt.Sprintf("at %s (database %q, user %q)", net.JoinHostPort(c.Host, fmt.Sprint(c.Port)), c.Database, c.User)
}

// Pool exposes the pgx pool for callers that need plain SQL (readiness checks, tests).
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// Ping checks the server answers.
func (db *DB) Ping(ctx context.Context) error { return db.pool.Ping(ctx) }

// Close closes the pool and stops Listen loops; safe to call more than once.
func (db *DB) Close() {
	db.closeOnce.Do(func() {
		close(db.closed)
		db.pool.Close()
	})
}

func (db *DB) log() *zap.Logger {
	if db.Logger == nil {
		return zap.NewNop()
	}
	return db.Logger
}

// ErrNotFound is returned when no ad has the requested id.
var ErrNotFound = errors.New("ad not found")

// ErrConflict is returned when a write names an expected version the ad no longer has.
var ErrConflict = errors.New("ad was changed concurrently (version mismatch)")

// IsUnavailable reports whether err means Postgres could not be reached or dropped the
// connection, as opposed to rejecting the statement; the API answers 503 for these and the
// catalogue keeps its last snapshot.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", "57P02", "57P03", // admin/crash shutdown, cannot connect now (starting up)
			"53300": // too many connections
			return true
		}
		// Class 08: connection exceptions.
		return len(pgErr.Code) == 5 && pgErr.Code[:2] == "08"
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connErr), errors.As(err, &netErr), pgconn.Timeout(err):
		return true
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, net.ErrClosed):
		return true
	}
	// puddle's ErrClosedPool is not exported through pgxpool; a closed pool is as unreachable
	// as a stopped server from the caller's point of view.
	return chainHas(err, func(e error) bool { return e.Error() == "closed pool" })
}

// chainHas reports whether pred holds for err or any error it wraps.
func chainHas(err error, pred func(error) bool) bool {
	if err == nil {
		return false
	}
	if pred(err) {
		return true
	}
	switch u := err.(type) { //nolint:errorlint // this is the chain walk errors.As would do, with an arbitrary predicate
	case interface{ Unwrap() error }:
		return chainHas(u.Unwrap(), pred)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if chainHas(e, pred) {
				return true
			}
		}
	}
	return false
}
