package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/adtracker/adtracker/config"
	"github.com/adtracker/adtracker/internal/testenv"
	"github.com/adtracker/adtracker/storage/postgres/pgtest"
)

// unitFile is a systemd unit or environment file read as key=value lines: comments, blank lines and [Section] headers skipped,
// repeated keys kept in order.
type unitFile [][2]string

func readUnitFile(t *testing.T, path string) unitFile {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var u unitFile
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not key=value", path, line)
		}
		u = append(u, [2]string{k, v})
	}
	return u
}

func (u unitFile) get(key string) string {
	for _, kv := range u {
		if kv[0] == key {
			return kv[1]
		}
	}
	return ""
}

func (u unitFile) all(key string) []string {
	var out []string
	for _, kv := range u {
		if kv[0] == key {
			out = append(out, kv[1])
		}
	}
	return out
}

// deploy/systemd/adtracker.service and its adtracker.env, as an operator installs them on a plain Linux box. systemd-analyze
// verify accepts the unit (with the binary and the environment file where this test has them); the example environment names
// only settings; and the binary started the unit's way — the environment file and the unit's Environment= lines as its whole
// environment, / as its working directory — migrates, serves, takes an event and on SIGTERM stores it in ClickHouse and exits 0
// inside the unit's TimeoutStopSec.
func TestSystemdUnit(t *testing.T) {
	root := testenv.RepoRoot(t)
	unitPath := filepath.Join(root, "deploy", "systemd", "adtracker.service")
	unit := readUnitFile(t, unitPath)
	envFile := readUnitFile(t, filepath.Join(root, "deploy", "systemd", "adtracker.env"))

	// What the unit promises, checked against the code.
	if got := unit.get("ExecStart"); got != "/usr/local/bin/adtracker serve" {
		t.Errorf("ExecStart=%s", got)
	}
	unitEnv := unit.all("Environment")
	if unit.get("StateDirectory") != "adtracker" || !slices.Contains(unitEnv, "ADTRACKER_INGEST_DATA_DIR=/var/lib/adtracker") {
		t.Errorf("the data dir is not the state directory: StateDirectory=%s, Environment=%v", unit.get("StateDirectory"), unitEnv)
	}
	stopSec, err := strconv.Atoi(unit.get("TimeoutStopSec"))
	if err != nil {
		t.Fatalf("TimeoutStopSec=%s: %v", unit.get("TimeoutStopSec"), err)
	}
	drain := defaultDuration(t, "shutdown.timeout")
	if time.Duration(stopSec)*time.Second < drain+10*time.Second {
		t.Errorf("TimeoutStopSec=%d leaves less than 10 s past shutdown.timeout's %s: systemd would kill the drain", stopSec, drain)
	}
	var envVars []string
	for _, kv := range envFile {
		envVars = append(envVars, kv[0]+"="+kv[1])
	}
	if unknown := config.UnknownEnv(append(envVars, unitEnv...)); len(unknown) > 0 {
		t.Errorf("the shipped files name variables that are no setting's: %+v", unknown)
	}

	bin := adtrackerBin(t)
	dir := t.TempDir()
	if analyze, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Error("systemd-analyze not found (Debian's systemd package; make test installs it): the unit is not verified")
	} else {
		envPath := filepath.Join(dir, "adtracker.env")
		if err := os.WriteFile(envPath, []byte(strings.Join(envVars, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(unitPath)
		if err != nil {
			t.Fatal(err)
		}
		local := strings.NewReplacer("/usr/local/bin/adtracker", bin, "/etc/adtracker/adtracker.env", envPath).Replace(string(raw))
		localPath := filepath.Join(dir, "adtracker.service")
		if err := os.WriteFile(localPath, []byte(local), 0o600); err != nil {
			t.Fatal(err)
		}
		// verify exits 0 on unknown keys and unparseable values, which it only prints: any output is a failure too.
		if out, err := exec.Command(analyze, "verify", localPath).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	}

	// Run it as systemd would, against the test's Postgres and ClickHouse.
	dsn := pgtest.DSN(t)
	chAddr, chDB := testenv.ClickHouseDB(t)
	port := testenv.FreePort(t)
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil { // StateDirectoryMode=0700
		t.Fatal(err)
	}
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"} // systemd's default for services
	env = append(append(env, envVars...), unitEnv...)
	env = append(env, // the test's servers and directory instead of the example's
		"ADTRACKER_POSTGRES_DSN="+dsn, "ADTRACKER_CLICKHOUSE_ADDR="+chAddr, "ADTRACKER_CLICKHOUSE_DATABASE="+chDB,
		"ADTRACKER_HTTP_ADDR=127.0.0.1:"+strconv.Itoa(port), "ADTRACKER_INGEST_DATA_DIR="+state)
	run := func(args ...string) *exec.Cmd {
		c := exec.Command(bin, args...)
		c.Env, c.Dir = env, "/"
		return c
	}
	for _, cmd := range []string{"migrate", "seed"} { // the demo ads, so the event below has one
		if out, err := run(cmd).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, out)
		}
	}
	srv := run("serve")
	var logs bytes.Buffer
	srv.Stdout, srv.Stderr = &logs, &logs
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if srv.ProcessState == nil {
			_ = srv.Process.Kill()
			_ = srv.Wait()
		}
		if t.Failed() {
			t.Logf("adtracker serve log:\n%s", logs.String())
		}
	}()
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 60 s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp, err := http.Post(base+"/ads/impression", "application/json",
		strings.NewReader(`{"ad_id":1,"event_id":"0193f0c4-7c1a-7b2e-9c3d-5e6f708192a3","user_agent":"Mozilla/5.0 (X11; Linux x86_64)"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /ads/impression: %d", resp.StatusCode)
	}
	if err := srv.Process.Signal(syscall.SIGTERM); err != nil { // KillSignal=SIGTERM
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("exit code %d after SIGTERM, want 0 (Restart=on-failure would start it again)", ee.ExitCode())
		} else if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Duration(stopSec) * time.Second):
		t.Fatalf("still running %d s after SIGTERM: systemd would SIGKILL it", stopSec)
	}
	conn, err := ch.Open(&ch.Options{Addr: []string{chAddr}, Auth: ch.Auth{Database: chDB}, DialTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var n uint64
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM events WHERE event_id = toUUID('0193f0c4-7c1a-7b2e-9c3d-5e6f708192a3')").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("the event answered 202 before SIGTERM is stored %d times, want once", n)
	}
}

// defaultDuration is the default of a duration setting.
func defaultDuration(t *testing.T, key string) time.Duration {
	t.Helper()
	for _, s := range config.Settings {
		if s.Key == key {
			d, err := time.ParseDuration(s.Default.(string))
			if err != nil {
				t.Fatal(err)
			}
			return d
		}
	}
	t.Fatalf("no setting %s", key)
	return 0
}
