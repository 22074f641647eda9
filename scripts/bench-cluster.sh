#!/usr/bin/env bash
# The cluster line of `make bench` (issue 9): end-to-end events/s into the loopback cluster of scripts/cluster.sh (2 shards x 2
# replicas of ClickHouse 18.16 + ZooKeeper) with one ingest node, then with two nodes side by side, plus one node against a single
# ClickHouse server of that machine as the reference — all in one run, every run checked with `loadgen --verify`. Writes the section
# between the <!-- cluster:begin --> and <!-- cluster:end --> markers of BENCHMARKS.md (appended when missing), so it survives
# scripts/bench.sh regenerating the rest of the file.
#
#   scripts/bench-cluster.sh            BENCH_CLUSTER_DURATION (10s) BENCH_CLUSTER_CONNS (64, split between the nodes) BENCH_OUT
#
# Starts Postgres (scripts/services.sh) and the cluster when they are down. At exit it stops the adtracker processes it started,
# and the cluster when nothing of it ran before: four ClickHouse servers and ZooKeeper left idling after `make bench` took CPU
# from whatever ran next on this 2-core machine. Postgres stays up, as `make services` leaves it.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ADT_REPO"
export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"

DUR="${BENCH_CLUSTER_DURATION:-10s}"
CONNS="${BENCH_CLUSTER_CONNS:-64}"
OUT="${BENCH_OUT:-BENCHMARKS.md}"
DB=adtracker_bench_cluster
PG_PORT="${PG_PORT:-5432}"
BDIR="$ADT_REPO/.data/bench-cluster"
RES="$BDIR/results"
BIN="$BDIR/adtracker"
PG_DSN="postgres://adtracker:adtracker@127.0.0.1:$PG_PORT/$DB?sslmode=disable"
mkdir -p "$RES"

PIDS=()
# The cluster was down when no process of it ran (status prints " running " for each one that does).
CLUSTER_STARTED=0
if ! scripts/cluster.sh status 2>/dev/null | grep -q ' running '; then CLUSTER_STARTED=1; fi
cleanup() {
	local p
	for p in "${PIDS[@]}"; do stop_pid "$p" adtracker || true; done
	if [ "$CLUSTER_STARTED" = 1 ]; then scripts/cluster.sh down >/dev/null 2>&1 || log "could not stop the loopback cluster: run scripts/cluster.sh down"; fi
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*" >&2; }

step "services, cluster, build"
scripts/services.sh up >/dev/null
scripts/cluster.sh up >/dev/null
eval "$(scripts/cluster.sh env)"
go build -o "$BIN" ./cmd/adtracker
IFS=, read -r -a NODES <<<"$CLUSTER_CH_ADDRS" # s1r1 s1r2 s2r1 s2r2
CH1="clickhouse-client --host 127.0.0.1 --port ${NODES[0]##*:}"

psql -X -q "postgres://adtracker:adtracker@127.0.0.1:$PG_PORT/postgres?sslmode=disable" -tAc \
	"SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1 ||
	psql -X -q "postgres://adtracker:adtracker@127.0.0.1:$PG_PORT/postgres?sslmode=disable" -c "CREATE DATABASE $DB"

# node_env NAME CH_ADDRS CLUSTER PORT: one adtracker node's environment (own data directory).
node_env() {
	echo "ADTRACKER_HTTP_ADDR=127.0.0.1:$4" "ADTRACKER_POSTGRES_DSN=$PG_DSN" "ADTRACKER_CLICKHOUSE_ADDR=$2" \
		"ADTRACKER_CLICKHOUSE_DATABASE=$DB${3:+_c}" "ADTRACKER_CLICKHOUSE_CLUSTER=$3" "ADTRACKER_MIGRATE_ON_START=false" \
		"ADTRACKER_INGEST_DATA_DIR=$BDIR/$1" "ADTRACKER_LOG_LEVEL=warn"
}

start_node() { # NAME CH_ADDRS CLUSTER -> sets NODE_URL (not printed: a $(...) subshell would lose the pid in PIDS)
	local port pid
	port=$(free_port $((38180 + ${#PIDS[@]})))
	rm -rf "${BDIR:?}/$1"
	# shellcheck disable=SC2046
	env $(node_env "$1" "$2" "$3" "$port") "$BIN" serve >"$BDIR/$1.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	wait_http "http://127.0.0.1:$port/healthz" "$pid" "$BDIR/$1.log"
	NODE_URL="http://127.0.0.1:$port"
}

stop_nodes() {
	local p
	for p in "${PIDS[@]}"; do stop_pid "$p" adtracker; done
	PIDS=()
}

# fresh DATABASE ADDR: empty the events and rollups (on every replica with the cluster) so each run starts alike.
fresh() {
	local t
	for t in $($CH1 -q "SELECT name FROM system.tables WHERE database = '$1' AND engine LIKE '%MergeTree' AND name != 'schema_migrations'"); do
		if [ "$1" = "${DB}_c" ]; then
			$CH1 --distributed_ddl_task_timeout 60 -q "TRUNCATE TABLE $1.$t ON CLUSTER $CLUSTER_NAME" >/dev/null
		else
			$CH1 -q "TRUNCATE TABLE $1.$t"
		fi
	done
}

# lg NAME URL CONNS CH_ADDRS DATABASE: a closed-loop single-event run with --verify, in the background.
lg() {
	"$BIN" loadgen --json --quiet --seed 1 --mode single --conns "$3" --duration "$DUR" --ads "$ADS" \
		--verify --clickhouse "$4" --database "$5" --verify-timeout 3m --url "$2" >"$RES/$1.json" 2>"$RES/$1.log" &
	LG_PIDS+=($!)
}
wait_lg() {
	local p rc=0
	for p in "${LG_PIDS[@]}"; do wait "$p" || rc=$?; done
	LG_PIDS=()
	[ "$rc" = 0 ] || die "a loadgen run failed its verification; see $RES/*.log"
}
LG_PIDS=()

step "migrations"
# shellcheck disable=SC2046
env $(node_env m "${NODES[0]}" "" 0) "$BIN" migrate >"$BDIR/migrate-single.log" 2>&1 || die "migrate (single) failed: $(cat "$BDIR/migrate-single.log")"
# shellcheck disable=SC2046
env $(node_env m "$CLUSTER_CH_ADDRS" "$CLUSTER_NAME" 0) "$BIN" migrate >"$BDIR/migrate-cluster.log" 2>&1 || die "migrate (cluster) failed: $(cat "$BDIR/migrate-cluster.log")"
# shellcheck disable=SC2046
env $(node_env m "${NODES[0]}" "" 0) "$BIN" seed >"$BDIR/seed.log" 2>&1 || die "seed failed: $(cat "$BDIR/seed.log")"
ADS=$(psql -X -tAc "SELECT string_agg(id::text, ',' ORDER BY id) FROM (SELECT id FROM ads WHERE status = 'active' ORDER BY id LIMIT 100) a" "$PG_DSN")

step "one node, one ClickHouse server (reference: single-node schema on s1r1)"
fresh "$DB"
start_node single "${NODES[0]}" ""
lg single "$NODE_URL" "$CONNS" "${NODES[0]}" "$DB"
wait_lg
stop_nodes

step "one node, cluster"
fresh "${DB}_c"
start_node c1 "${NODES[0]},${NODES[2]}" "$CLUSTER_NAME"
lg cluster1 "$NODE_URL" "$CONNS" "$CLUSTER_CH_ADDRS" "${DB}_c"
wait_lg
stop_nodes

step "two nodes, cluster (each node prefers another shard's server; the connections are split between them)"
fresh "${DB}_c"
start_node c2a "${NODES[0]},${NODES[2]}" "$CLUSTER_NAME"
url_a=$NODE_URL
start_node c2b "${NODES[2]},${NODES[0]}" "$CLUSTER_NAME"
url_b=$NODE_URL
lg cluster2a "$url_a" $((CONNS / 2)) "$CLUSTER_CH_ADDRS" "${DB}_c"
lg cluster2b "$url_b" $((CONNS / 2)) "$CLUSTER_CH_ADDRS" "${DB}_c"
wait_lg
stop_nodes

# e2e NAME...: events stored per second of the longest run + drain among the named runs (they ran at the same time).
e2e() {
	local f acked=0 span=0 a s
	for f in "$@"; do
		a=$(jq -r .verify.stored_acked "$RES/$f.json")
		s=$(jq -r '.seconds + .verify.drain_seconds' "$RES/$f.json")
		acked=$((acked + a))
		span=$(awk -v x="$span" -v y="$s" 'BEGIN {print (y > x) ? y : x}')
	done
	awk -v a="$acked" -v s="$span" 'BEGIN {printf "%.0f", a / s}'
}
acc() { # NAME...: acked events/s summed over runs that ran at the same time
	local t=0 f
	for f in "$@"; do t=$(awk -v x="$t" -v y="$(jq -r .acked_events_per_sec "$RES/$f.json")" 'BEGIN {printf "%.0f", x + y}'); done
	echo "$t"
}
p99() { jq -r '.latency.p99_ms * 100 | round / 100' "$RES/$1.json"; }
fmt() { printf "%'d" "$1"; }
S=$(e2e single)
C1=$(e2e cluster1)
C2=$(e2e cluster2a cluster2b)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

section=$(
	cat <<EOF
<!-- cluster:begin -->
## Cluster (issue 9): one vs two ingest nodes

Generated by \`scripts/bench-cluster.sh\` (part of \`make bench\`) on $(date -u +%FT%TZ): single events (\`loadgen --mode single\`,
$CONNS connections in all, closed loop, $DUR per run, 100 ads), every run checked with \`--verify\` (each answered event stored once).
The cluster is scripts/cluster.sh's: 2 shards x 2 replicas of ClickHouse 18.16 and ZooKeeper, all on this machine's $(nproc) cores,
together with the ingest nodes and the load generator.

| run | acked ev/s | end-to-end ev/s | p99 ms |
|---|---:|---:|---:|
| 1 node → 1 ClickHouse server (single-node schema on s1r1) | $(fmt "$(acc single)") | $(fmt "$S") | $(p99 single) |
| 1 node → cluster (Distributed, synchronous inserts) | $(fmt "$(acc cluster1)") | $(fmt "$C1") | $(p99 cluster1) |
| 2 nodes → cluster, side by side | $(fmt "$(acc cluster2a cluster2b)") | $(fmt "$C2") | $(p99 cluster2a) / $(p99 cluster2b) |

| ratio | value |
|---|---:|
| 2 nodes / 1 node, cluster, end to end | $(ratio "$C2" "$C1")× |
| 1 node: cluster / single server, end to end | $(ratio "$C1" "$S")× |

What limits it here: five ClickHouse-side processes (four servers, ZooKeeper), the ingest node(s) and the generator share
$(nproc) cores, so a second node cannot add CPU — it splits the same cores, and the figure shows the cost of running two, not the
gain. Every row is written twice (replication) and half of them cross to the other shard, and every insert waits for the remote
shard (\`insert_distributed_sync=1\`, which "stored" requires). On real hardware each node and each ClickHouse server has its own
cores: ingest nodes scale with the HTTP work (see the single-node ceiling ratios above), ClickHouse with shards.
<!-- cluster:end -->
EOF
)
if [ -f "$OUT" ] && grep -q '<!-- cluster:begin -->' "$OUT"; then
	awk -v sec="$section" '/<!-- cluster:begin -->/ {print sec; skip = 1; next} /<!-- cluster:end -->/ {skip = 0; next} !skip' "$OUT" >"$OUT.tmp"
	mv "$OUT.tmp" "$OUT"
else
	printf '\n%s\n' "$section" >>"$OUT"
fi
log "single $S ev/s, cluster 1 node $C1, 2 nodes $C2 (end to end); wrote the cluster section of $OUT"
