package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
)

// ClickHouseProc is a private clickhouse-server child process on loopback that a test may stop, freeze and restart — the shared
// server from scripts/services.sh must not be disturbed by one test's fault injection.
type ClickHouseProc struct {
	t        testing.TB
	dir      string
	Addr     string
	tcp, web int
	cmd      *exec.Cmd
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// StartClickHouse starts a private server (skipping the test when clickhouse-server is not installed or integration tests are not
// enabled) and stops it when the test ends.
func StartClickHouse(t testing.TB) *ClickHouseProc {
	t.Helper()
	ClickHouseAddr(t) // same opt-in as the shared server
	if _, err := exec.LookPath("clickhouse-server"); err != nil {
		t.Skip("clickhouse-server not installed (scripts/services.sh up installs it)")
	}
	p := &ClickHouseProc{t: t, dir: t.TempDir(), tcp: FreePort(t), web: FreePort(t)}
	p.Addr = "127.0.0.1:" + strconv.Itoa(p.tcp)
	p.Start()
	t.Cleanup(p.Kill)
	return p
}

// Start launches the server on its fixed ports and data directory and waits until it answers.
func (p *ClickHouseProc) Start() {
	p.t.Helper()
	d := p.dir
	p.cmd = exec.Command("clickhouse-server", "--config-file=/etc/clickhouse-server/config.xml", "--",
		"--path="+d+"/", "--tmp_path="+d+"/tmp/", "--user_files_path="+d+"/user_files/", "--format_schema_path="+d+"/format_schemas/",
		"--logger.log="+d+"/server.log", "--logger.errorlog="+d+"/err.log", "--logger.level=warning",
		"--tcp_port="+strconv.Itoa(p.tcp), "--http_port="+strconv.Itoa(p.web), "--interserver_http_port="+strconv.Itoa(FreePort(p.t)),
		"--listen_host=127.0.0.1")
	p.cmd.Dir = d
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := p.ping(); err == nil {
			return
		} else if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(d, "err.log"))
			p.t.Fatalf("clickhouse on %s did not answer: %v\n%s", p.Addr, err, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (p *ClickHouseProc) ping() error {
	conn, err := ch.Open(&ch.Options{Addr: []string{p.Addr}, DialTimeout: time.Second})
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return conn.Ping(ctx)
}

// Kill stops the server with SIGKILL (as a crash would) and reaps it.
func (p *ClickHouseProc) Kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait() // reaps it; the error only reports the kill
	p.cmd = nil
}

// Freeze sends SIGSTOP (slow, not dead); Thaw sends SIGCONT.
func (p *ClickHouseProc) Freeze() error { return p.signal(syscall.SIGSTOP) }

// Thaw resumes a frozen server.
func (p *ClickHouseProc) Thaw() error { return p.signal(syscall.SIGCONT) }

func (p *ClickHouseProc) signal(s syscall.Signal) error {
	if p.cmd == nil || p.cmd.Process == nil {
		return fmt.Errorf("not running")
	}
	return p.cmd.Process.Signal(s)
}
