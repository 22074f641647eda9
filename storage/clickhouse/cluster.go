package clickhouse

import (
	"context"
	"fmt"
	"math"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/adtracker/adtracker/ingest/event"
)

// Cluster mode (docs/scaling.md): the same tables by name, but events / ad_stats_* are Distributed tables over Replicated*
// "_local" tables on every shard. This file holds what differs from one server: DDL settings, synchronous distributed inserts and
// the stored-event check that has to read every replica.

// The cluster name is written into DDL (ON CLUSTER cannot be bound), so only plain identifiers are accepted.
var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ddlTimeout bounds how long an ON CLUSTER statement waits for every node. The server default (180 s) makes migrate look hung while
// one node is down; the statement still runs on that node when it returns (ClickHouse keeps it in the DDL queue).
const ddlTimeout = 60

func splitAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// checkCluster fails early, naming the problem, when the cluster is not a valid name or not in the server's remote_servers: the
// alternative is every migration statement failing with "Requested cluster 'x' not found".
func checkCluster(ctx context.Context, c Config) error {
	if !identRE.MatchString(c.Cluster) {
		return fmt.Errorf("clickhouse.cluster %q is not a valid cluster name (letters, digits, underscore)", c.Cluster)
	}
	// The cluster schema writes the database name into ZooKeeper paths as well as into DDL.
	if !identRE.MatchString(c.Database) {
		return fmt.Errorf("clickhouse.database %q: with a cluster the name must be letters, digits and underscores", c.Database)
	}
	conn, err := ch.Open(options(c, "default"))
	if err != nil {
		return fmt.Errorf("clickhouse %s: %w", c.Addr, err)
	}
	defer conn.Close()
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.clusters WHERE cluster = '"+c.Cluster+"'").Scan(&n); err != nil {
		return fmt.Errorf("clickhouse %s: %w", c.Addr, err)
	}
	if n == 0 {
		return fmt.Errorf("clickhouse.cluster %q is not in remote_servers of %s (SELECT cluster FROM system.clusters lists the known ones)", c.Cluster, c.Addr)
	}
	return nil
}

// ddlContext bounds ON CLUSTER statements; 18.16 has no SETTINGS clause on DDL, so the setting travels with the query.
func ddlContext(ctx context.Context, cluster string) context.Context {
	if cluster == "" {
		return ctx
	}
	return ch.Context(ctx, ch.WithSettings(ch.Settings{"distributed_ddl_task_timeout": ddlTimeout}))
}

// ddlError explains the one cluster DDL failure an operator sees in normal operation: a node down while migrate runs.
func ddlError(err error) error {
	if IsCode(err, 159) {
		return fmt.Errorf("%w (a node did not run the statement within %d s: it runs it when it is back; run migrate again once every node is up)", err, ddlTimeout)
	}
	return err
}

// insertContext makes an insert into the Distributed events table synchronous: without insert_distributed_sync the server answers
// once the rows sit in a queue file on the receiving node, so a returned insert would not mean stored, and a shard that is down
// would be invisible to the pipeline. insert_distributed_timeout follows the caller's deadline so a slow shard fails the insert
// (the batch spills) instead of blocking the inserter.
func insertContext(ctx context.Context, cluster string) context.Context {
	if cluster == "" {
		return ctx
	}
	settings := ch.Settings{"insert_distributed_sync": 1}
	if dl, ok := ctx.Deadline(); ok {
		settings["insert_distributed_timeout"] = max(1, int(math.Ceil(time.Until(dl).Seconds())))
	}
	return ch.Context(ctx, ch.WithSettings(settings))
}

// replicaSet holds one small pool per replica of the cluster. Reading through the Distributed table reads one replica per shard,
// and a replica that has not fetched a part yet (normal lag, or catching up after a restart) would report an acknowledged event as
// missing — the replay would then store it twice. A synchronously inserted row is on at least the replica that wrote it, so the
// union over every replica is exact. (clusterAllReplicas() would say this in SQL; 18.16 does not have it.)
type replicaSet struct {
	mu    sync.Mutex
	conns []replica
}

type replica struct {
	addr  string
	shard uint32
	conn  driver.Conn
}

// closeAll closes every pool; the next replicaConns opens them again from system.clusters.
func (r *replicaSet) closeAll() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.conn.Close()
	}
	r.conns = nil
}

// replicaConns returns a pool per replica in rs, opening them on first use from system.clusters (in shard, then replica order). Two
// sets use it: db.replicas, for the stored-event check and settle (only batches whose fate is unknown take those paths), and
// db.ddl, cluster migrate's, closed when Migrate returns.
func (db *DB) replicaConns(ctx context.Context, rs *replicaSet) ([]replica, error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if len(rs.conns) > 0 {
		return rs.conns, nil
	}
	rows, err := db.Conn.Query(ctx, "SELECT shard_num, host_name, port FROM system.clusters WHERE cluster = '"+db.cfg.Cluster+"' ORDER BY shard_num, replica_num")
	if err != nil {
		return nil, classify("list replicas", err, false)
	}
	var addrs []replica
	for rows.Next() {
		var host string
		var port uint16
		var shard uint32
		if err := rows.Scan(&shard, &host, &port); err != nil {
			rows.Close()
			return nil, classify("list replicas", err, false)
		}
		addrs = append(addrs, replica{addr: net.JoinHostPort(host, strconv.Itoa(int(port))), shard: shard})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, classify("list replicas", err, false)
	}
	if len(addrs) == 0 {
		return nil, &Error{Op: "list replicas", Err: fmt.Errorf("cluster %s has no replicas in system.clusters", db.cfg.Cluster)}
	}
	var conns []replica
	for _, r := range addrs {
		c := db.cfg
		c.Addr, c.MaxOpenConns = r.addr, 2
		conn, err := ch.Open(options(c, db.Database)) // lazy: no connection is made until the first query
		if err != nil {
			for _, r := range conns {
				r.conn.Close()
			}
			return nil, classify("open replica "+r.addr, err, false)
		}
		r.conn = conn
		conns = append(conns, r)
	}
	rs.conns = conns
	return conns, nil
}

// storedOnCluster runs the stored-event queries (with %s for the table) on events_local of every replica and unions what they find.
// A replica that cannot answer is tolerated only when another replica of its shard provably holds everything the shard
// acknowledged (caughtUp); otherwise the check fails, retryably, naming the replica — the batch waits rather than risk a duplicate.
func (db *DB) storedOnCluster(ctx context.Context, queries []string, out map[event.UUID]struct{}) error {
	targets, err := db.replicaConns(ctx, db.replicas)
	if err != nil {
		return err
	}
	failed := map[uint32]error{}
	answered := map[uint32][]replica{}
	for _, r := range targets {
		var rerr error
		for _, q := range queries {
			if rerr = storedOn(ctx, r, fmt.Sprintf(q, "events_local"), out); rerr != nil {
				break
			}
		}
		if rerr != nil {
			if failed[r.shard] == nil {
				failed[r.shard] = rerr
			}
			continue
		}
		answered[r.shard] = append(answered[r.shard], r)
	}
	for shard, ferr := range failed {
		ok := false
		for _, r := range answered[shard] {
			if ok, err = caughtUp(ctx, r); err == nil && ok {
				break
			}
		}
		if !ok {
			// The next check lists the replicas again: an operator who removes a dead replica from remote_servers unblocks the
			// replay without restarting this node.
			db.replicas.closeAll()
			return fmt.Errorf("%w (no other replica of shard %d is known to hold all of its rows)", ferr, shard)
		}
	}
	return nil
}

// caughtUp reports whether r has every part any replica of its shard committed: a replica commits an inserted part together with
// a GET_PART entry in the shard's shared ZooKeeper log, so a replica that has pulled the whole log (no entry at or past its
// log_pointer) and has no fetch left in its queue holds every acknowledged row, including those of a replica that is now down.
// It is asked after that replica's rows were read; anything committed after our uncertain insert is irrelevant to it.
func caughtUp(ctx context.Context, r replica) (bool, error) {
	var zkPath string
	var pointer uint64
	var inserts uint32
	var readonly uint8
	err := r.conn.QueryRow(ctx, "SELECT zookeeper_path, log_pointer, inserts_in_queue, is_readonly FROM system.replicas WHERE database = currentDatabase() AND table = 'events_local'").
		Scan(&zkPath, &pointer, &inserts, &readonly)
	if err != nil {
		return false, err
	}
	if inserts > 0 || readonly != 0 {
		return false, nil
	}
	var pending uint64
	// Log entries are named log-0000000042; the ones at or past the pointer are not in this replica's queue yet.
	err = r.conn.QueryRow(ctx, "SELECT count() FROM system.zookeeper WHERE path = "+quoteString(zkPath+"/log")+
		" AND toUInt64OrZero(substring(name, 5)) >= "+strconv.FormatUint(pointer, 10)).Scan(&pending)
	if err != nil {
		return false, err
	}
	return pending == 0, nil
}
