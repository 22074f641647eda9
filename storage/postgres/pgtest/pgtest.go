// Package pgtest gives integration tests a private Postgres: one database per test binary and one schema per test.
//
// ADTRACKER_TEST_PG_DSN names the server (make test sets it). Without it the tests skip. Main
// creates adtracker_test_<random> on that server (falling back to the named database when the
// user may not CREATE DATABASE) and drops it afterwards; DSN gives each test a fresh schema in
// it, first on search_path, so tests see only their own rows and may run in parallel.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// EnvDSN is the environment variable naming the test server.
const EnvDSN = "ADTRACKER_TEST_PG_DSN"

// SkipMessage is why tests skip without EnvDSN.
const SkipMessage = "set " + EnvDSN + " (make test does) to run against a real Postgres"

var (
	baseDSN  string // the private database for this test binary, "" when tests skip
	setupErr error
)

// Main runs the package's tests inside a private database; call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
func Main(m *testing.M) int {
	// Parse first: a bad flag exits the process inside m.Run, after the database was created
	// and before it could be dropped.
	if !flag.Parsed() {
		flag.Parse()
	}
	admin := os.Getenv(EnvDSN)
	if admin == "" {
		return m.Run()
	}
	dsn, drop, err := createDatabase(admin)
	if err != nil {
		setupErr = err
		return m.Run() // every DSN call fails the test with setupErr
	}
	baseDSN = dsn
	code := m.Run()
	if err := drop(); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
	}
	return code
}

func randomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func createDatabase(admin string) (dsn string, drop func() error, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", nil, fmt.Errorf("pgtest: connecting to %s: %w", EnvDSN, err)
	}
	defer conn.Close(context.Background())
	name := randomName("adtracker_test_")
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42501" { // insufficient_privilege
			// Schemas per test still isolate the tests; only the package shares a database.
			return admin, func() error { return nil }, nil
		}
		return "", nil, fmt.Errorf("pgtest: creating database %s: %w", name, err)
	}
	dsn, err = WithParam(admin, "dbname", name)
	if err != nil {
		return "", nil, err
	}
	drop = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		return err
	}
	return dsn, drop, nil
}

// WithParam sets a connection parameter (dbname, search_path, application_name, ...) in a
// URL or keyword/value DSN.
func WithParam(dsn, key, value string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("pgtest: %s is not a valid URL", EnvDSN)
		}
		if key == "dbname" {
			u.Path = "/" + value
		} else {
			q := u.Query()
			q.Set(key, value)
			u.RawQuery = q.Encode()
		}
		return u.String(), nil
	}
	return dsn + " " + key + "=" + value, nil
}

// DSN returns a connection string for a fresh, empty schema private to t (dropped when t
// ends), or skips t when EnvDSN is unset.
func DSN(t testing.TB) string {
	t.Helper()
	if os.Getenv(EnvDSN) == "" {
		t.Skip(SkipMessage)
	}
	if setupErr != nil {
		t.Fatal(setupErr)
	}
	if baseDSN == "" {
		t.Fatal("pgtest: call pgtest.Main from TestMain")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, baseDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	schema := randomName("t_")
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, baseDSN)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Error(err)
		}
	})
	dsn, err := WithParam(baseDSN, "search_path", schema)
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

// Proxy is a loopback TCP proxy in front of Postgres, so a test can make the server vanish
// (refused connections, dropped sessions) without stopping the shared one.
type Proxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

// NewProxy starts a proxy to the server of dsn and returns the DSN that goes through it.
// It is killed when t ends.
func NewProxy(t testing.TB, dsn string) (*Proxy, string) {
	t.Helper()
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	target := net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln}
	p.wg.Add(1)
	go p.accept(target)
	t.Cleanup(p.Kill)
	addr := ln.Addr().String()
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Del("host")
		q.Del("port")
		u.RawQuery = q.Encode()
		u.Host = addr
		return p, u.String()
	}
	host, port, _ := net.SplitHostPort(addr)
	return p, dsn + " host=" + host + " port=" + port // later keywords win
}

func (p *Proxy) accept(target string) {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(s, c); s.Close() }()
		go func() { _, _ = io.Copy(c, s); c.Close() }()
	}
}

// Kill closes the listening port and every proxied connection: to its clients the server is
// gone and new connections are refused.
func (p *Proxy) Kill() {
	p.ln.Close()
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
