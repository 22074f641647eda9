package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"golang.org/x/sys/unix"
)

// Cluster is the loopback ClickHouse cluster of scripts/cluster.sh (2 shards x 2 replicas of 18.16 and ZooKeeper), which `make
// test` starts. Nodes maps a node name (s1r1 s1r2 s2r1 s2r2) to its native address.
type Cluster struct {
	Name  string
	Addrs []string
	Nodes map[string]string
}

// ClusterEnv returns the loopback cluster, or skips the test with how to get one. ADTRACKER_TEST_CLUSTER_ADDRS is the comma-separated
// list `scripts/cluster.sh env` prints as CLUSTER_CH_ADDRS, in node order s1r1 s1r2 s2r1 s2r2.
func ClusterEnv(t testing.TB) Cluster {
	t.Helper()
	v := os.Getenv("ADTRACKER_TEST_CLUSTER_ADDRS")
	if v == "" {
		t.Skip("set ADTRACKER_TEST_CLUSTER_ADDRS (make test does, after scripts/cluster.sh up) to run against the loopback cluster")
	}
	lockCluster(t)
	c := Cluster{Name: "adtracker", Addrs: strings.Split(v, ","), Nodes: map[string]string{}}
	if n := os.Getenv("ADTRACKER_TEST_CLUSTER"); n != "" {
		c.Name = n
	}
	for i, name := range []string{"s1r1", "s1r2", "s2r1", "s2r2"} {
		if i < len(c.Addrs) {
			c.Nodes[name] = c.Addrs[i]
		}
	}
	return c
}

// clusterLock is this process's hold on the cluster: go test runs packages as parallel processes, and some cluster tests stop and
// restart nodes (cmd/adtracker, storage/clickhouse) while others run ON CLUSTER migrations (query), which 18.16 cannot finish while
// a node is down ("distributed_ddl_task_timeout ... 1 unfinished hosts"). Tests of one process share the hold, as before; tests of
// different packages take turns.
var clusterLock struct {
	sync.Mutex
	holders int
	f       *os.File
}

// lockCluster holds the cross-process cluster lock (an flock on a file in the temporary directory) until t ends.
func lockCluster(t testing.TB) {
	t.Helper()
	clusterLock.Lock()
	defer clusterLock.Unlock()
	if clusterLock.holders == 0 {
		f, err := os.OpenFile(filepath.Join(os.TempDir(), "adtracker-test-cluster.lock"), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			_ = f.Close()
			t.Fatal(err)
		}
		clusterLock.f = f
	}
	clusterLock.holders++
	t.Cleanup(func() { // registered first, so it runs after the test's other cleanups (the database drop)
		clusterLock.Lock()
		defer clusterLock.Unlock()
		if clusterLock.holders--; clusterLock.holders == 0 {
			_ = clusterLock.f.Close() // closing the only descriptor releases the flock
			clusterLock.f = nil
		}
	})
}

// Database returns a fresh database name for the test and drops it on every node when the test ends (replicated tables are dropped
// with it, which removes their ZooKeeper paths). Migrations create it.
func (c Cluster) Database(t testing.TB) string {
	t.Helper()
	database := Name("adtracker_ct")
	t.Cleanup(func() {
		if os.Getenv("ADTRACKER_TEST_KEEP") != "" {
			t.Logf("kept cluster database %s", database)
			return
		}
		conn, err := ch.Open(&ch.Options{Addr: c.Addrs, DialTimeout: 3 * time.Second})
		if err != nil {
			t.Logf("drop %s: %v", database, err)
			return
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		ctx = ch.Context(ctx, ch.WithSettings(ch.Settings{"distributed_ddl_task_timeout": 60}))
		if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+database+" ON CLUSTER "+c.Name); err != nil {
			t.Logf("drop %s: %v", database, err)
		}
	})
	return database
}

// Stop stops one node through scripts/cluster.sh (by its pid file) and starts it again when the test ends if the test did not.
func (c Cluster) Stop(t testing.TB, node string) {
	t.Helper()
	clusterScript(t, "stop", node)
	t.Cleanup(func() { clusterScript(t, "start", node) })
}

// Start starts a stopped node again and waits until it answers.
func (c Cluster) Start(t testing.TB, node string) { t.Helper(); clusterScript(t, "start", node) }

func clusterScript(t testing.TB, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(RepoRoot(t), "scripts", "cluster.sh"), args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/cluster.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// RepoRoot is the directory holding go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}
