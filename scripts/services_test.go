package scripts

import (
	"errors"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// services runs scripts/services.sh with args and extra environment; it returns the output and the exit code.
func services(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{"services.sh"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("services.sh %v: %v\n%s", args, err, out)
	return "", 0
}

func TestServicesEnvCarriesThePorts(t *testing.T) {
	cmd := exec.Command("bash", "-c", `eval "$(bash services.sh env)"; echo "$ADTRACKER_POSTGRES_DSN|$ADTRACKER_CLICKHOUSE_ADDR|$CH_HTTP_PORT"`)
	cmd.Env = append(os.Environ(), "DATA_DIR="+t.TempDir(), "PG_PORT=15999", "CH_TCP_PORT=19998", "CH_HTTP_PORT=18997")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := "postgres://adtracker:adtracker@127.0.0.1:15999/adtracker?sslmode=disable|127.0.0.1:19998|18997\n"
	if string(out) != want {
		t.Fatalf("env gave %q, want %q", out, want)
	}
}

// otherServers are the real Postgres and ClickHouse of the test environment: servers that are not the ones of a fresh DATA_DIR.
func otherServers(t *testing.T) (pgPort, chPort string) {
	t.Helper()
	dsn, chAddr := os.Getenv("ADTRACKER_TEST_PG_DSN"), os.Getenv("ADTRACKER_TEST_CH_ADDR")
	if dsn == "" || chAddr == "" {
		t.Skip("set ADTRACKER_TEST_PG_DSN and ADTRACKER_TEST_CH_ADDR (make test does) to check status against servers of another data dir")
	}
	if _, err := exec.LookPath("clickhouse-server"); err != nil {
		t.Skip("clickhouse-server not installed")
	}
	u, err := url.Parse(dsn)
	if err != nil || u.Port() == "" {
		t.Fatalf("ADTRACKER_TEST_PG_DSN %q has no port", dsn)
	}
	_, chPort, err = net.SplitHostPort(chAddr)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port(), chPort
}

// A server of someone else answering on the asked port is not "running": the data dir has no server at all.
func TestServicesStatusIgnoresAnotherServerOnThePort(t *testing.T) {
	pgPort, chPort := otherServers(t)
	out, rc := services(t, []string{"DATA_DIR=" + t.TempDir(), "PG_PORT=" + pgPort, "CH_TCP_PORT=" + chPort}, "status")
	if rc != 3 {
		t.Fatalf("exit %d, want 3 (not running)\n%s", rc, out)
	}
	for _, want := range []string{"postgres   stopped; port " + pgPort + " is another server's",
		"clickhouse stopped; port " + chPort + " is another server's"} {
		if !strings.Contains(out, want) {
			t.Fatalf("status lacks %q:\n%s", want, out)
		}
	}
}

// The case: the data dir's servers run on moved ports (PG_PORT=…), and status is asked about the default ports where
// other servers answer. It must name the port its servers really use, not say "running".
func TestServicesStatusNamesTheRealPortOfItsServers(t *testing.T) {
	pgPort, chPort := otherServers(t)
	dir := t.TempDir()
	// Stand-ins for the data dir's servers: live processes whose command line names the server, as pid_of checks, with the pid
	// files and config a real start writes.
	fake := func(name string) int {
		cmd := exec.Command("sleep", "300")
		cmd.Args[0] = name
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd.Process.Pid
	}
	write := func(path, s string) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "postgres/data/postmaster.pid"),
		strconv.Itoa(fake("postgres"))+"\n"+dir+"/postgres/data\n1765000000\n15998\n"+dir+"/postgres/run\n127.0.0.1\n")
	write(filepath.Join(dir, "clickhouse/clickhouse.pid"), strconv.Itoa(fake("clickhouse-server"))+"\n")
	write(filepath.Join(dir, "clickhouse/etc/config.xml"), "<yandex>\n    <tcp_port>19997</tcp_port>\n</yandex>\n")

	out, rc := services(t, []string{"DATA_DIR=" + dir, "PG_PORT=" + pgPort, "CH_TCP_PORT=" + chPort}, "status")
	if rc != 3 {
		t.Fatalf("exit %d, want 3 (not running on the asked ports)\n%s", rc, out)
	}
	for _, want := range []string{"postgres   running on port 15998, not " + pgPort, "clickhouse running on port 19997, not " + chPort} {
		if !strings.Contains(out, want) {
			t.Fatalf("status lacks %q:\n%s", want, out)
		}
	}
	// up must refuse rather than hand the binary the other servers' address.
	out, rc = services(t, []string{"DATA_DIR=" + dir, "PG_PORT=" + pgPort, "CH_TCP_PORT=" + chPort}, "up", "postgres")
	if rc == 0 || !strings.Contains(out, "already runs on port 15998, not "+pgPort+": set PG_PORT=15998") {
		t.Fatalf("up: exit %d, want a refusal naming PG_PORT=15998:\n%s", rc, out)
	}
}
