#!/usr/bin/env bash
# A ClickHouse cluster on loopback for developing and testing adtracker's scale-out mode (docs/scaling.md): one standalone
# ZooKeeper 3.8 (Debian's `zookeeper`) and four ClickHouse 18.16 servers, 2 shards x 2 replicas, in a remote_servers cluster
# named `adtracker`, each with its own ports, data directory and macros. Installs the packages when missing.
#
#   scripts/cluster.sh up|down|status|env|verify
#   scripts/cluster.sh stop|start NODE
#
#   up      start what is not running and wait until every server answers; a no-op when all run
#   down    stop the four servers, then ZooKeeper - only processes whose pid files are in CLUSTER_DIR
#   status  one line per process; exit 3 when something is not running
#   stop    stop one ClickHouse node (s1r1 s1r2 s2r1 s2r2) by its pid file; start starts it again (tests of a replica outage)
#   env     print the addresses as shell assignments (eval "$(scripts/cluster.sh env)") for tests
#   verify  `up`, then check replication, ON CLUSTER DDL, Distributed inserts and reads with the cluster form of our
#           migrations (migrations/clickhouse/cluster), a replica stopped and restarted mid-load, block deduplication, and
#           per-ad answers against a single-node copy of the same data, in throw-away databases; exit 1 on a failed check
#
# Environment:
#   CLUSTER_DIR        data, configs, logs and pid files (<repo>/.data/cluster); `rm -rf` it, after `down`, to start empty
#   ZK_PORT            ZooKeeper client port (12181)
#   CLUSTER_PORT_BASE  node n (1..4 = s1r1 s1r2 s2r1 s2r2) listens on native TCP BASE+n, HTTP BASE+100+n and
#                      interserver (replication) HTTP BASE+200+n; default 19100 -> 19101..19104, 19201..19204, 19301..19304
#
# Everything binds 127.0.0.1. Runs as root (apt-get; ClickHouse's data directories). The shared servers of
# scripts/services.sh (5432, 9000) are not touched.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLUSTER_DIR="${CLUSTER_DIR:-$ADT_REPO/.data/cluster}"
ZK_PORT="${ZK_PORT:-12181}"
CLUSTER_PORT_BASE="${CLUSTER_PORT_BASE:-19100}"
CLUSTER_NAME=adtracker

# Node names double as the {replica} macro; their position gives the shard and the ports.
NODES=(s1r1 s1r2 s2r1 s2r2)

usage() {
	echo "usage: $0 up|down|status|env|verify, or $0 stop|start NODE" >&2
	exit 2
}
case "${1:-}" in
stop | start) [ $# -eq 2 ] || usage ;;
*) [ $# -eq 1 ] || usage ;;
esac
cmd="$1"

mkdir -p "$CLUSTER_DIR"
CLUSTER_DIR="$(cd "$CLUSTER_DIR" && pwd)"
ZK_DIR="$CLUSTER_DIR/zookeeper"

node_index() { # s2r1 -> 3
	local i
	for i in "${!NODES[@]}"; do
		if [ "${NODES[$i]}" = "$1" ]; then
			echo $((i + 1))
			return
		fi
	done
	die "unknown node $1"
}
node_tcp() { echo $((CLUSTER_PORT_BASE + $(node_index "$1"))); }
node_http() { echo $((CLUSTER_PORT_BASE + 100 + $(node_index "$1"))); }
node_interserver() { echo $((CLUSTER_PORT_BASE + 200 + $(node_index "$1"))); }
node_shard() { printf '%02d\n' "${1:1:1}"; } # s2r1 -> 02
node_dir() { echo "$CLUSTER_DIR/$1"; }

# ---------------------------------------------------------------------------------------------
# ZooKeeper: the JVM is started directly (not through zkServer.sh, which daemonizes via nohup and
# reads /etc/zookeeper/conf) so that $! is the server's own pid and the config is ours alone.

ZK_JARS=/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar

ensure_zookeeper() {
	# zookeeper.jar's manifest Class-Path names its other dependencies (netty, jute, ...) by absolute path.
	if [ ! -r /usr/share/java/zookeeper.jar ] || ! command -v java >/dev/null; then
		apt_install zookeeper
	fi
	local j
	for j in ${ZK_JARS//:/ }; do
		[ -r "$j" ] || die "$j missing after installing zookeeper"
	done
}

zk_pid() { pid_of "$ZK_DIR/zookeeper.pid" "QuorumPeerMain $ZK_DIR/zoo.cfg"; }

# zk_4lw WORD sends a four-letter command (whitelisted in zoo.cfg) and prints the answer.
zk_4lw() {
	# shellcheck disable=SC2016 # $1 and $2 are the inner shell's arguments
	timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf %s "$2" >&3 && cat <&3' _ "$ZK_PORT" "$1" 2>/dev/null
}

# ruok answers imok before the server loads its database; srvr says "Mode: standalone" once it serves requests.
zk_answers() { zk_4lw srvr | grep -q '^Mode: standalone'; }

zk_state() {
	if ! zk_pid >/dev/null; then
		echo stopped
	elif zk_answers; then
		echo running
	else
		echo "not answering"
	fi
}

zk_write_config() {
	mkdir -p "$ZK_DIR/data"
	# admin.enableServer=false: the AdminServer would take 8080 (adtracker's port). No JMX port either.
	# autopurge: keep the snapshot/transaction log directory from growing for the life of the cluster.
	cat >"$ZK_DIR/zoo.cfg" <<EOF
# Written by scripts/cluster.sh on every start; edits here are lost.
tickTime=2000
dataDir=$ZK_DIR/data
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,mntr,stat
maxClientCnxns=0
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
EOF
	cat >"$ZK_DIR/log4j.properties" <<EOF
log4j.rootLogger=INFO,ROLLINGFILE
log4j.appender.ROLLINGFILE=org.apache.log4j.RollingFileAppender
log4j.appender.ROLLINGFILE.File=$ZK_DIR/zookeeper.log
log4j.appender.ROLLINGFILE.MaxFileSize=10MB
log4j.appender.ROLLINGFILE.MaxBackupIndex=3
log4j.appender.ROLLINGFILE.layout=org.apache.log4j.PatternLayout
log4j.appender.ROLLINGFILE.layout.ConversionPattern=%d{ISO8601} %-5p [%t:%C{1}@%L] - %m%n
EOF
}

zk_start() {
	local pid i off
	ensure_zookeeper
	if ! pid="$(zk_pid)"; then
		port_listening "$ZK_PORT" && die "port $ZK_PORT on 127.0.0.1 is taken by another process; set ZK_PORT to a free one"
		zk_write_config
		off="$(file_size "$ZK_DIR/zookeeper.log")"
		log "starting zookeeper in $ZK_DIR on 127.0.0.1:$ZK_PORT"
		setsid java -Xms64m -Xmx512m -XX:+UseSerialGC \
			-Dlog4j.configuration="file:$ZK_DIR/log4j.properties" -Dzookeeper.log.dir="$ZK_DIR" \
			-cp "$ZK_JARS" org.apache.zookeeper.server.quorum.QuorumPeerMain "$ZK_DIR/zoo.cfg" \
			</dev/null >"$ZK_DIR/stdout.log" 2>&1 9>&- &
		pid=$!
		echo "$pid" >"$ZK_DIR/zookeeper.pid"
	fi
	for ((i = 0; i < ADT_START_TIMEOUT * 5; i++)); do
		zk_answers && return 0
		if ! kill -0 "$pid" 2>/dev/null; then
			show_log_tail "$ZK_DIR/stdout.log" "$ZK_DIR/zookeeper.log:${off:-0}"
			die "zookeeper ($ZK_DIR) exited during start"
		fi
		sleep 0.2
	done
	show_log_tail "$ZK_DIR/stdout.log" "$ZK_DIR/zookeeper.log:${off:-0}"
	die "zookeeper ($ZK_DIR, pid $pid) did not serve on 127.0.0.1:$ZK_PORT within ${ADT_START_TIMEOUT}s"
}

zk_stop() {
	local pid
	if pid="$(zk_pid)"; then
		stop_pid "$pid" "zookeeper ($ZK_DIR)"
	fi
	rm -f "$ZK_DIR/zookeeper.pid"
}

# ---------------------------------------------------------------------------------------------
# ClickHouse nodes

# cluster_xml NODE prints the node's config.d file: the cluster, ZooKeeper, the ON CLUSTER queue
# and the node's macros. Root <yandex>: 18.16 needs it.
cluster_xml() {
	local node="$1" n s
	cat <<EOF
<?xml version="1.0"?>
<!-- Written by scripts/cluster.sh on every \`up\`; edits here are lost. -->
<yandex>
    <remote_servers>
        <$CLUSTER_NAME>
EOF
	for s in 1 2; do
		# internal_replication: a Distributed insert writes each block to ONE replica of the shard and
		# ReplicatedMergeTree copies it to the other; false would write every replica itself and, with
		# replicated tables, store the rows twice.
		printf '            <shard>\n                <internal_replication>true</internal_replication>\n'
		for n in "${NODES[@]}"; do
			[ "${n:1:1}" = "$s" ] || continue
			printf '                <replica><host>127.0.0.1</host><port>%s</port></replica>\n' "$(node_tcp "$n")"
		done
		printf '            </shard>\n'
	done
	cat <<EOF
        </$CLUSTER_NAME>
    </remote_servers>
    <zookeeper>
        <node><host>127.0.0.1</host><port>$ZK_PORT</port></node>
        <session_timeout_ms>30000</session_timeout_ms>
    </zookeeper>
    <!-- The queue ON CLUSTER statements go through; each node runs the entries that name it. -->
    <distributed_ddl>
        <path>/clickhouse/task_queue/ddl</path>
    </distributed_ddl>
    <macros>
        <cluster>$CLUSTER_NAME</cluster>
        <shard>$(node_shard "$node")</shard>
        <replica>$node</replica>
    </macros>
</yandex>
EOF
}

# node_write_config NODE replaces config.d/cluster.xml only when it changed: a running server
# reloads remote_servers on a file change, and an unchanged file should not trigger that.
node_write_config() {
	local node="$1" dir f
	dir="$(node_dir "$node")"
	f="$dir/etc/config.d/cluster.xml"
	mkdir -p "$dir/etc/config.d"
	cluster_xml "$node" >"$f.new"
	if cmp -s "$f.new" "$f"; then rm -f "$f.new"; else mv "$f.new" "$f"; fi
}

node_up() {
	local node="$1" dir
	dir="$(node_dir "$node")"
	node_write_config "$node"
	[ "$(ch_state "$dir" "$(node_tcp "$node")")" = running ] ||
		log "starting clickhouse $node in $dir on 127.0.0.1:$(node_tcp "$node") (http $(node_http "$node"), interserver $(node_interserver "$node"))"
	CH_INTERSERVER_PORT="$(node_interserver "$node")" ch_start "$dir" "$(node_tcp "$node")" "$(node_http "$node")"
	clickhouse-client --host 127.0.0.1 --port "$(node_tcp "$node")" -q 'CREATE DATABASE IF NOT EXISTS adtracker'
}

# ---------------------------------------------------------------------------------------------

addrs() {
	local n out=()
	for n in "${NODES[@]}"; do out+=("127.0.0.1:$(node_tcp "$n")"); done
	(IFS=,; echo "${out[*]}")
}

up() {
	local n pids=() rc=0 i
	ensure_clickhouse
	zk_start
	# The four servers start in parallel (each takes a few seconds, mostly waiting); each ch_start
	# dies on its own error, so any non-zero exit fails `up`.
	for n in "${NODES[@]}"; do
		node_up "$n" &
		pids+=($!)
	done
	for i in "${!pids[@]}"; do
		wait "${pids[$i]}" || { rc=$?; log "node ${NODES[$i]} failed to start"; }
	done
	[ "$rc" -eq 0 ] || die "cluster not up; \`$0 status\` shows what runs, logs are in $CLUSTER_DIR/*/log"
	status
}

down() {
	local n pids=() p rc=0
	# In parallel: an 18.16 server takes ~2 s to exit after SIGTERM, and up to ~10 s while peers hold idle
	# connections to it. The servers go first so they do not spin on a vanished ZooKeeper meanwhile.
	for n in "${NODES[@]}"; do
		ch_stop "$(node_dir "$n")" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || rc=$?; done
	[ "$rc" -eq 0 ] || die "a clickhouse server did not stop; \`$0 status\` shows which"
	zk_stop
	echo "cluster stopped"
}

# ---------------------------------------------------------------------------------------------
# verify: the checks docs/scaling.md reports, runnable again on any machine.

chq() { # chq NODE SQL...: run SQL (several statements allowed) on a node
	local node="$1"
	shift
	clickhouse-client --host 127.0.0.1 --port "$(node_tcp "$node")" -n -q "$*"
}

# apply_sql NODE FILE DB: a cluster migration with the runner's substitutions.
apply_sql() {
	sed -e "s/\${CLUSTER}/$CLUSTER_NAME/g" -e "s/\${DATABASE}/$3/g" "$2" |
		clickhouse-client --host 127.0.0.1 --port "$(node_tcp "$1")" -n >/dev/null
}

verify_failed=0
check() { # check NAME GOT WANT
	if [ "$2" = "$3" ]; then
		printf 'ok    %s (%s)\n' "$1" "$2"
	else
		printf 'FAIL  %s: got %s, want %s\n' "$1" "$2" "$3"
		verify_failed=1
	fi
}

EVENT_COLS="event_id, type, ad_id, event_time, receive_time, ip, user_agent, playback_ms, viewer_id, session_id"
ROLLUP_TOTAL="sum(impressions + clicks + starts + first_quartiles + midpoints + third_quartiles + completes + skips + pauses + resumes + mutes + unmutes + errors)"
# Per-ad figures the analytics API derives from the rollups: exact ones only. quantilesTDigest is left out on purpose: its
# state depends on how rows were split into blocks and merged, so it differs between any two layouts of the same data.
PER_AD="SELECT ad_id, sum(impressions), sum(clicks), sum(completes), sum(skips), sum(errors), sum(playback_ms_sum), sum(playback_count), uniqMerge(viewers) FROM %s GROUP BY ad_id ORDER BY ad_id"

verify() {
	local db single src n i t0 rows got want sh1 sh2 a b
	up >/dev/null
	db="cluster_check_$(date +%s)"
	single="${db}_single"
	# The staging table lives on s1r1; other nodes read it through remote(), so inserts can enter the cluster anywhere.
	src="remote('127.0.0.1:$(node_tcp s1r1)', $single, src)"
	echo "verify: databases $db (cluster) and $single (single-node copy on s1r1); ZooKeeper 127.0.0.1:$ZK_PORT"
	echo "server: $(chq s1r1 'SELECT version()'), zookeeper: $(zk_4lw srvr | sed -n 's/^Zookeeper version: \([^-,]*\).*/\1/p')"

	# 1. ON CLUSTER DDL (the distributed_ddl queue in ZooKeeper), then the cluster migrations.
	chq s1r1 "CREATE DATABASE IF NOT EXISTS $db ON CLUSTER $CLUSTER_NAME" >/dev/null
	apply_sql s1r1 "$ADT_REPO/migrations/clickhouse/cluster/0001_events.sql" "$db"
	apply_sql s1r1 "$ADT_REPO/migrations/clickhouse/cluster/0002_ad_rollups.sql" "$db"
	for n in "${NODES[@]}"; do
		check "ON CLUSTER created the 8 tables on $n" "$(chq "$n" "SELECT count() FROM system.tables WHERE database = '$db'")" 8
	done

	# A single-node copy with the shipped migrations, and a staging table both are filled from.
	chq s1r1 "CREATE DATABASE $single"
	cat "$ADT_REPO"/migrations/clickhouse/0001_events.sql "$ADT_REPO"/migrations/clickhouse/0002_ad_rollups.sql |
		clickhouse-client --host 127.0.0.1 --port "$(node_tcp s1r1)" -d "$single" -n
	chq s1r1 "CREATE TABLE $single.src ENGINE = MergeTree() ORDER BY n AS
		SELECT number AS n, generateUUIDv4() AS event_id,
		  ['impression','click','start','first_quartile','midpoint','third_quartile','complete','skip','pause','resume','mute','unmute','error'][1 + intHash32(number) % 13] AS type,
		  1 + intHash64(number) % 100 AS ad_id,
		  toDateTime('2026-01-01 00:00:00', 'UTC') + (number % 7200) * 30 AS event_time, event_time AS receive_time,
		  toFixedString(unhex(concat('00000000000000000000FFFF0A00', hex(toUInt16(number % 65536)))), 16) AS ip, 'ua' AS user_agent,
		  toUInt32(number % 5 * 1000) AS playback_ms, if(number % 3 = 0, '', concat('v', toString(number % 5000))) AS viewer_id,
		  concat('s', toString(number % 20000)) AS session_id
		FROM numbers(201000)"

	# 2. Replication inside a shard: insert on one replica, read on the other (a scratch table, so the events tables
	# hold only what the later steps count).
	chq s1r1 "CREATE TABLE $db.repl_check ON CLUSTER $CLUSTER_NAME (n UInt64) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/$db/repl_check', '{replica}') ORDER BY n" >/dev/null
	chq s1r1 "INSERT INTO $db.repl_check SELECT number FROM numbers(1000)"
	chq s2r2 "INSERT INTO $db.repl_check SELECT number FROM numbers(7)"
	chq s1r2 "SYSTEM SYNC REPLICA $db.repl_check"
	chq s2r1 "SYSTEM SYNC REPLICA $db.repl_check"
	check "rows inserted on s1r1 readable on s1r2, on s2r2 readable on s2r1" \
		"$(chq s1r2 "SELECT count() FROM $db.repl_check") $(chq s2r1 "SELECT count() FROM $db.repl_check")" "1000 7"
	chq s1r1 "DROP TABLE $db.repl_check ON CLUSTER $CLUSTER_NAME" >/dev/null

	# 3. A synchronous Distributed insert: every row stored when it returns, each ad on exactly one shard.
	chq s2r2 "SET insert_distributed_sync = 1; INSERT INTO $db.events ($EVENT_COLS) SELECT $EVENT_COLS FROM $src WHERE n < 100000 ORDER BY n"
	check "Distributed sync insert: rows readable at once" "$(chq s1r1 "SELECT count() FROM $db.events")" 100000
	sh1="$(chq s1r1 "SELECT uniqExact(ad_id) FROM $db.events_local")"
	sh2="$(chq s2r1 "SELECT uniqExact(ad_id) FROM $db.events_local")"
	check "ads split over both shards, none on both (shard1 $sh1 + shard2 $sh2 ads)" "$([ "$sh1" -gt 0 ] && [ "$sh2" -gt 0 ] && echo $((sh1 + sh2)))" 100
	check "shard = cityHash64(ad_id) % 2 for every row" "$(chq s1r1 "SELECT countIf(cityHash64(ad_id) % 2 != 0) FROM $db.events_local") $(chq s2r1 "SELECT countIf(cityHash64(ad_id) % 2 != 1) FROM $db.events_local")" "0 0"

	# 4. Replica SIGTERMed mid-load, restarted, catches up.
	local t_stop t_down t_start
	t0=$SECONDS
	for i in $(seq 0 19); do
		if [ "$i" -eq 5 ]; then
			t_stop=$SECONDS
			ch_stop "$(node_dir s1r2)"
			t_stop=$((SECONDS - t_stop))
			t_down=$SECONDS
		fi
		if [ "$i" -eq 15 ]; then
			t_down=$((SECONDS - t_down))
			t_start=$SECONDS
			node_up s1r2 2>/dev/null
			t_start=$((SECONDS - t_start))
		fi
		chq s2r1 "SET insert_distributed_sync = 1; INSERT INTO $db.events ($EVENT_COLS) SELECT $EVENT_COLS FROM $src WHERE n >= $((100000 + i * 5000)) AND n < $((105000 + i * 5000)) ORDER BY n"
	done
	check "20 inserts, s1r2 down for 10 of them: all rows stored" "$(chq s2r1 "SELECT count() FROM $db.events")" 200000
	echo "info  load $((SECONDS - t0)) s: SIGTERM to exit ${t_stop} s, 10 inserts with s1r2 down ${t_down} s, restart ${t_start} s"
	for t in events_local ad_stats_minute_local ad_stats_hour_local; do chq s1r2 "SYSTEM SYNC REPLICA $db.$t"; done
	check "s1r2 caught up: events_local rows equal s1r1's" "$(chq s1r2 "SELECT count() FROM $db.events_local")" "$(chq s1r1 "SELECT count() FROM $db.events_local")"
	for t in ad_stats_minute_local ad_stats_hour_local; do
		check "s1r2 caught up: $t events equal s1r1's" "$(chq s1r2 "SELECT $ROLLUP_TOTAL FROM $db.$t")" "$(chq s1r1 "SELECT $ROLLUP_TOTAL FROM $db.$t")"
	done
	check "rollups through Distributed count every event" "$(chq s2r2 "SELECT $ROLLUP_TOTAL FROM $db.ad_stats_minute") $(chq s2r2 "SELECT $ROLLUP_TOTAL FROM $db.ad_stats_hour")" "200000 200000"

	# 5. Per-ad answers equal a single node's for the same events.
	chq s1r1 "INSERT INTO $single.events ($EVENT_COLS) SELECT $EVENT_COLS FROM $single.src WHERE n < 200000 ORDER BY n"
	for t in ad_stats_minute ad_stats_hour; do
		# shellcheck disable=SC2059
		a="$(chq s1r1 "$(printf "$PER_AD" "$single.$t")" | md5sum)"
		# shellcheck disable=SC2059
		b="$(chq s2r2 "$(printf "$PER_AD" "$db.$t")" | md5sum)"
		check "per-ad $t through Distributed = single node (md5 of 100 rows)" "${b%% *}" "${a%% *}"
	done

	# 6. A retried identical block (an insert whose answer was lost, sent again) is dropped by each shard's deduplication
	# (block hashes kept in ZooKeeper for the last replicated_deduplication_window=100 blocks), and so are its rollup rows.
	# Reads go through Distributed tables, which pick one replica per shard: each replica first fetches what the inserting node
	# wrote (replication is asynchronous), and rollups are compared by the events they count, not by rows, which merges change.
	sync_all() { local n t; for n in "${NODES[@]}"; do for t in events_local ad_stats_minute_local; do chq "$n" "SYSTEM SYNC REPLICA $db.$t"; done; done; }
	chq s1r2 "SET insert_distributed_sync = 1; INSERT INTO $db.events ($EVENT_COLS) SELECT $EVENT_COLS FROM $src WHERE n >= 200000 ORDER BY n"
	sync_all
	rows="$(chq s1r1 "SELECT $ROLLUP_TOTAL FROM $db.ad_stats_minute")"
	check "a new block of 1000 events stored" "$(chq s1r1 "SELECT count() FROM $db.events")" 201000
	chq s2r1 "SET insert_distributed_sync = 1; INSERT INTO $db.events ($EVENT_COLS) SELECT $EVENT_COLS FROM $src WHERE n >= 200000 ORDER BY n"
	sync_all
	check "the same block inserted again (through another node): events unchanged" "$(chq s1r1 "SELECT count() FROM $db.events")" 201000
	check "the same block inserted again: rollups unchanged" "$(chq s1r1 "SELECT $ROLLUP_TOTAL FROM $db.ad_stats_minute")" "$rows"

	# ... but different events whose rollup rows come out identical are all counted: the views' inserts into the
	# replicated rollups are not deduplicated against each other.
	for i in 1 2 3; do
		chq s2r2 "SET insert_distributed_sync = 1; INSERT INTO $db.events ($EVENT_COLS) SELECT generateUUIDv4(), 'impression', 5000,
			toDateTime('2026-02-01 10:00:05', 'UTC'), toDateTime('2026-02-01 10:00:05', 'UTC'), toFixedString('', 16), 'ua', 0, 'viewer-x', 's'"
	done
	check "3 events with identical rollup rows: 3 impressions in both rollups" \
		"$(chq s1r1 "SELECT sum(impressions) FROM $db.ad_stats_minute WHERE ad_id = 5000") $(chq s1r1 "SELECT sum(impressions) FROM $db.ad_stats_hour WHERE ad_id = 5000")" "3 3"

	# 7. Without insert_distributed_sync the insert returns before remote shards have the rows.
	got="$(chq s1r1 "INSERT INTO $db.events ($EVENT_COLS) SELECT generateUUIDv4(), type, ad_id, event_time, receive_time, ip, user_agent, playback_ms, viewer_id, session_id FROM $single.src WHERE n < 50000; SELECT count() FROM $db.events")"
	want=251003
	echo "info  async Distributed insert of 50000 rows: $((got - 201003)) visible right after it returned"
	for i in $(seq 1 100); do
		[ "$(chq s1r1 "SELECT count() FROM $db.events")" = "$want" ] && break
		sleep 0.1
	done
	check "async Distributed insert: all rows arrive later" "$(chq s1r1 "SELECT count() FROM $db.events")" "$want"

	if [ "$verify_failed" -eq 0 ]; then
		chq s1r1 "DROP DATABASE $single"
		chq s1r1 "DROP DATABASE $db ON CLUSTER $CLUSTER_NAME" >/dev/null
		echo "verify: all checks passed; databases dropped"
	else
		echo "verify: FAILED; databases $db and $single kept for inspection"
		return 1
	fi
}

status() {
	local n line rc=0
	line="$(printf 'zookeeper  %-13s 127.0.0.1:%s  (%s)' "$(zk_state)" "$ZK_PORT" "$ZK_DIR")"
	echo "$line"
	case "$line" in *" running "*) ;; *) rc=3 ;; esac
	for n in "${NODES[@]}"; do
		line="$(printf 'ch %s shard %s %-13s 127.0.0.1:%s  (http %s, interserver %s, %s)' "$n" "$(node_shard "$n")" \
			"$(ch_state "$(node_dir "$n")" "$(node_tcp "$n")")" "$(node_tcp "$n")" "$(node_http "$n")" \
			"$(node_interserver "$n")" "$(node_dir "$n")")"
		echo "$line"
		case "$line" in *" running "*) ;; *) rc=3 ;; esac
	done
	return "$rc"
}

env_vars() {
	cat <<EOF
CLUSTER_NAME=$CLUSTER_NAME
CLUSTER_ZK_ADDR=127.0.0.1:$ZK_PORT
CLUSTER_CH_ADDRS=$(addrs)
EOF
	local n
	for n in "${NODES[@]}"; do
		echo "CLUSTER_CH_${n^^}=127.0.0.1:$(node_tcp "$n")"
	done
}

# One `up`/`down` at a time: two would both see "stopped" and start the same data directories.
lock() {
	exec 9>"$CLUSTER_DIR/.cluster.lock"
	flock -w 180 9 || die "another scripts/cluster.sh holds $CLUSTER_DIR/.cluster.lock"
}

case "$cmd" in
up)
	lock
	up
	;;
down)
	lock
	down
	;;
status) status || exit 3 ;;
env) env_vars ;;
stop)
	node_index "$2" >/dev/null
	ch_stop "$(node_dir "$2")"
	;;
start)
	node_index "$2" >/dev/null
	node_up "$2"
	;;
verify)
	lock
	verify
	;;
*) usage ;;
esac
