// Package clickhouse owns adtracker's ClickHouse side: the connection, the migration runner and the batch insert sink.
package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Config says how to reach ClickHouse.
type Config struct {
	Addr     string // host:port of the native protocol; a comma-separated list is tried in order
	Database string
	// Cluster is a remote_servers cluster name: migrations run ON CLUSTER with the cluster form of the schema, inserts go through
	// the Distributed events table synchronously, and the stored-event check reads every replica (cluster.go). Empty: one server.
	Cluster  string
	Username string
	Password string
	// ReadConns sizes the read pool (DB.Conn: analytics, migrations, the stored-event check, Ping); default 8. WriteConns sizes
	// the write pool that only the sink's inserts and Sink.Ping use; default 2. Separate pools mean slow reads can hold every
	// read connection without an insert waiting for one: the driver makes a caller wait at most DialTimeout for a free
	// connection and then fails it, which for an insert means its batch spills.
	ReadConns  int
	WriteConns int
	// MaxOpenConns is the former name of ReadConns, used when ReadConns is 0.
	MaxOpenConns int
	// NodeID names this node in the query id of every insert (adtracker-ins-<node>-<boot>-<seq>); letters, digits and
	// underscores. It must be the same across restarts of one node and differ between nodes: the late-commit check finds a
	// previous process's inserts by it (latecommit.go). Empty: a random id per process (tests, tools that do not insert).
	NodeID      string
	DialTimeout time.Duration
	ReadTimeout time.Duration
	// Compression of the native protocol: "lz4", "none", or "auto"/"" — none when every address is loopback, lz4 otherwise.
	Compression string
	// WriteTimeout fails a write to the server that makes no progress for this long (default 10 s). The sink sends a batch in
	// chunks with the driver's Flush, which, unlike Send, does not watch the context: without this a frozen server would hold an
	// inserter forever instead of letting its batch spill.
	WriteTimeout time.Duration
}

// DB is one database reached through two pools: Conn for reads and write for the sink's inserts.
type DB struct {
	// Conn is the read pool: analytics, migrations and the stored-event check. Inserts never take its connections.
	Conn     driver.Conn
	write    driver.Conn // the write pool: only Sink inserts and Sink.Ping (the readiness check)
	Database string
	version  string
	cfg      Config
	replicas *replicaSet // cluster mode only: every replica's pool, opened on first use by the stored-event check
	ddl      *replicaSet // cluster mode only: the pools cluster migrate sends replicated ALTERs through (cluster_alter.go)
}

// Cluster returns the configured cluster name, empty for a single server.
func (db *DB) Cluster() string { return db.cfg.Cluster }

// Pool sizes when Config leaves them 0.
const (
	DefaultReadConns  = 8
	DefaultWriteConns = 2
)

// withDefaults fills the pool sizes: MaxOpenConns becomes the read pool's size.
func withDefaults(c Config) Config {
	if c.ReadConns == 0 {
		c.ReadConns = c.MaxOpenConns
	}
	if c.ReadConns <= 0 {
		c.ReadConns = DefaultReadConns
	}
	if c.WriteConns <= 0 {
		c.WriteConns = DefaultWriteConns
	}
	c.MaxOpenConns = c.ReadConns
	return c
}

// options is the driver's configuration of one pool of c.MaxOpenConns connections (withDefaults sets it per pool).
func options(c Config, database string) *ch.Options {
	if c.DialTimeout == 0 {
		c.DialTimeout = 3 * time.Second
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 60 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	dialer := &net.Dialer{Timeout: c.DialTimeout}
	user := c.Username
	if user == "" {
		user = "default"
	}
	return &ch.Options{
		Addr:             splitAddrs(c.Addr),
		Auth:             ch.Auth{Database: database, Username: user, Password: c.Password},
		Compression:      compression(c),
		DialTimeout:      c.DialTimeout,
		ReadTimeout:      c.ReadTimeout,
		MaxOpenConns:     c.MaxOpenConns,
		MaxIdleConns:     c.MaxOpenConns,
		ConnMaxLifetime:  time.Hour,
		ConnOpenStrategy: ch.ConnOpenInOrder,
		DialContext: func(ctx context.Context, addr string) (net.Conn, error) {
			conn, err := dialer.DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			return &writeDeadlineConn{Conn: conn, timeout: c.WriteTimeout}, nil
		},
	}
}

// Compression values of Config.
const (
	CompressionAuto = "auto"
	CompressionLZ4  = "lz4"
	CompressionNone = "none"
)

// compression is LZ4 unless asked otherwise or every address is loopback: there is no network to save on loopback, and both
// ends pay for it (BENCHMARKS.md, "Design measurements").
func compression(c Config) *ch.Compression {
	switch c.Compression {
	case CompressionNone:
		return nil
	case CompressionLZ4:
		return &ch.Compression{Method: ch.CompressionLZ4}
	}
	for _, a := range splitAddrs(c.Addr) {
		if !loopback(a) {
			return &ch.Compression{Method: ch.CompressionLZ4}
		}
	}
	return nil
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// writeDeadlineConn gives every Write its own deadline, so a write blocks at most timeout on a server that stopped reading. The
// driver sets and clears whole-connection deadlines around its calls; the per-write deadline is set after those, so it is the
// one a blocked write meets.
type writeDeadlineConn struct {
	net.Conn
	timeout time.Duration
}

// SyscallConn exposes the socket: before reusing an idle connection the driver peeks at it for an EOF (a server that restarted
// closed it), and it can only do that through syscall.Conn. Hiding it made the first query after a restart fail.
func (c *writeDeadlineConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}

func (c *writeDeadlineConn) Write(p []byte) (int, error) {
	if err := c.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// Open connects to the server, creates the database when it is missing (when create is true) and pings it. With a cluster, the
// cluster must be in the server's remote_servers and the database is created on every node. The write pool dials on first use.
func Open(ctx context.Context, c Config, create bool) (*DB, error) {
	c = withDefaults(c)
	if c.NodeID == "" {
		c.NodeID = randomNodeID()
	} else if !nodeIDRE.MatchString(c.NodeID) {
		return nil, fmt.Errorf("clickhouse.node_id %q: use 1-64 letters, digits and underscores", c.NodeID)
	}
	if c.Cluster != "" {
		if err := checkCluster(ctx, c); err != nil {
			return nil, err
		}
	}
	if create {
		boot, err := ch.Open(options(c, "default"))
		if err != nil {
			return nil, fmt.Errorf("clickhouse %s: %w", c.Addr, err)
		}
		err = createDatabase(ctx, boot, c)
		boot.Close()
		if err != nil {
			return nil, fmt.Errorf("clickhouse %s: create database %s: %w", c.Addr, c.Database, ddlError(err))
		}
	}
	conn, err := ch.Open(options(c, c.Database))
	if err != nil {
		return nil, fmt.Errorf("clickhouse %s: %w", c.Addr, err)
	}
	wc := c
	wc.MaxOpenConns = c.WriteConns
	write, err := ch.Open(options(wc, c.Database)) // lazy: no connection is made until the first insert
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("clickhouse %s: %w", c.Addr, err)
	}
	db := &DB{Conn: conn, write: write, Database: c.Database, cfg: c, replicas: &replicaSet{}, ddl: &replicaSet{}}
	if err := db.Ping(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("clickhouse %s: %w", c.Addr, err)
	}
	return db, nil
}

// createDatabase runs CREATE DATABASE only when the database is missing: with a cluster it is an ON CLUSTER statement, which waits
// for every node, and a node that is down must not stop an ingest node from starting against a database that already exists.
func createDatabase(ctx context.Context, boot driver.Conn, c Config) error {
	var n uint64
	if err := boot.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = "+quoteString(c.Database)).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	q := "CREATE DATABASE IF NOT EXISTS " + quoteIdent(c.Database)
	if c.Cluster != "" {
		q += " ON CLUSTER " + c.Cluster
	}
	return boot.Exec(ddlContext(ctx, c.Cluster), q)
}

// Ping checks that the server answers, through the read pool. (Readiness pings through Sink.Ping, on the write pool.)
func (db *DB) Ping(ctx context.Context) error { return db.Conn.Ping(ctx) }

// Close closes both pools (and the replicas' pools the cluster check or migrate opened).
func (db *DB) Close() error {
	db.replicas.closeAll()
	db.ddl.closeAll()
	werr := db.write.Close()
	if err := db.Conn.Close(); err != nil {
		return err
	}
	return werr
}

// Version returns the server version, e.g. "18.16.1" — migrations and queries use it to decide which features exist.
func (db *DB) Version(ctx context.Context) (string, error) {
	if db.version != "" {
		return db.version, nil
	}
	var v string
	if err := db.Conn.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil {
		return "", err
	}
	db.version = v
	return v, nil
}

func quoteString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func quoteIdent(s string) string {
	out := []byte{'`'}
	for i := 0; i < len(s); i++ {
		if s[i] == '`' || s[i] == '\\' {
			out = append(out, '\\')
		}
		out = append(out, s[i])
	}
	return string(append(out, '`'))
}

// Exception codes whose cause is the data or the schema, not the server's state: retrying the same batch cannot succeed.
var permanentCodes = map[int32]string{
	6: "CANNOT_PARSE_TEXT", 7: "INCORRECT_NUMBER_OF_COLUMNS", 8: "THERE_IS_NO_COLUMN", 9: "SIZES_OF_COLUMNS_DOESNT_MATCH",
	10: "NOT_FOUND_COLUMN_IN_BLOCK", 16: "NO_SUCH_COLUMN_IN_TABLE", 26: "CANNOT_PARSE_QUOTED_STRING",
	27: "CANNOT_PARSE_INPUT_ASSERTION_FAILED", 32: "ATTEMPT_TO_READ_AFTER_EOF", 33: "CANNOT_READ_ALL_DATA",
	38: "CANNOT_PARSE_DATE", 41: "CANNOT_PARSE_DATETIME", 43: "ILLEGAL_TYPE_OF_ARGUMENT", 44: "ILLEGAL_COLUMN",
	49: "LOGICAL_ERROR", 53: "TYPE_MISMATCH", 70: "CANNOT_CONVERT_TYPE", 117: "INCORRECT_DATA", 131: "TOO_LARGE_STRING_SIZE",
	691: "UNKNOWN_ELEMENT_OF_ENUM",
}

// Error is a failed ClickHouse operation that says whether trying again can help (Prometheus' RecoverableError idea). Permanent errors
// are those of the data or schema; everything else — connection refused, timeouts, too many parts, a missing table an operator will
// restore, authentication — is worth retrying, because the events are fine.
type Error struct {
	Op        string
	Code      int32 // server exception code, 0 when the error is not from the server
	Permanent bool
	// Uncertain is true when the server may have stored the data although we saw an error (the connection broke after sending).
	Uncertain bool
	// Waiting is true when the server answers but an earlier insert whose outcome is unknown still runs (ErrInsertStillRunning):
	// the batch has to wait, ClickHouse is not unhealthy.
	Waiting bool
	Err     error
}

func (e *Error) Error() string {
	kind := "retryable"
	if e.Permanent {
		kind = "permanent"
	}
	return fmt.Sprintf("clickhouse %s (%s): %v", e.Op, kind, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// IsUncertain reports whether the data may have been stored despite the error.
func (e *Error) IsUncertain() bool { return e.Uncertain }

// IsWaiting reports whether the error only means an earlier insert has not ended yet (see Error.Waiting).
func (e *Error) IsWaiting() bool { return e.Waiting }

// Retryable reports whether the same operation may succeed later.
func (e *Error) Retryable() bool { return !e.Permanent }

// classify wraps err. sent says whether the data left this process, which makes a transport error uncertain.
func classify(op string, err error, sent bool) error {
	if err == nil {
		return nil
	}
	e := &Error{Op: op, Err: err}
	var ex *ch.Exception
	if errors.As(err, &ex) {
		e.Code = ex.Code
		_, e.Permanent = permanentCodes[ex.Code]
		// An exception raised while the server processes a sent block may come after events got the rows (18.16 writes the
		// table before a failing materialized view reports), so the next attempt must check what is stored.
		e.Uncertain = sent
		return e
	}
	e.Uncertain = sent
	return e
}

// IsCode reports whether err carries server exception code.
func IsCode(err error, code int32) bool {
	var ex *ch.Exception
	return errors.As(err, &ex) && ex.Code == code
}
