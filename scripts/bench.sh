#!/usr/bin/env bash
# `make bench`: measures adtracker against references taken in the same run on the same machine, and writes BENCHMARKS.md.
#
# It uses the local Postgres (scripts/services.sh up only when it does not answer), builds the binary, starts a private ClickHouse,
# and runs its own adtracker (port BENCH_PORT, data in .data/bench, ClickHouse and Postgres database BENCH_DATABASE, so other data is
# left alone) next to the no-op HTTP ceiling server (`adtracker loadgen noop`), each on a port it checked was free. Then:
#
#   rounds      BENCH_ROUNDS interleaved rounds; in each, with BENCH_CONNS connections for BENCH_DURATION, the order of every pair
#               flipped from round to round: no-op vs adtracker for single events (POST /ads/*), pixels and the open loop at
#               BENCH_RATE req/s and at BENCH_RATE_LOW req/s (a rate a 2-core machine sustains, so the p99s compare service, not
#               a backlog); adtracker batch 1000 vs clickhouse-client inserting the same events (Native, in arrival order) through the same
#               materialized views. Every adtracker run is checked end to end (--verify: each answered event stored once).
#               Per run: CPU of adtracker (or the no-op), ClickHouse and the load generator from /proc, peak RSS (VmHWM, reset).
#   hostile     batch 1000 while curl posts 1 MiB junk and near-limit bodies on BENCH_HOSTILE_CONNS (16) more connections (peak RSS)
#   profile     perf record of adtracker during one more single-event run and one more batch-1000 run (not in the tables)
#   full only   batch 100, durability (ring file without msync, in-memory ring), analytics over BENCH_ANALYTICS_EVENTS generated
#               events (when GET /ads/analytics exists), go test -bench for ./ingest/... and ./loadgen
#   vast        only when GET /vast/{id} exists: GET /vast/{id} and GET /vast, open loop at BENCH_VAST_RATE (5000) req/s
#
# The report (BENCHMARKS.md) has the targets of issue 20 with met/missed on the median of the per-round ratios, the range over the
# rounds, CPU-µs per event per process, and what the profiles show in the way of each missed target.
# Hand-written analysis between the "analysis" markers of BENCHMARKS.md survives a re-run; everything else is regenerated.
# `scripts/bench.sh --report` rewrites BENCHMARKS.md from the raw results of the last run (.data/bench/results) without measuring.
#
# Environment: BENCH_QUICK (0; 1 = the rounds, hostile run and profiles only, 3 s runs: for iterating) BENCH_DURATION (8s; 3s when
# quick) BENCH_ROUNDS (5; 3 when quick) BENCH_HOSTILE_CONNS (16) BENCH_CONNS (64) BENCH_BATCH_CONNS (16) BENCH_RATE (50000) BENCH_RATE_LOW (10000; 0 = no second open loop) BENCH_CH_NICE (19: the
# CPU priority ClickHouse gets for one more adtracker run per round at BENCH_RATE_LOW, the setting docs/operations.md gives for a
# ClickHouse on the same machine; 0 = no such run; private ClickHouse only) BENCH_PORT, BENCH_NOOP_PORT (default: free ports from 38080)
# BENCH_DATABASE (adtracker_bench) BENCH_OUT (BENCHMARKS.md) BENCH_ADS (1000) BENCH_ANALYTICS_EVENTS (10000000; 0 when quick)
# BENCH_MICRO (1; 0 when quick) BENCH_PROFILE (1), BENCH_CLICKHOUSE (private: a ClickHouse server of its own in
# .data/bench/clickhouse, started and stopped by this script, so the ClickHouse CPU it reports is the benchmark's alone and nothing
# else on the machine queries it; shared: the one scripts/services.sh runs on CH_TCP_PORT), PG_PORT, CH_TCP_PORT,
# BENCH_CH_CPUS (empty: every process shares every CPU, as on the 2-core machine BENCHMARKS.md was measured on; a CPU list such as
# 2-3: the private ClickHouse runs on those CPUs only, and adtracker, the no-op, the load generator and clickhouse-client on the
# others, BENCH_APP_CPUS by default: on a machine with cores to spare the targets then compare the two HTTP servers on the same
# CPUs, without ClickHouse's share of them).
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ADT_REPO"
export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"

# BENCH_QUICK=1 is the iterating mode: the rounds and the targets only (no batch 100, durability, analytics, microbenchmarks), 3 s runs.
QUICK="${BENCH_QUICK:-0}"
FULL=1
[ "$QUICK" = 1 ] && FULL=0
DUR="${BENCH_DURATION:-$([ "$QUICK" = 1 ] && echo 3s || echo 8s)}"
case "$DUR" in *[!0-9s]* | s | '') die "BENCH_DURATION must be whole seconds, e.g. 8s" ;; esac
DUR_S="${DUR%s}"
# Five rounds: on a shared 2-core box one round's ratio can be off by half (single events 0.98x-1.76x over three rounds on
# 2026-12-06), and a median of three then hangs on one round. Quick mode keeps three.
ROUNDS="${BENCH_ROUNDS:-$([ "$QUICK" = 1 ] && echo 3 || echo 5)}"
# Hostile bodies in flight at once during the hostile run; 16 is chaos scenario 12's (cmd/adtracker/chaos_hostile_test.go).
HOSTILE_CONNS="${BENCH_HOSTILE_CONNS:-16}"
# Connections of the batch runs. 16 × 1000 events in flight is what the default ring takes by the README's rule (slots ≥ 4 × (events in
# flight + batch_size × (inserters + 1))); with 64 × 1000 a closed loop gets most batches refused (503), and decoding them is CPU
# spent on nothing, which is not the sustained rate the batch targets are about.
BATCH_CONNS="${BENCH_BATCH_CONNS:-16}"
case "$ROUNDS" in *[!0-9]* | '' | 0) die "BENCH_ROUNDS must be a positive number" ;; esac
CONNS="${BENCH_CONNS:-64}"
RATE="${BENCH_RATE:-50000}"
RATE_LOW="${BENCH_RATE_LOW:-10000}"
case "$RATE_LOW" in *[!0-9]* | '') die "BENCH_RATE_LOW must be a whole number of requests per second (0: none)" ;; esac
CH_NICE="${BENCH_CH_NICE:-19}"
case "$CH_NICE" in [0-9] | 1[0-9]) ;; *) die "BENCH_CH_NICE must be a nice value from 0 to 19 (0: no run with ClickHouse yielding)" ;; esac
PORT="${BENCH_PORT:-}"
NOOP_PORT="${BENCH_NOOP_PORT:-}"
DB="${BENCH_DATABASE:-adtracker_bench}"
OUT="${BENCH_OUT:-BENCHMARKS.md}"
NADS="${BENCH_ADS:-1000}"
AEVENTS="${BENCH_ANALYTICS_EVENTS:-$([ "$QUICK" = 1 ] && echo 0 || echo 10000000)}"
PG_PORT="${PG_PORT:-5432}"
CH_TCP_PORT="${CH_TCP_PORT:-9000}"
CH_MODE="${BENCH_CLICKHOUSE:-private}"
case "$CH_MODE" in private | shared) ;; *) die "BENCH_CLICKHOUSE must be private or shared" ;; esac
# NCPU: the machine's online CPUs, whatever this script's own affinity (nproc would count only the CPUs a pinned script may use).
NCPU=$(getconf _NPROCESSORS_ONLN)
# cpu_list LIST: one CPU number per line of a list such as 0,2-3 (taskset's and /sys's format); dies on anything else.
cpu_list() {
	local part
	for part in ${1//,/ }; do
		case "$part" in
		*[!0-9-]* | -* | *- | *-*-*) die "not a CPU list: $1 (want e.g. 2-3 or 0,2)" ;;
		*-*) seq "${part%-*}" "${part#*-}" ;;
		*) echo "$part" ;;
		esac
	done
}
CH_CPUS="${BENCH_CH_CPUS:-}" APP_CPUS="${BENCH_APP_CPUS:-}"
if [ -n "$CH_CPUS" ]; then
	[ "$CH_MODE" = private ] || die "BENCH_CH_CPUS pins the private ClickHouse; it needs BENCH_CLICKHOUSE=private"
	# The sets in comm's (lexical) order.
	online=$(cpu_list "$(cat /sys/devices/system/cpu/online)" | sort -u)
	ch_set=$(cpu_list "$CH_CPUS" | sort -u)
	[ -z "$(comm -13 <(echo "$online") <(echo "$ch_set"))" ] || die "BENCH_CH_CPUS=$CH_CPUS names CPUs that are not online ($(cat /sys/devices/system/cpu/online))"
	if [ -z "$APP_CPUS" ]; then
		APP_CPUS=$(comm -23 <(echo "$online") <(echo "$ch_set") | sort -n | paste -sd, -)
		[ -n "$APP_CPUS" ] || die "BENCH_CH_CPUS=$CH_CPUS leaves no CPU for adtracker and the load generator"
	fi
	[ -z "$(comm -12 <(cpu_list "$APP_CPUS" | sort -u) <(echo "$ch_set"))" ] || die "BENCH_APP_CPUS=$APP_CPUS overlaps BENCH_CH_CPUS=$CH_CPUS"
	command -v taskset >/dev/null || apt_install util-linux
elif [ -n "$APP_CPUS" ]; then
	die "BENCH_APP_CPUS needs BENCH_CH_CPUS"
fi
DATA_DIR="${DATA_DIR:-$ADT_REPO/.data}"

case "$DB" in *[!a-z0-9_]* | '') die "BENCH_DATABASE must be [a-z0-9_]+" ;; esac
case "$DB" in adtracker) die "BENCH_DATABASE must not be the development database" ;; esac

# Ports come from lib.sh's free_port; an explicit BENCH_PORT that is taken is an error: the load would go to someone else's server.
REPORT_ONLY=0
case "${1:-}" in
--report) REPORT_ONLY=1 ;;
"") ;;
*) die "usage: $0 [--report]" ;;
esac
if [ "$REPORT_ONLY" = 0 ]; then
	if [ -n "$PORT" ]; then
		! port_listening "$PORT" || die "BENCH_PORT $PORT is in use by another process"
	else
		PORT=$(free_port 38080)
	fi
	if [ -n "$NOOP_PORT" ]; then
		! port_listening "$NOOP_PORT" || die "BENCH_NOOP_PORT $NOOP_PORT is in use by another process"
	else
		NOOP_PORT=$(free_port $((PORT + 1)))
	fi
fi
CHB_PORT="$CH_TCP_PORT" # the ClickHouse the bench uses
if [ "$CH_MODE" = private ] && [ "$REPORT_ONLY" = 0 ]; then
	CHB_PORT=$(free_port 39000)
	CHB_HTTP=$(free_port $((CHB_PORT + 1)))
fi

BDIR="$DATA_DIR/bench"
RES="$BDIR/results"
BIN="$BDIR/adtracker"
URL="http://127.0.0.1:$PORT"
NOOP_URL="http://127.0.0.1:$NOOP_PORT"
PG_DSN="postgres://adtracker:adtracker@127.0.0.1:$PG_PORT/$DB?sslmode=disable"
CH="clickhouse-client --host 127.0.0.1 --port $CHB_PORT"

# --- processes we start (stopped by pid on exit) -------------------------------------------------------------------------------
SERVER_PID=""
NOOP_PID=""
PERF_PID=""
cleanup() {
	if [ -n "$PERF_PID" ]; then kill -INT "$PERF_PID" 2>/dev/null || true; fi
	if [ -n "$SERVER_PID" ]; then stop_pid "$SERVER_PID" adtracker; fi
	if [ -n "$NOOP_PID" ]; then stop_pid "$NOOP_PID" "noop server"; fi
	if [ "$CH_MODE" = private ] && [ "$REPORT_ONLY" = 0 ]; then ch_stop "$BDIR/clickhouse"; fi
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*" >&2; }

server_env() { # DATA_DIR_NAME DURABLE [FSYNC_INTERVAL]
	echo "ADTRACKER_HTTP_ADDR=127.0.0.1:$PORT" "ADTRACKER_POSTGRES_DSN=$PG_DSN" \
		"ADTRACKER_CLICKHOUSE_ADDR=127.0.0.1:$CHB_PORT" "ADTRACKER_CLICKHOUSE_DATABASE=$DB" \
		"ADTRACKER_INGEST_DATA_DIR=$BDIR/$1" "ADTRACKER_INGEST_DURABLE=$2" "ADTRACKER_INGEST_FSYNC_INTERVAL=${3:-1s}" \
		"ADTRACKER_HTTP_TRUSTED_PROXIES=127.0.0.1" "ADTRACKER_LOG_LEVEL=warn"
}

start_server() { # DATA_DIR_NAME DURABLE [FSYNC_INTERVAL]
	local try rc f="$BDIR/adtracker-$1.log"
	for try in 1 2 3; do
		! port_listening "$PORT" || die "port $PORT was taken by another process"
		# shellcheck disable=SC2046
		env $(server_env "$1" "$2" "${3:-}") "$BIN" serve >"$f" 2>&1 &
		SERVER_PID=$!
		rc=0
		try_http "$URL/healthz" "$SERVER_PID" || rc=$?
		if [ "$rc" = 0 ]; then
			log "adtracker (pid $SERVER_PID, durable=$2, fsync_interval=${3:-1s}) on $URL"
			return 0
		fi
		# free_port found the port unused, but ports from 38080 lie in the kernel's ephemeral range: an outgoing connection
		# (the verifier's, ClickHouse's) can take it before the server binds it. Seen once in many runs. A port the caller
		# chose (BENCH_PORT) is not moved.
		if [ "$rc" = 1 ] && [ -z "${BENCH_PORT:-}" ] && grep -q 'address already in use' "$f"; then
			SERVER_PID=""
			PORT=$(free_port $((PORT + 2)))
			URL="http://127.0.0.1:$PORT"
			log "the port was taken between choosing and binding it; trying $PORT"
			continue
		fi
		[ "$rc" = 1 ] && die "pid $SERVER_PID exited during start; see $f"
		die "$URL/healthz did not answer within 30 s; see $f"
	done
	die "three ports were taken between choosing and binding them; see $f"
}

stop_server() {
	stop_pid "$SERVER_PID" adtracker
	SERVER_PID=""
}

# --- measurements ----------------------------------------------------------------------------------------------------------------
TCK=$(getconf CLK_TCK)
sys_busy() { # -> "busy total" jiffies of the whole machine
	awk '/^cpu / {idle = $5 + $6; tot = 0; for (i = 2; i <= NF; i++) tot += $i; print tot - idle, tot}' /proc/stat
}
CH_PID=""

# run_lg NAME PID ARGS...: one loadgen run (JSON in $RES/NAME.json) with the CPU of PID and ClickHouse, PID's peak RSS, and how
# busy the machine was, in $RES/NAME.proc.json.
run_lg() {
	local name="$1" pid="$2" rc=0
	shift 2
	if [ -n "$pid" ]; then echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true; fi
	local c0 ch0 s0 c1 ch1 s1 rss=0
	local scrape=0
	if [ -n "$SERVER_PID" ] && [ "$pid" = "$SERVER_PID" ]; then scrape=1; fi
	if [ "$scrape" = 1 ]; then curl -fsS "$URL/metrics" >"$RES/$name.m0" 2>/dev/null || true; fi
	c0=$(proc_cpu "$pid")
	ch0=$(proc_cpu "$CH_PID")
	s0=$(sys_busy)
	"$BIN" loadgen --json --seed 1 --conns "$CONNS" "$@" >"$RES/$name.json" 2>"$RES/$name.log" || rc=$?
	c1=$(proc_cpu "$pid")
	ch1=$(proc_cpu "$CH_PID")
	s1=$(sys_busy)
	[ -n "$pid" ] && rss=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
	if [ "$scrape" = 1 ]; then curl -fsS "$URL/metrics" >"$RES/$name.m1" 2>/dev/null || true; fi
	read -r b0 t0 <<<"$s0"
	read -r b1 t1 <<<"$s1"
	jq -n --argjson cpu "$(awk -v a="$c0" -v b="$c1" 'BEGIN {printf "%.3f", b - a}')" \
		--argjson ch "$(awk -v a="$ch0" -v b="$ch1" 'BEGIN {printf "%.3f", b - a}')" \
		--argjson busy "$(awk -v a="$b0" -v b="$b1" -v c="$t0" -v d="$t1" -v n="$NCPU" 'BEGIN {printf "%.3f", (b - a) / (d - c) * n}')" \
		--argjson wall "$(awk -v c="$t0" -v d="$t1" -v n="$NCPU" -v t="$TCK" 'BEGIN {printf "%.3f", (d - c) / n / t}')" \
		--argjson rss "${rss:-0}" --argjson rc "$rc" \
		'{server_cpu_s: $cpu, clickhouse_cpu_s: $ch, machine_busy_cores: $busy, wall_s: $wall, peak_rss_kb: $rss, exit: $rc}' \
		>"$RES/$name.proc.json"
	local summary
	summary=$(jq -r '"\(.requests_per_sec|floor) req/s, \(.acked_events_per_sec|floor) ev/s acked, p99 \(.latency.p99_ms) ms" +
		(if .verify then ", verify \(if .verify.ok then "OK" else "MISMATCH" end), e2e \(.verify.end_to_end_events_per_sec|floor) ev/s" else "" end)' \
		"$RES/$name.json" 2>/dev/null || echo "no result (exit $rc; see $RES/$name.log)")
	log "$name: $summary"
}


# run_noop KIND ROUND / run_adt KIND ROUND: one run of the no-op server or of adtracker (checked with --verify) for KIND: single
# (POST /ads/*), pixel (GET /t/{event}), open and open_low (single at BENCH_RATE and BENCH_RATE_LOW) or batch1000 (POST /events,
# 1000 per request).
kind_args() {
	case "$1" in
	single) echo --mode single ;;
	pixel) echo --mode pixel ;;
	open) echo --mode single --rate "$RATE" ;;
	open_low | open_low_yield) echo --mode single --rate "$RATE_LOW" ;;
	batch1000) echo --mode batch --batch 1000 --conns "$BATCH_CONNS" ;;
	esac
}
run_noop() {
	# shellcheck disable=SC2046
	run_lg "noop_$1.r$2" "$NOOP_PID" --url "$NOOP_URL" $(kind_args "$1") --duration "$DUR" "${ADS_ARG[@]}"
}
run_adt() {
	ch_fresh
	# open_low_yield: the open_low run with ClickHouse at nice CH_NICE (after the truncation; back to 0 after the verification).
	if [ "$1" = open_low_yield ]; then ch_yield "$CH_PID" "$CH_NICE"; fi
	# shellcheck disable=SC2046
	run_lg "$1.r$2" "$SERVER_PID" --url "$URL" $(kind_args "$1") --duration "$DUR" "${ADS_ARG[@]}" "${verify_args[@]}"
	if [ "$1" = open_low_yield ]; then ch_yield "$CH_PID" 0; fi
}

# run_chref ROUND: ClickHouse alone. The events the round's batch-1000 run stored are exported once (Native), the tables emptied,
# and clickhouse-client inserts them back into events through the same materialized views; the insert's rows per second of wall
# time is the sink's ceiling on this machine, and its CPU (server and client) is counted like a run's. The export is in arrival
# order (receive_time, then event_id within a second), as the events reached adtracker: read in storage order they come sorted
# by ad_id within each part, and ClickHouse's views aggregate such input more cheaply than any live traffic (before 2026-12-07
# the reference had that advantage: BENCHMARKS.md, "Issue 20 after session 20").
CHREF_COLS=""
run_chref() {
	local name="chref.r$1" f="$BDIR/chref.native"
	if [ ! -s "$f" ]; then
		# The first time, from what the batch run before it stored.
		# DESCRIBE lists the columns in table order on every version (18.16's system.columns has no position).
		CHREF_COLS=$($CH -q "DESCRIBE TABLE $DB.events FORMAT TSV" | awk -F'\t' '$3 != "MATERIALIZED" && $3 != "ALIAS" {print $1}' | paste -sd, -)
		$CH --database "$DB" -q "SELECT count() FROM events" >"$f.rows"
		$CH --database "$DB" -q "SELECT $CHREF_COLS FROM events ORDER BY receive_time, event_id FORMAT Native" >"$f"
	fi
	local rows
	rows=$(cat "$f.rows")
	if [ "${rows:-0}" = 0 ]; then
		log "$name: nothing to insert (the batch run stored no events)"
		return 0
	fi
	ch_fresh
	local ch0 ch1 t0 t1 c0 c1 rc=0
	ch0=$(proc_cpu "$CH_PID")
	c0=$(children_ticks)
	t0=$(date +%s.%N)
	$CH --database "$DB" -q "INSERT INTO events ($CHREF_COLS) FORMAT Native" <"$f" || rc=$?
	t1=$(date +%s.%N)
	ch1=$(proc_cpu "$CH_PID")
	c1=$(children_ticks)
	jq -n --argjson rows "$rows" --argjson wall "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')" \
		--argjson ch "$(awk -v a="$ch0" -v b="$ch1" 'BEGIN {printf "%.3f", b - a}')" \
		--argjson client "$(awk -v a="$c0" -v b="$c1" -v t="$TCK" 'BEGIN {printf "%.3f", (b - a) / t}')" --argjson rc "$rc" \
		'{rows: $rows, wall_s: $wall, events_per_sec: ($rows / $wall), clickhouse_cpu_s: $ch, client_cpu_s: $client, exit: $rc}' \
		>"$RES/$name.json"
	log "$name: clickhouse-client inserted $rows events at $(jq -r '.events_per_sec | floor' "$RES/$name.json") ev/s"
}

# children_ticks: CPU ticks (user+system) of this script's finished children, so a client's CPU is the difference around it.
children_ticks() { sed 's/^.*) //' "/proc/$$/stat" | awk '{print $14 + $15}'; }

# hostile_bodies writes the two hostile batch bodies, each under http.max_body_bytes (1 MiB): 500,000 junk NDJSON items (1,000,000
# bytes, refused whole: more items than ingest.max_batch_items), and 8,000 items (960,000 bytes) with long fields, every one refused for its
# unknown ad_id (so the answer lists errors, bounded at 100, and nothing is stored).
hostile_bodies() {
	[ -s "$BDIR/hostile-junk.ndjson" ] || { yes 1 | head -n 500000 || true; } >"$BDIR/hostile-junk.ndjson"
	[ -s "$BDIR/hostile-items.ndjson" ] || awk 'BEGIN { ua = sprintf("%0" 40 "d", 0); gsub(/0/, "u", ua)
		for (i = 0; i < 8000; i++) printf "{\"ad_id\":999999999,\"type\":\"impression\",\"viewer_id\":\"v%08d\",\"user_agent\":\"%s\"}\n", i, ua }' \
		>"$BDIR/hostile-items.ndjson"
}

# profile_run NAME KIND [noop]: one more run of KIND with perf record attached to adtracker, or to the no-op server (perf data in
# $BDIR/NAME.perf).
profile_run() {
	local pid="$SERVER_PID" url="$URL" v=("${verify_args[@]}")
	if [ "${3:-}" = noop ]; then
		pid="$NOOP_PID" url="$NOOP_URL" v=()
	else
		ch_fresh
	fi
	perf record -F 499 -g -p "$pid" -o "$BDIR/$1.perf" >"$BDIR/$1.perf.log" 2>&1 &
	PERF_PID=$!
	# shellcheck disable=SC2046
	run_lg "$1" "$pid" --url "$url" $(kind_args "$2") --duration "$DUR" "${ADS_ARG[@]}" "${v[@]}"
	kill -INT "$PERF_PID" 2>/dev/null || true
	wait "$PERF_PID" 2>/dev/null || true
	PERF_PID=""
}

verify_args=(--verify --clickhouse "127.0.0.1:$CHB_PORT" --database "$DB")

measure() {
	started=$(date -u +%FT%TZ)
	t_start=$(date +%s)
	loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
	rm -rf "$RES" "$BDIR/ingest" "$BDIR/ingest-nosync" "$BDIR/ingest-mem" "$BDIR"/*.perf "$BDIR/chref.native" "$BDIR"/hostile-*.ndjson
	mkdir -p "$RES"
	# --- setup -------------------------------------------------------------------------------------------------------------------------
	step "services and build"
	# Only Postgres is needed from the shared services (ClickHouse is private by default); they are left alone when they answer.
	if ! pg_isready -q -h 127.0.0.1 -p "$PG_PORT" 2>/dev/null || { [ "$CH_MODE" = shared ] && ! ch_answers "$CH_TCP_PORT"; }; then
		scripts/services.sh up >&2
	fi
	command -v jq >/dev/null || apt_install jq
	command -v curl >/dev/null || apt_install curl
	go build -o "$BIN" ./cmd/adtracker
	if [ "$CH_MODE" = private ]; then
		log "starting a private ClickHouse in $BDIR/clickhouse on 127.0.0.1:$CHB_PORT"
		mkdir -p "$BDIR/clickhouse"
		ch_start "$BDIR/clickhouse" "$CHB_PORT" "$CHB_HTTP"
		CH_PID=$(ch_pid "$BDIR/clickhouse")
		if [ -n "$CH_CPUS" ]; then
			# Every thread ClickHouse has now; the ones it starts later inherit the mask of the thread that starts them. Then this
			# script, so that everything it starts from here on (adtracker, the no-op, the load generator, clickhouse-client, perf)
			# runs on the other CPUs.
			taskset -a -p -c "$CH_CPUS" "$CH_PID" >/dev/null
			taskset -p -c "$APP_CPUS" $$ >/dev/null
			log "ClickHouse pinned to CPUs $CH_CPUS, everything else this script starts to CPUs $APP_CPUS"
		fi
	else
		CH_PID=$(ch_pid "$DATA_DIR/clickhouse" || true)
	fi

	step "bench databases ($DB)"
	# Our own databases: ClickHouse's is recreated so every run starts from an empty events table.
	$CH -q "DROP DATABASE IF EXISTS $DB"
	psql -X -q -v ON_ERROR_STOP=1 "postgres://adtracker:adtracker@127.0.0.1:$PG_PORT/postgres?sslmode=disable" -tAc \
		"SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1 ||
		psql -X -q -v ON_ERROR_STOP=1 "postgres://adtracker:adtracker@127.0.0.1:$PG_PORT/postgres?sslmode=disable" -c "CREATE DATABASE $DB"
	# shellcheck disable=SC2046
	env $(server_env ingest true) "$BIN" migrate >"$BDIR/migrate.log" 2>&1 || die "migrate failed: $(cat "$BDIR/migrate.log")"
	psql -X -q -v ON_ERROR_STOP=1 "$PG_DSN" -c "INSERT INTO ads (name, target_url, duration_seconds)
		SELECT 'bench ad ' || g, 'https://example.com/landing/' || g, 30 FROM generate_series(1, $NADS - (SELECT count(*) FROM ads WHERE status = 'active')) g"

	step "servers"
	"$BIN" loadgen noop --addr "127.0.0.1:$NOOP_PORT" >"$BDIR/noop.log" 2>&1 &
	NOOP_PID=$!
	wait_http "$NOOP_URL/" "$NOOP_PID" "$BDIR/noop.log"
	start_server ingest true
	ADS=$(curl -fsS "$URL/ads?limit=1000" | jq -r 'map(.id) | join(",")')
	[ -n "$ADS" ] || die "no ads listed by $URL/ads"
	ADS_ARG=(--ads "$ADS")

	# --- runs ------------------------------------------------------------------------------------------------------------------------
	# ROUNDS interleaved rounds. In each, every adtracker run sits next to its reference (the no-op server for the same traffic, or
	# clickhouse-client inserting the same events), and the order of the pair flips from round to round, so a slow patch of the
	# shared machine lands on both sides. Targets are judged on the per-round ratios (median and range), never on a lone figure.
	# Each adtracker run starts from empty tables with no merge running, so ClickHouse's CPU and the latency of a run are its own.
	local r pair
	for ((r = 1; r <= ROUNDS; r++)); do
		step "round $r of $ROUNDS ($CONNS connections, $DUR per run)"
		for pair in single pixel open $([ "$RATE_LOW" = 0 ] || echo open_low); do
			# The open_low pair gets a third run when ClickHouse can be made to yield: adtracker again with ClickHouse at nice
			# CH_NICE. The three rotate through the slots from round to round, so none always follows the 50k open loop (whose
			# backlog the machine may still be working off) and the two adtracker runs are not always in the same order.
			if [ "$pair" = open_low ] && [ "$CH_NICE" != 0 ] && [ "$CH_MODE" = private ]; then
				case $(((r - 1) % 3)) in
				0) run_adt open_low "$r"; run_noop open_low "$r"; run_adt open_low_yield "$r" ;;
				1) run_noop open_low "$r"; run_adt open_low_yield "$r"; run_adt open_low "$r" ;;
				*) run_adt open_low_yield "$r"; run_adt open_low "$r"; run_noop open_low "$r" ;;
				esac
				continue
			fi
			if [ $(((r + ${#pair}) % 2)) = 0 ]; then
				run_noop "$pair" "$r"
				run_adt "$pair" "$r"
			else
				run_adt "$pair" "$r"
				run_noop "$pair" "$r"
			fi
		done
		# Batch 1000's reference is ClickHouse alone; the events it inserts are exported from the first batch run.
		if [ $((r % 2)) = 0 ] && [ -s "$BDIR/chref.native" ]; then
			run_chref "$r"
			run_adt batch1000 "$r"
		else
			run_adt batch1000 "$r"
			run_chref "$r"
		fi
	done

	step "hostile batches: batch 1000 traffic while 1 MiB junk bodies and long-field batches arrive, $HOSTILE_CONNS at a time"
	ch_fresh
	hostile_bodies
	(
		# HOSTILE_CONNS requests in flight at once, half of each body; curl reports each answer's status on a line.
		args=(-sS -Z --parallel-max "$HOSTILE_CONNS")
		for ((i = 0; i < HOSTILE_CONNS; i++)); do
			f="$BDIR/hostile-junk.ndjson"
			[ $((i % 2)) = 1 ] && f="$BDIR/hostile-items.ndjson"
			args+=(-o /dev/null -w '%{http_code}\n' -H 'Expect:' -H 'Content-Type: application/x-ndjson' --data-binary "@$f" "$URL/events" --next)
		done
		unset 'args[${#args[@]}-1]'
		end=$(($(date +%s) + DUR_S))
		while [ "$(date +%s)" -lt "$end" ]; do curl "${args[@]}" 2>/dev/null || true; done >"$RES/hostile_codes.txt"
	) &
	local hpid=$!
	run_lg hostile "$SERVER_PID" --url "$URL" $(kind_args batch1000) --duration "$DUR" "${ADS_ARG[@]}" "${verify_args[@]}"
	wait "$hpid" || true
	log "hostile bodies answered: $(sort "$RES/hostile_codes.txt" | uniq -c | tr '\n' ' ')"

	if [ "$FULL" = 1 ]; then
		step "batch 100 (one run, not in the targets)"
		ch_fresh
		run_lg batch100 "$SERVER_PID" --url "$URL" --mode batch --batch 100 --conns "$BATCH_CONNS" --duration "$DUR" "${ADS_ARG[@]}" "${verify_args[@]}"
	fi

	# The profile has a run of its own: perf's sampling costs CPU on a box where every core is contended, and the no-op run it is
	# compared with has no profiler attached.
	if command -v perf >/dev/null && [ "${BENCH_PROFILE:-1}" = 1 ]; then
		step "profile: one more single-event, pixel and batch-1000 run under perf record, and the no-op's single and pixel (not in the tables)"
		profile_run profiled_noop single noop
		profile_run profiled single
		profile_run profiled_noop_pixel pixel noop
		profile_run profiled_pixel pixel
		profile_run profiled_batch batch1000
	fi

	# Analytics (issue 5): measured only when the query routes exist in this build (GET /ads/analytics answers 200; without them
	# the path falls to GET /ads/{id}).
	ANALYTICS=0
	code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/ads/analytics" || true)
	if [ "$code" = 200 ] && [ "$AEVENTS" -gt 0 ]; then
		ANALYTICS=1
		step "analytics over $AEVENTS generated events"
		ch_fresh
		# Generated straight into events so the materialized views fire as on ingest; ratios follow the loader's mix, ads are skewed
		# (cube of a uniform), times spread over the last 24 hours: the API's default range, so every question covers all events.
		t0=$(date +%s.%N)
		$CH --database "$DB" -q "INSERT INTO events (event_id, type, ad_id, event_time, receive_time, ip, user_agent, playback_ms, viewer_id, session_id)
			SELECT generateUUIDv4(),
				multiIf(r < 100, 'impression', r < 190, 'start', r < 270, 'first_quartile', r < 340, 'midpoint', r < 400, 'third_quartile',
					r < 450, 'complete', 'click'),
				$(echo "$ADS" | tr ',' '\n' | sort -n | head -1) + toUInt64(floor(pow((cityHash64(number, 1) % 1000000) / 1000000, 3) * $NADS)),
				toDateTime(now() - 60 - (cityHash64(number, 2) % 86340)), now(), IPv4ToIPv6(toUInt32(cityHash64(number, 3) % 4294967296)),
				'bench', toUInt32(cityHash64(number, 4) % 30000), concat('v', toString(cityHash64(number, 5) % 1000000)),
				concat('s', toString(intDiv(number, 5)))
			FROM (SELECT number, cityHash64(number) % 452 AS r FROM numbers($AEVENTS))"
		t1=$(date +%s.%N)
		echo "{\"events\": $AEVENTS, \"insert_s\": $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')}" >"$RES/analytics_gen.json"
		TOP_AD=$($CH --database "$DB" -q "SELECT ad_id FROM events GROUP BY ad_id ORDER BY count() DESC LIMIT 1")
		# Each question twice: with the API's default fields (the exact figures, from the count columns) and with fields=all (unique
		# viewers and playback percentiles too, merged from the uniq and t-digest states: the answer before fields existed).
		run_lg analytics_api "$SERVER_PID" --url "$URL" --mode get --conns 1 --count 40 --path "/ads/analytics"
		run_lg analytics_all_api "$SERVER_PID" --url "$URL" --mode get --conns 1 --count 40 --path "/ads/analytics?fields=all"
		run_lg timeseries_api "$SERVER_PID" --url "$URL" --mode get --conns 1 --count 40 --path "/ads/$TOP_AD/timeseries"
		run_lg timeseries_all_api "$SERVER_PID" --url "$URL" --mode get --conns 1 --count 40 --path "/ads/$TOP_AD/timeseries?fields=all"
		raw_time() { # NAME SQL: 10 timed runs of a raw scan, p50/p95 in ms
			local i
			for ((i = 0; i < 10; i++)); do
				$CH --database "$DB" --time --format Null -q "$2" 2>&1 >/dev/null | tail -1
			done | sort -n | awk '{v[NR] = $1 * 1000} END {printf "{\"p50_ms\": %.2f, \"p95_ms\": %.2f}\n", v[int(NR * 0.5 + 0.5)], v[int(NR * 0.95 + 0.5)]}' >"$RES/$1.json"
		}
		# The same questions asked of the raw events: the API's defaults are 24 whole hours (the current one and the 23 before it),
		# the top 100 ads by clicks, and hourly points for one ad, each with the counts (default fields), or with unique viewers and
		# playback quantiles too (fields=all).
		local win="event_time >= toStartOfHour(now()) - 82800 AND event_time < toStartOfHour(now()) + 3600"
		local agg="countIf(type = 'impression') AS i, countIf(type = 'click') AS c, countIf(type = 'start') AS s,
			countIf(type = 'first_quartile'), countIf(type = 'midpoint'), countIf(type = 'third_quartile'), countIf(type = 'complete'),
			sumIf(playback_ms, playback_ms > 0), countIf(playback_ms > 0)"
		local states="uniq(if(viewer_id != '', viewer_id, concat('ip:', IPv6NumToString(ip)))),
			quantilesTDigestIf(0.5, 0.95)(playback_ms, playback_ms > 0)"
		raw_time analytics_raw "SELECT ad_id, $agg FROM events WHERE $win GROUP BY ad_id ORDER BY c DESC, ad_id LIMIT 100"
		raw_time analytics_all_raw "SELECT ad_id, $agg, $states FROM events WHERE $win GROUP BY ad_id ORDER BY c DESC, ad_id LIMIT 100"
		raw_time timeseries_raw "SELECT toStartOfHour(event_time) AS h, $agg FROM events WHERE ad_id = $TOP_AD AND $win GROUP BY h ORDER BY h"
		raw_time timeseries_all_raw "SELECT toStartOfHour(event_time) AS h, $agg, $states FROM events WHERE ad_id = $TOP_AD AND $win GROUP BY h ORDER BY h"
	fi

	# VAST serving (issue 17), only when this build has GET /vast/{id}: GET /vast/{id} and GET /vast (weighted pick), open loop at
	# BENCH_VAST_RATE (5,000) req/s each, every answer 200. Target: p99 ≤ 2 ms. Each request asks for gzip, as players do, so
	# the answers are compressed (http.compress) as they are in the field.
	local vrate="${BENCH_VAST_RATE:-5000}" vcode
	vcode=$(curl -s -o /dev/null -w '%{http_code}' "$URL/vast/${ADS%%,*}" || true)
	echo "{\"rate\": $vrate, \"code\": \"$vcode\", \"ad\": ${ADS%%,*}, \"accept_encoding\": \"gzip\"}" >"$RES/vast_meta.json"
	if [ "$vcode" = 200 ]; then
		step "VAST serving: open loop at $vrate req/s"
		run_lg vast_ad "$SERVER_PID" --url "$URL" --mode get --rate "$vrate" --duration "$DUR" --path "/vast/${ADS%%,*}" --accept-encoding gzip
		run_lg vast_pick "$SERVER_PID" --url "$URL" --mode get --rate "$vrate" --duration "$DUR" --path "/vast" --accept-encoding gzip
	fi

	if [ "$FULL" = 1 ]; then
	step "durability: the ring file without its mirror, and the in-memory ring (ADTRACKER_INGEST_DURABLE=false)"
	# The ring file survives SIGKILL through the page cache alone; the mirror written every ingest.fsync_interval is what bounds
	# loss on a machine crash. This run prices the mirror separately from the file itself.
	stop_server
	start_server ingest-nosync true 0s
	ch_fresh
	run_lg single_nosync "$SERVER_PID" --url "$URL" --mode single --duration "$DUR" "${ADS_ARG[@]}" "${verify_args[@]}"
	stop_server
	start_server ingest-mem false
	ch_fresh
	run_lg single_mem "$SERVER_PID" --url "$URL" --mode single --duration "$DUR" "${ADS_ARG[@]}" "${verify_args[@]}"
	ch_fresh
	run_lg batch1000_mem "$SERVER_PID" --url "$URL" $(kind_args batch1000) --duration "$DUR" "${ADS_ARG[@]}" "${verify_args[@]}"
	fi
	stop_server
	stop_pid "$NOOP_PID" "noop server"
	NOOP_PID=""

	if [ "${BENCH_MICRO:-$FULL}" = 1 ]; then
		step "Go microbenchmarks"
		go test -run '^$' -bench . -benchmem -benchtime 1s -timeout 5m ./ingest/... ./loadgen ./server >"$RES/micro.txt" 2>&1 ||
			log "some microbenchmarks failed; see $RES/micro.txt"
	fi

	local prof
	for prof in profiled profiled_pixel profiled_batch profiled_noop profiled_noop_pixel; do
		[ -s "$BDIR/$prof.perf" ] || continue
		perf report -i "$BDIR/$prof.perf" --stdio --no-children --sort symbol --percent-limit 1.2 2>/dev/null |
			grep -E '^ +[0-9.]+%' | sed -E 's/[[:space:]]+-[[:space:]]+-[[:space:]]*$//' | head -25 >"$RES/$prof.self.txt" || true
		perf report -i "$BDIR/$prof.perf" --stdio --children --sort symbol --percent-limit 0.1 2>/dev/null |
			grep -E '^ +[0-9.]+%' | sed -E 's/[[:space:]]+-[[:space:]]+-[[:space:]]*$//' >"$RES/$prof.children.txt" || true
	done
	jq -n --arg started "$started" --argjson t_start "$t_start" --argjson t_end "$(date +%s)" --arg loadavg "$loadavg" \
		--arg dur "$DUR" --argjson rounds "$ROUNDS" --argjson hconns "$HOSTILE_CONNS" --argjson bconns "$BATCH_CONNS" --argjson conns "$CONNS" --argjson rate "$RATE" --argjson rate_low "$RATE_LOW" --argjson ch_nice "$CH_NICE" --argjson nads "$NADS" --argjson aevents "$AEVENTS" \
		--argjson analytics "$ANALYTICS" --arg code "$code" --arg chmode "$CH_MODE" --arg chcpus "$CH_CPUS" --arg appcpus "$APP_CPUS" --arg chversion "$($CH -q 'SELECT version()' 2>/dev/null || echo '?')" \
		'{started: $started, t_start: $t_start, t_end: $t_end, loadavg: $loadavg, duration: $dur, rounds: $rounds, hostile_conns: $hconns, batch_conns: $bconns, conns: $conns, rate: $rate, rate_low: $rate_low, ch_nice: $ch_nice,
		nads: $nads, analytics_events: $aevents, analytics: $analytics, analytics_code: $code, clickhouse_version: $chversion,
		clickhouse_mode: $chmode, ch_cpus: $chcpus, app_cpus: $appcpus}' \
		>"$RES/meta.json"
}

# --- BENCHMARKS.md ---------------------------------------------------------------------------------------------------------------
report() {
	step "writing $OUT"
	[ -f "$RES/meta.json" ] || die "no results in $RES: run scripts/bench.sh first"
	m() { jq -r "$1" "$RES/meta.json"; }
	started=$(m .started)
	t_start=$(m .t_start)
	t_end=$(m .t_end)
	CONNS=$(m .conns)
	RATE=$(m .rate)
	RATE_LOW=$(m '.rate_low // 0')
	CH_NICE=$(m '.ch_nice // 0')
	DUR=$(m .duration)
	ROUNDS=$(m '.rounds // 1')
	NADS=$(m .nads)
	AEVENTS=$(m .analytics_events)
	ANALYTICS=$(m .analytics)
	code=$(m .analytics_code)
	j() { jq -r "$2" "$RES/$1.json" 2>/dev/null || echo "n/a"; }
	p() { jq -r "$2" "$RES/$1.proc.json" 2>/dev/null || echo "n/a"; }
	num() { awk -v x="$1" 'BEGIN { if (x == "n/a" || x == "") { print "n/a"; exit } s = sprintf("%.0f", x); n = length(s); o = "";
		for (i = 1; i <= n; i++) { o = o substr(s, i, 1); if ((n - i) % 3 == 0 && i < n) o = o "," } print o }'; }
	ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b == 0) print "n/a"; else printf "%.2f×", a / b }'; }
	ms() { awk -v x="$1" 'BEGIN { if (x == "n/a" || x == "") print "n/a"; else printf "%.2f", x }'; }
	mb() { awk -v x="$1" 'BEGIN { if (x == "n/a" || x == "") print "n/a"; else printf "%.0f MB", x / 1024 }'; }
	e2e() { j "$1" '.verify.end_to_end_events_per_sec // "n/a"'; }
	stored() { j "$1" '.verify.stored_acked // "n/a"'; }
	cpu_per_m() { # NAME: server CPU seconds per million stored events (per million answered ones for the no-op server)
		local n
		n=$(j "$1" '.verify.stored_acked // .events_acked')
		awk -v c="$(p "$1" .server_cpu_s)" -v n="$n" 'BEGIN { if (n == "n/a" || n == 0) print "n/a"; else printf "%.2f", c / n * 1e6 }'
	}
	# mdelta NAME METRIC: how much a counter (summed over its labels) grew during the run, from the /metrics scrapes around it.
	mdelta() {
		if [ ! -f "$RES/$1.m0" ] || [ ! -f "$RES/$1.m1" ]; then
			echo "n/a"
			return
		fi
		local a b
		a=$(awk -v m="$2" '$1 == m || index($1, m "{") == 1 {s += $2} END {printf "%.6f", s}' "$RES/$1.m0")
		b=$(awk -v m="$2" '$1 == m || index($1, m "{") == 1 {s += $2} END {printf "%.6f", s}' "$RES/$1.m1")
		awk -v a="$a" -v b="$b" 'BEGIN {printf "%.6f", b - a}'
	}
	mlast() { # NAME METRIC: a gauge's value after the run
		awk -v m="$2" '$1 == m {print $2; found = 1} END {if (!found) print "n/a"}' "$RES/$1.m1" 2>/dev/null || echo "n/a"
	}
	pipe_row() { # NAME: what the pipeline did during the run
		local r="$1" nb rows fl wall
		nb=$(mdelta "$r" adtracker_pipeline_batch_rows_count)
		rows=$(mdelta "$r" adtracker_pipeline_batch_rows_sum)
		fl=$(mdelta "$r" adtracker_pipeline_flush_duration_seconds_sum)
		wall=$(p "$r" .wall_s)
		printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$r" "$(num "$nb")" \
			"$(awk -v a="$rows" -v b="$nb" 'BEGIN { if (b == "n/a" || b == 0) print "n/a"; else printf "%.0f", a / b }')" \
			"$(awk -v a="$fl" -v b="$nb" 'BEGIN { if (b == "n/a" || b == 0) print "n/a"; else printf "%.0f", a / b * 1000 }')" \
			"$(awk -v a="$fl" -v w="$wall" 'BEGIN { if (a == "n/a" || w == 0) print "n/a"; else printf "%.2f", a / w }')" \
			"$(num "$(mdelta "$r" adtracker_pipeline_enqueue_refused_total)")" \
			"$(mb "$(awk -v x="$(mlast "$r" go_memstats_heap_inuse_bytes)" 'BEGIN { if (x == "n/a") print "n/a"; else print x / 1024 }')")"
	}
	ch_per_m() {
		awk -v c="$(p "$1" .clickhouse_cpu_s)" -v n="$(stored "$1")" 'BEGIN { if (n == "n/a" || n == 0) print "n/a"; else printf "%.2f", c / n * 1e6 }'
	}
	verdict() { j "$1" 'if .verify == null then "—" elif .verify.ok then "OK (\(.verify.stored_acked) stored, 0 lost, 0 dup)" else "**MISMATCH**: \(.verify.problems | join("; "))" end'; }
	row() { # LABEL NAME: a result row
		local n="$1" r="$2"
		printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$n" "$(num "$(j "$r" .requests_per_sec)")" \
			"$(num "$(j "$r" .acked_events_per_sec)")" "$(num "$(e2e "$r")")" "$(ms "$(j "$r" .latency.p50_ms)")" \
			"$(ms "$(j "$r" .latency.p99_ms)")" "$(cpu_per_m "$r")" "$(mb "$(p "$r" .peak_rss_kb)")" \
			"$(awk -v a="$(j "$r" .client_cpu_seconds)" -v s="$(j "$r" .seconds)" 'BEGIN { if (s > 0) printf "%.0f%%", a / s * 100; else print "n/a" }')" \
			"$(awk -v b="$(p "$r" .machine_busy_cores)" 'BEGIN { printf "%.2f", b }')"
	}
	# --- per-round figures: FN NAME.rR for R in 1..ROUNDS, aggregated as "median (min–max)" ------------------------------------------
	evs() { j "$1" '.verify.stored_acked // .events_acked'; } # events a run's CPU is divided by: stored (adtracker) or answered (no-op)
	per_ev() { awk -v c="$1" -v n="$2" 'BEGIN { if (c == "n/a" || c == "" || n == "n/a" || n == "" || n == 0) print "n/a"; else printf "%.3f", c / n * 1e6 }'; }
	srv_us() { per_ev "$(p "$1" .server_cpu_s)" "$(evs "$1")"; }      # adtracker (or the no-op server): CPU-µs per event
	ch_us() { per_ev "$(p "$1" .clickhouse_cpu_s)" "$(evs "$1")"; }   # ClickHouse: CPU-µs per event
	sent_us() { per_ev "$(p "$1" .server_cpu_s)" "$(j "$1" .events_sent)"; } # adtracker: CPU-µs per event received (refused included)
	gen_us() { per_ev "$(j "$1" .client_cpu_seconds)" "$(evs "$1")"; } # the load generator: CPU-µs per event
	chref_eps() { j "$1" .events_per_sec; }
	chref_ch_us() { per_ev "$(j "$1" .clickhouse_cpu_s)" "$(j "$1" .rows)"; }
	chref_cl_us() { per_ev "$(j "$1" .client_cpu_s)" "$(j "$1" .rows)"; }
	rps() { j "$1" .requests_per_sec; }
	p99() { j "$1" .latency.p99_ms; }
	rss_mb() { awk -v x="$(p "$1" .peak_rss_kb)" 'BEGIN { if (x == "n/a" || x == "") print "n/a"; else printf "%.1f", x / 1024 }'; }
	div() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || a == "" || b == "" || b == 0) print "n/a"; else printf "%.4f", a / b }'; }
	sub_() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || a == "" || b == "") print "n/a"; else printf "%.3f", a - b }'; }
	# series FN RUN: FN of RUN.r1 … RUN.rROUNDS, one per line; pair OP FNA A FNB B: OP(FNA(A.rR), FNB(B.rR)) per round.
	series() { local r; for ((r = 1; r <= ROUNDS; r++)); do "$1" "$2.r$r"; echo; done; }
	pair() { local r; for ((r = 1; r <= ROUNDS; r++)); do "$1" "$("$2" "$3.r$r")" "$("$4" "$5.r$r")"; echo; done; }
	# agg FORMAT: stdin values (n/a ignored) → "median (min–max)" with printf FORMAT; med: the median alone.
	agg() { awk -v f="$1" '$1 != "n/a" && $1 != "" {v[++n] = $1 + 0} END { if (!n) { print "n/a"; exit }
		for (i = 1; i <= n; i++) for (k = i + 1; k <= n; k++) if (v[k] < v[i]) { t = v[i]; v[i] = v[k]; v[k] = t }
		m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
		if (n == 1) printf f, m; else printf f " (" f "–" f ")", m, v[1], v[n] }'; }
	med() { awk '$1 != "n/a" && $1 != "" {v[++n] = $1 + 0} END { if (!n) { print "n/a"; exit }
		for (i = 1; i <= n; i++) for (k = i + 1; k <= n; k++) if (v[k] < v[i]) { t = v[i]; v[i] = v[k]; v[k] = t }
		printf "%.4f", (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }'; }
	meets() { awk -v a="$1" -v b="$2" -v op="$3" 'BEGIN { if (a == "n/a" || a == "") { print "not measured"; exit }
		ok = (op == ">=") ? (a >= b) : (a <= b); print ok ? "met" : "**missed**" }'; }
	all_ok() { # RUN: "all N verified" when every round's run was stored exactly once
		local r bad=0 n=0
		for ((r = 1; r <= ROUNDS; r++)); do
			n=$((n + 1))
			[ "$(j "$1.r$r" '.verify.ok // false')" = true ] || bad=$((bad + 1))
		done
		if [ "$bad" = 0 ]; then echo "all $n rounds stored exactly once"; else echo "**$bad of $n rounds failed verification**"; fi
	}
	all_runs() { # every adtracker run of this measurement, for the RSS and correctness tables
		local r k
		for ((r = 1; r <= ROUNDS; r++)); do
			for k in single pixel open batch1000; do echo "$k.r$r"; done
			for k in open_low open_low_yield; do [ -f "$RES/$k.r$r.json" ] && echo "$k.r$r"; done
		done
		for k in hostile batch100 single_nosync single_mem batch1000_mem profiled profiled_pixel profiled_batch; do [ -f "$RES/$k.json" ] && echo "$k"; done
		return 0
	}

	# Profile components: inclusive share of the profiled run's samples × that run's CPU-µs per event.
	comp() { # PROFILE REGEX -> percent
		[ -s "$RES/$1.children.txt" ] || { echo "n/a"; return; }
		# The pattern goes through the environment: awk would eat the backslashes of a -v value.
		RE="$2" awk '{sym = $0; sub(/^.*\] /, "", sym); if (sym ~ ENVIRON["RE"]) {v = $1; sub(/%/, "", v); if (v + 0 > m) m = v + 0}}
			END {printf "%.1f", m}' "$RES/$1.children.txt"
	}
	comp_us() { # PROFILE REGEX -> µs per event
		awk -v p="$(comp "$1" "$2")" -v c="$(srv_us "$1")" 'BEGIN { if (p == "n/a" || c == "n/a") print "n/a"; else printf "%.2f", p / 100 * c }'
	}
	COMPONENTS='HTTP server, all of it (fasthttp)|fasthttp\.\(\*Server\)\.serveConnCounted$
socket writes (responses)|^syscall\.write$
socket reads (requests)|^syscall\.read$
router, middleware and handlers|server\.\(\*Server\)\.serve$
route wrapper (rate limit + handler; serve minus this is router + middleware)|server\.\(\*Server\)\.build\.\(\*Server\)\.instrument\.func[0-9]+$
rate limiter (inside the route wrapper)|ratelimit\.\(\*Limiter\)\.Check$
ingest handler, single event|ingest\.\(\*Handlers\)\.Register\.\(\*Handlers\)\.single\.func[0-9]+$
ingest handler, pixel|ingest\.\(\*Handlers\)\.(servePixel|pixel)$
pixel decode (its query scan included)|decode\.\(\*Decoder\)\.DecodePixel$
pixel query scan|decode\.\(\*queryScanner\)\.next$
client address (X-Forwarded-For; in the rate limiter and the handlers)|httpx\.\(\*Proxies\)\.ClientIP$
ingest handler, batch|ingest\.\(\*Handlers\)\.batch$
JSON decode, single|decode\.\(\*Decoder\)\.DecodeJSON$
JSON decode, batch|decode\.\(\*Decoder\)\.DecodeBatchWhile$
enqueue: encode + ring record|pipeline\.\(\*Pipeline\)\.enqueue$
batcher (ring → batch)|pipeline\.\(\*Pipeline\)\.batcher$
duplicate window|pipeline\.\(\*dupWindow\)\.seen(Group)?$
inserter (ClickHouse client)|pipeline\.\(\*Pipeline\)\.inserter$
LZ4 compression|lz4block\.\(\*Compressor\)\.CompressBlock$
ring sync (mirror)|pipeline\.\(\*Pipeline\)\.syncer$
garbage collector|^runtime\.gcBgMarkWorker$
allocation|^runtime\.mallocgc$
goroutine scheduling|^runtime\.schedule$'
	re_of() { printf '%s\n' "$COMPONENTS" | awk -v l="$1" 'index($0, l "|") == 1 {print substr($0, length(l) + 2)}'; } # the pattern may hold |
	cu() { comp_us "$1" "$(re_of "$2")"; } # PROFILE LABEL -> µs per event
	profile_table() { # PROFILE
		echo "| component | symbol | share | µs per event |"
		echo "|---|---|---:|---:|"
		while IFS='|' read -r label re; do
			printf '| %s | %s | %s %% | %s |\n' "$label" "\`$(printf '%s' "$re" | tr -d '\\^$' | sed 's/\[0-9\]+/N/')\`" \
				"$(comp "$1" "$re")" "$(comp_us "$1" "$re")"
		done <<<"$COMPONENTS"
	}
	fasthttp_own() { # PROFILE HANDLER_US: fasthttp's serving minus the handler and the socket reads and writes
		sub_ "$(sub_ "$(sub_ "$(cu "$1" "HTTP server, all of it (fasthttp)")" "$2")" "$(cu "$1" "socket writes (responses)")")" \
			"$(cu "$1" "socket reads (requests)")"
	}
	# in_the_way PROFILE [NOOP_PROFILE]: the components adtracker has and the no-op has not, from the profile, largest first; with
	# the no-op's profile of the same traffic, also what adtracker spends beyond it on what both do.
	in_the_way() {
		[ -s "$RES/$1.children.txt" ] || { echo "no profile (perf not installed or BENCH_PROFILE=0)"; return; }
		local serve wrap noop="${2:-}"
		serve=$(cu "$1" "router, middleware and handlers")
		wrap=$(cu "$1" "route wrapper (rate limit + handler; serve minus this is router + middleware)")
		{
			echo "router + middleware $(sub_ "$serve" "$wrap")"
			for l in "rate limiter (inside the route wrapper)" "ingest handler, single event" "ingest handler, pixel" "ingest handler, batch" \
				"batcher (ring → batch)" "inserter (ClickHouse client)" "ring sync (mirror)" "garbage collector"; do
				echo "$l $(cu "$1" "$l")"
			done
			# Parts the no-op has too: only what adtracker spends beyond it per event.
			if [ -n "$noop" ] && [ -s "$RES/$noop.children.txt" ]; then
				for l in "goroutine scheduling" "socket writes (responses)" "socket reads (requests)"; do
					echo "$l, beyond the no-op's $(sub_ "$(cu "$1" "$l")" "$(cu "$noop" "$l")")"
				done
				echo "fasthttp's own work (parsing and writing, without the handler and the socket calls), beyond the no-op's" \
					"$(sub_ "$(fasthttp_own "$1" "$serve")" "$(fasthttp_own "$noop" "$(comp_us "$noop" 'noop\.Handler$')")")"
			else
				echo "goroutine scheduling $(cu "$1" "goroutine scheduling")"
			fi
		} | awk '{v = $NF; $NF = ""; if (v != "n/a" && v + 0 >= 0.05) printf "%s\t%s%.2f µs\n", v, $0, v}' | sort -rn | cut -f2 | paste -sd ';' | sed 's/;/; /g'
	}
	cpu_target_row() { # LABEL RUN NOOP: adtracker CPU per event / no-op CPU per request
		local v
		v=$(pair div srv_us "$2" srv_us "$3")
		printf '| %s | %s | ≤ 1.30× | %s |\n' "$1" "$(agg '%.2f×' <<<"$v")" "$(meets "$(med <<<"$v")" 1.3 "<=")"
	}

	max_rss=0
	for r in $(all_runs); do
		if [ -f "$RES/$r.proc.json" ]; then max_rss=$(jq -r --argjson m "$max_rss" '[.peak_rss_kb, $m] | max' "$RES/$r.proc.json"); fi
	done
	enqueue_allocs=""
	if [ -f "$RES/micro.txt" ]; then
		enqueue_allocs=$(awk '$1 ~ /^BenchmarkEnqueue/ {for (i = 1; i <= NF; i++) if ($i == "allocs/op") print $(i - 1)}' "$RES/micro.txt" |
			sort -n | tail -1)
	fi
	analysis=""
	if [ -f "$OUT" ]; then
		analysis=$(awk '/<!-- analysis:begin -->/ {on = 1; next} /<!-- analysis:end -->/ {on = 0} on' "$OUT")
	fi
	[ -n "$analysis" ] || analysis="_(No analysis written yet. Add it here; \`make bench\` keeps this section.)_"
	# scripts/bench-cluster.sh's section (between its markers) is kept as it is until that script rewrites it.
	cluster=""
	if [ -f "$OUT" ]; then
		cluster=$(awk '/<!-- cluster:begin -->/ {on = 1} on {print} /<!-- cluster:end -->/ {on = 0}' "$OUT")
	fi

	t_thr=$(pair div e2e single rps noop_single | med)
	# The cores are shared, so a closed loop's rate follows the CPU its processes spend per event: the no-op's two (server and
	# generator) against adtracker's three (server, ClickHouse, generator). thr_share R MODE, for round R: model is that ratio;
	# ceiling the same with adtracker charged the no-op's CPU instead of its own (what ClickHouse's share alone leaves); offbox the
	# same with ClickHouse's CPU left out (what the ratio would be with ClickHouse on cores of its own: BENCH_CH_CPUS on a machine
	# that has them measures it); chbudget the CPU-µs per event ClickHouse could spend for 0.85× with adtracker at the no-op's cost.
	thr_share() {
		awk -v ns="$(srv_us "noop_single.r$1")" -v ng="$(gen_us "noop_single.r$1")" -v as="$(srv_us "single.r$1")" \
			-v ac="$(ch_us "single.r$1")" -v ag="$(gen_us "single.r$1")" -v mode="$2" 'BEGIN {
			if (ns == "n/a" || ng == "n/a" || as == "n/a" || ac == "n/a" || ag == "n/a") { print "n/a"; exit } # per_ev gives n/a for a missing figure
			if (mode == "chbudget") { printf "%.3f", (ns + ng) / 0.85 - ns - ag; exit }
			printf "%.4f", (ns + ng) / ((mode == "ceiling" ? ns : as) + (mode == "offbox" ? 0 : ac) + ag) }'
	}
	thr_series() { local r; for ((r = 1; r <= ROUNDS; r++)); do thr_share "$r" "$1"; echo; done; }
	# What decoding a batch costs before any of the pipeline: BenchmarkBatchHandler's 1000 NDJSON events per op, per event.
	# (BENCH_QUICK runs no microbenchmarks: then the line is left out.)
	bh_us="" bh_line=""
	if [ -f "$RES/micro.txt" ]; then
		bh_us=$(awk '/^BenchmarkBatchHandler-/ {printf "%.2f", $3 / 1e6}' "$RES/micro.txt")
	fi
	if [ -n "$bh_us" ]; then
		bh_line=$'\n'"  Decoding alone, before any ring, HTTP or ClickHouse work, costs $bh_us µs per event on this machine"
		bh_line+=$'\n'"  (\`BenchmarkBatchHandler\` below: the handler on 1000 NDJSON events, no screening, its queue a no-op) of the 0.50 µs allowed."
	fi
	# Where ClickHouse ran (BENCH_CH_CPUS): on CPUs of its own, or sharing every CPU with the servers and the generator.
	ch_cpus=$(m '.ch_cpus // ""') app_cpus=$(m '.app_cpus // ""') cpu_row=""
	share="so generator, server and ClickHouse share the $NCPU cores"
	if [ -n "$ch_cpus" ]; then
		cpu_row=$'\n'"| CPU sets | ClickHouse on CPUs $ch_cpus; adtracker, the no-op, the load generator and clickhouse-client on CPUs $app_cpus (\`BENCH_CH_CPUS\`) |"
		share="so generator and server share CPUs $app_cpus, and ClickHouse has CPUs $ch_cpus to itself"
	fi
	thr_way() { # the throughput line of "What the profiles show in the way"
		if [ -n "$ch_cpus" ]; then
			echo "ClickHouse ran on CPUs of its own ($ch_cpus; $(series ch_us single | agg '%.2f') CPU-µs per event there), so the ratio compares the two servers and the generator on the same CPUs ($app_cpus)."
			return
		fi
		cat <<-EOT
		the generator, the server and ClickHouse share the $NCPU cores, so a closed loop's rate follows the
		  CPU they spend per event: (no-op + its generator) / (adtracker + ClickHouse + generator) gives $(thr_series model | agg '%.2f×')
		  for the $(pair div e2e single rps noop_single | agg '%.2f×') measured. Charged the no-op's CPU per request instead of its
		  own, adtracker would still reach only $(thr_series ceiling | agg '%.2f×'): for 0.85× with adtracker as cheap as the no-op,
		  ClickHouse would have to spend at most $(thr_series chbudget | agg '%.2f') CPU-µs per event on these cores, against the
		  $(series ch_us single | agg '%.2f') it spent (the verifier's count after the run included, ~1 µs)$(thr_series chbudget | awk '$1 != "n/a" && $1 < 0 {n++} END {if (n) printf "; below zero in %d round%s: there not even a ClickHouse that cost nothing would have left 0.85×", n, (n > 1 ? "s" : "")}').
		  With ClickHouse's CPU left out, as on a machine where it has cores of its own, the same model gives
		  $(thr_series offbox | agg '%.2f×'), a prediction that only a run with \`BENCH_CH_CPUS\` on a machine with ≥ 4 cores can test.
		EOT
	}
	t_bcpu=$(series srv_us batch1000 | med)
	t_bch=$(pair div e2e batch1000 chref_eps chref | med)
	t_p99=$(pair sub_ p99 open p99 noop_open | med)
	t_p99_low=$(pair sub_ p99 open_low p99 noop_open_low | med)
	t_p99_yield=$(pair sub_ p99 open_low_yield p99 noop_open_low | med)
	# p99_verdict KIND RATE MEDIAN: met/missed only when, in every round, both servers kept at least 95 % of the rate asked;
	# otherwise the p99s measure how long a backlog grew, not the service, and the comparison says nothing.
	p99_verdict() {
		local r x short=0
		for ((r = 1; r <= ROUNDS; r++)); do
			for x in "$1.r$r" "noop_${1%_yield}.r$r"; do
				awk -v a="$(rps "$x")" -v b="$2" 'BEGIN { exit !(a != "n/a" && a != "" && a >= 0.95 * b) }' || short=1
			done
		done
		if [ "$short" = 0 ]; then
			meets "$3" 1 "<="
		else
			echo "not judgeable: below 95 % of the rate asked (median achieved: no-op $(num "$(series rps "noop_${1%_yield}" | med)"), adtracker $(num "$(series rps "$1" | med)") req/s)"
		fi
	}
	latency_table() { # KIND RATE: the per-round latency table of an open-loop pair
		cat <<-EOF

	### Latency at a fixed rate (open loop, $(num "$2") req/s, single events), every round

	Latency counts from each request's scheduled send time, so a stall is charged to every request it delayed (no coordinated
	omission); service time counts from the actual send.

	| server, round | achieved req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | service p99 ms | sent > 1 ms late | verify |
	|---|---:|---:|---:|---:|---:|---:|---:|---:|---|
	EOF
		local rr r label
		for ((rr = 1; rr <= ROUNDS; rr++)); do
			for r in "noop_$1.r$rr" "$1.r$rr" "$1_yield.r$rr"; do
				[ -f "$RES/$r.json" ] || continue
				case "${r%%.*}" in
				noop_*) label="no-op" ;;
				*_yield) label="adtracker, ClickHouse at nice $CH_NICE" ;;
				*) label="adtracker" ;;
				esac
				printf '| %s, %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$rr" "$(num "$(j "$r" .requests_per_sec)")" \
					"$(ms "$(j "$r" .latency.p50_ms)")" "$(ms "$(j "$r" .latency.p90_ms)")" "$(ms "$(j "$r" .latency.p99_ms)")" \
					"$(ms "$(j "$r" .latency.p999_ms)")" "$(ms "$(j "$r" .latency.max_ms)")" "$(ms "$(j "$r" .service_time.p99_ms)")" \
					"$(num "$(j "$r" '.late_sends // 0')")" "$(verdict "$r")"
			done
		done
	}
	open_low_row="" open_low_cpu=""
	if [ "$RATE_LOW" != 0 ] && [ -f "$RES/open_low.r1.json" ]; then
		open_low_row=$'\n'"| open loop $(num "$RATE_LOW") req/s (the same target at a rate this machine sustains): adtracker p99 − no-op p99 | $(pair sub_ p99 open_low p99 noop_open_low | agg '%+.2f ms') | ≤ +1 ms | $(p99_verdict open_low "$RATE_LOW" "$t_p99_low") |"
		open_low_cpu=$'\n'"| no-op, open loop $(num "$RATE_LOW") req/s | $(series srv_us noop_open_low | agg '%.2f') | — | $(series gen_us noop_open_low | agg '%.2f') |"
		open_low_cpu+=$'\n'"| adtracker, open loop $(num "$RATE_LOW") req/s | $(series srv_us open_low | agg '%.2f') | $(series ch_us open_low | agg '%.2f') | $(series gen_us open_low | agg '%.2f') |"
		if [ -f "$RES/open_low_yield.r1.json" ]; then
			# Not a target of its own: the same target, measured as docs/operations.md advises running a ClickHouse on the same machine.
			open_low_row+=$'\n'"| the same, ClickHouse at nice $CH_NICE (docs/operations.md, \"ClickHouse on the same machine\"; a third run per round, against the same no-op runs) | $(pair sub_ p99 open_low_yield p99 noop_open_low | agg '%+.2f ms') | ≤ +1 ms | $(p99_verdict open_low_yield "$RATE_LOW" "$t_p99_yield") |"
			open_low_cpu+=$'\n'"| adtracker, open loop $(num "$RATE_LOW") req/s, ClickHouse at nice $CH_NICE | $(series srv_us open_low_yield | agg '%.2f') | $(series ch_us open_low_yield | agg '%.2f') | $(series gen_us open_low_yield | agg '%.2f') |"
		fi
	fi
	{
		cat <<-EOF
	# Benchmarks

	Generated by \`make bench\` (scripts/bench.sh) on $started; total script time $((t_end - t_start)) s. Every figure below comes from
	that one run: $ROUNDS interleaved rounds of $DUR runs, each adtracker run next to its reference in the same round (the no-op HTTP
	server for the same traffic; clickhouse-client inserting the same events for batches), the order of each pair flipped from round
	to round. Targets are judged on the median of the per-round ratios; the range (min–max over the rounds) shows how much the shared
	machine moved them. Re-run it on yours:

	\`\`\`
	make bench                                         # BENCH_DURATION=$DUR BENCH_ROUNDS=$ROUNDS BENCH_CONNS=$CONNS BENCH_RATE=$RATE BENCH_RATE_LOW=$RATE_LOW
	BENCH_QUICK=1 scripts/bench.sh                     # iterating: 3 s runs, the rounds, hostile run and profiles only (~7 min)
	scripts/bench.sh --report                          # rewrite this file from the last run's raw results (.data/bench/results)
	\`\`\`

	## Machine

	| | |
	|---|---|
	| CPU | $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $NCPU cores visible to the run |${cpu_row}
	| memory | $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) |
	| kernel | $(uname -sr) |
	| Go | $(go version | awk '{print $3}') |
	| ClickHouse | $(m .clickhouse_version), $(m '.clickhouse_mode // "shared"') server on the same machine (loopback) |
	| load average before the run | $(m .loadavg) (other work on the machine shows in the "busy" column) |

	Load generator: \`adtracker loadgen\` on the same machine (fasthttp client, $CONNS connections, $(m '.batch_conns // 64') for the batch
	runs — 1000 events each in flight is what the default ring takes —, closed loop unless a rate is given), ${share}. Events: Zipf-distributed over $NADS ads, per view
	impression 1 : start 0.9 : quartiles 0.8/0.7/0.6 : complete 0.5 : click 0.02 (single mode: impressions and clicks), each with a
	client event_id. "End to end" is events found in ClickHouse by event_id after the pipeline drained, per second of run + drain;
	\`--verify\` checked that every event answered 2xx is stored exactly once.

	## Targets (issue 20)

	Median over the $ROUNDS rounds (range in brackets). CPU is user+system time from /proc/PID/stat over the run and its drain,
	divided by the events stored (adtracker) or answered (no-op).

	| target | measured | threshold | |
	|---|---:|---:|---|
	$(cpu_target_row "server CPU per single event / no-op CPU per request, POST /ads/*" single noop_single)
	$(cpu_target_row "server CPU per pixel event / no-op CPU per request, GET /t/{event}" pixel noop_pixel)
	| single-event throughput end to end / no-op req/s ($(all_ok single)) | $(pair div e2e single rps noop_single | agg '%.2f×') | ≥ 0.85× | $(meets "$t_thr" 0.85 ">=") |
	| batch 1000: adtracker's own CPU per event stored (per event received, refused batches included: $(series sent_us batch1000 | agg '%.2f µs')) | $(series srv_us batch1000 | agg '%.2f µs') | ≤ 0.50 µs | $(meets "$t_bcpu" 0.5 "<=") |
	| batch 1000 end to end / clickhouse-client inserting the same events ($(all_ok batch1000)) | $(pair div e2e batch1000 chref_eps chref | agg '%.2f×') | ≥ 0.80× | $(meets "$t_bch" 0.8 ">=") |
	| open loop $(num "$RATE") req/s: adtracker p99 − no-op p99 | $(pair sub_ p99 open p99 noop_open | agg '%+.2f ms') | ≤ +1 ms | $(p99_verdict open "$RATE" "$t_p99") |${open_low_row}
	| peak RSS (VmHWM), every adtracker run including the hostile batches | $(mb "$max_rss") (hostile run $(mb "$(p hostile .peak_rss_kb)")) | ≤ 100 MB | $(meets "$((max_rss / 1024))" 100 "<=") |
	| 0 allocs per event on the enqueue path | ${enqueue_allocs:-n/a} allocs/op (BenchmarkEnqueue) | 0 | $(meets "${enqueue_allocs:-n/a}" 0 "<=") |

	### What the profiles show in the way

	From the profiled runs below (perf, separate runs of the same length; the profiled run's own CPU per event, so the figures add up
	to that run, not to the medians): where adtracker spends CPU-µs per event, largest first. For what both servers do (scheduling,
	socket reads and writes, fasthttp's parsing) the single-event and pixel lines count only what adtracker spends beyond the no-op's
	profile of the same traffic. The handler lines include what they call (decode, enqueue, the handler's own client address).
	For the CPU and throughput targets the allowance is 0.3× the no-op's
	$(series srv_us noop_single | agg '%.2f') µs per request, i.e. $(series srv_us noop_single | med | awk '{ if ($1 == "n/a") print "n/a"; else printf "%.2f", $1 * 0.3 }') µs; adtracker spends $(pair sub_ srv_us single srv_us noop_single | agg '%.2f') µs more.

	- single events (POST /ads/*, throughput, open-loop p99): $(in_the_way profiled profiled_noop)
	- pixels (GET /t/{event}): $(in_the_way profiled_pixel profiled_noop_pixel)
	- single-event throughput: $(thr_way)
	- batch 1000 (own CPU, end to end against ClickHouse alone): $(in_the_way profiled_batch); ClickHouse itself spent
	  $(series ch_us batch1000 | agg '%.2f') CPU-µs per event during these runs against $(series chref_ch_us chref | agg '%.2f') when clickhouse-client inserted the same events.${bh_line}

	## CPU per event, by process

	CPU-µs per event (stored for adtracker and ClickHouse alone, answered for the no-op), median (range) over the rounds. The
	ClickHouse column during adtracker runs includes the verifier's queries after the run (\`--verify\` counts the stored ids; while
	the pipeline drains it polls \`system.parts\` and counts the run's ids only when the table has grown, since 2026-12-07).

	| run | server (adtracker or no-op) | ClickHouse | load generator / clickhouse-client |
	|---|---:|---:|---:|
	| no-op, single POST | $(series srv_us noop_single | agg '%.2f') | — | $(series gen_us noop_single | agg '%.2f') |
	| adtracker, single POST /ads/* | $(series srv_us single | agg '%.2f') | $(series ch_us single | agg '%.2f') | $(series gen_us single | agg '%.2f') |
	| no-op, pixel GET | $(series srv_us noop_pixel | agg '%.2f') | — | $(series gen_us noop_pixel | agg '%.2f') |
	| adtracker, pixel GET /t/{event} | $(series srv_us pixel | agg '%.2f') | $(series ch_us pixel | agg '%.2f') | $(series gen_us pixel | agg '%.2f') |
	| no-op, open loop $(num "$RATE") req/s | $(series srv_us noop_open | agg '%.2f') | — | $(series gen_us noop_open | agg '%.2f') |
	| adtracker, open loop $(num "$RATE") req/s | $(series srv_us open | agg '%.2f') | $(series ch_us open | agg '%.2f') | $(series gen_us open | agg '%.2f') |${open_low_cpu}
	| adtracker, batch 1000 POST /events | $(series srv_us batch1000 | agg '%.3f') | $(series ch_us batch1000 | agg '%.2f') | $(series gen_us batch1000 | agg '%.3f') |
	| ClickHouse alone: clickhouse-client INSERT … FORMAT Native of the same events, in arrival order | — | $(series chref_ch_us chref | agg '%.2f') | $(series chref_cl_us chref | agg '%.3f') |

	## Throughput and latency

	| run | req/s | end-to-end ev/s | p99 ms | peak RSS MB |
	|---|---:|---:|---:|---:|
	| no-op, single POST | $(series rps noop_single | agg '%.0f') | — | $(series p99 noop_single | agg '%.2f') | $(series rss_mb noop_single | agg '%.0f') |
	| adtracker, single POST /ads/* | $(series rps single | agg '%.0f') | $(series e2e single | agg '%.0f') | $(series p99 single | agg '%.2f') | $(series rss_mb single | agg '%.0f') |
	| no-op, pixel GET | $(series rps noop_pixel | agg '%.0f') | — | $(series p99 noop_pixel | agg '%.2f') | $(series rss_mb noop_pixel | agg '%.0f') |
	| adtracker, pixel GET /t/{event} | $(series rps pixel | agg '%.0f') | $(series e2e pixel | agg '%.0f') | $(series p99 pixel | agg '%.2f') | $(series rss_mb pixel | agg '%.0f') |
	| adtracker, batch 1000 POST /events | $(series rps batch1000 | agg '%.0f') | $(series e2e batch1000 | agg '%.0f') | $(series p99 batch1000 | agg '%.2f') | $(series rss_mb batch1000 | agg '%.0f') |
	| ClickHouse alone (clickhouse-client, same events) | — | $(series chref_eps chref | agg '%.0f') | — | — |
	| adtracker, batch 1000 with hostile bodies alongside | $(num "$(rps hostile)") | $(num "$(e2e hostile)") | $(ms "$(p99 hostile)") | $(rss_mb hostile) |

	Hostile run: batch-1000 traffic as above while curl keeps $(m '.hostile_conns // 16') more requests in flight, half of them 1 MB bodies of
	500,000 junk NDJSON items (refused whole: more items than ingest.max_batch_items), half 8,000-item batches with long fields and
	an unknown ad (every item refused, the error list bounded). Answers to the hostile bodies by status:
	$(sort "$RES/hostile_codes.txt" 2>/dev/null | uniq -c | awk '{printf "%s%s × %s", (NR > 1 ? ", " : ""), $1, $2}').
	EOF
		latency_table open "$RATE"
		if [ -n "$open_low_row" ]; then latency_table open_low "$RATE_LOW"; fi
		cat <<-EOF

	## Every run

	CPU/M ev = server CPU seconds per million stored (adtracker) or answered (no-op) events, run + drain. Peak RSS = the server's
	VmHWM, reset before each run. Gen CPU = the load generator's own CPU as a share of one core. Busy = cores in use on the whole
	machine during the run (everything: server, generator, ClickHouse, others).

	| run | req/s | acked ev/s | end-to-end ev/s | p50 ms | p99 ms | CPU/M ev | peak RSS | gen CPU | busy |
	|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
	EOF
		for ((rr = 1; rr <= ROUNDS; rr++)); do
			for k in noop_single single noop_pixel pixel noop_open open noop_open_low open_low batch1000; do
				if [ -f "$RES/$k.r$rr.json" ] || [[ $k != *open_low ]]; then row "$k.r$rr" "$k.r$rr"; fi
			done
			printf '| chref.r%s (clickhouse-client, %s events in %s s) | | | %s | | | | | | |\n' "$rr" "$(num "$(j "chref.r$rr" .rows)")" \
				"$(ms "$(j "chref.r$rr" .wall_s)")" "$(num "$(chref_eps "chref.r$rr")")"
		done
		for k in hostile batch100 single_nosync single_mem batch1000_mem; do [ -f "$RES/$k.json" ] && row "$k" "$k"; done
		if [ -f "$RES/single_mem.json" ]; then
			cat <<-EOF

	Durability, one run each: single events end to end with the ring file but no mirror / durable ring (round 1):
	$(ratio "$(e2e single_nosync)" "$(e2e single.r1)"); with the in-memory ring / durable: $(ratio "$(e2e single_mem)" "$(e2e single.r1)");
	batch 1000 in-memory / durable (round 1): $(ratio "$(e2e batch1000_mem)" "$(e2e batch1000.r1)").
	EOF
		fi
		cat <<-EOF

	### What the pipeline did

	From adtracker's /metrics before and after each run (run + drain): batches inserted into ClickHouse, their mean size and
	insert time, how many seconds of inserting per second of wall time (up to ingest.inserters, 1 by default), events refused with 503 because the
	ring was full, and the Go heap in use after the run.

	| run | batches | rows/batch | insert ms | inserting s/s | refused (503) | heap in use |
	|---|---:|---:|---:|---:|---:|---:|
	EOF
		for r in $(all_runs); do pipe_row "$r"; done
		cat <<-EOF

	### Correctness of every end-to-end run

	| run | verify | drain after the run | ClickHouse CPU s / M events |
	|---|---|---:|---:|
	EOF
		for r in $(all_runs); do
			printf '| %s | %s | %s s | %s |\n' "$r" "$(verdict $r)" "$(ms "$(j $r '.verify.drain_seconds // "n/a"')")" "$(ch_per_m $r)"
		done
		cat <<-EOF

	## Analytics over $(num "$AEVENTS") events (issue 5)

	EOF
		if [ "$ANALYTICS" = 1 ]; then
			cat <<-EOF
	$(num "$AEVENTS") events generated with \`INSERT … SELECT … FROM numbers()\` into events (the materialized views fire as on
	ingest) in $(jq -r .insert_s "$RES/analytics_gen.json") s. Each API figure is 40 sequential requests with the API's defaults
	(24 whole hours, the current one last; top 100 ads by clicks; hourly points for the busiest ad), once with the default fields (the exact counts and
	rates, read from the rollups' count columns) and once with \`fields=all\` (unique viewers and playback percentiles too, merged
	from the uniq and t-digest states); each raw scan is 10 runs of the same question asked of the raw events table with
	clickhouse-client.

	| question | API p50 ms | API p95 ms | raw scan p50 ms | raw scan p95 ms |
	|---|---:|---:|---:|---:|
	| GET /ads/analytics (default fields) vs top 100 ads by clicks from events, counts | $(ms "$(j analytics_api .latency.p50_ms)") | $(ms "$(j analytics_api .latency.p95_ms)") | $(ms "$(j analytics_raw .p50_ms)") | $(ms "$(j analytics_raw .p95_ms)") |
	| GET /ads/analytics?fields=all vs the same with uniq and quantiles | $(ms "$(j analytics_all_api .latency.p50_ms)") | $(ms "$(j analytics_all_api .latency.p95_ms)") | $(ms "$(j analytics_all_raw .p50_ms)") | $(ms "$(j analytics_all_raw .p95_ms)") |
	| GET /ads/{busiest ad}/timeseries (default fields) vs hourly GROUP BY of that ad's events, counts | $(ms "$(j timeseries_api .latency.p50_ms)") | $(ms "$(j timeseries_api .latency.p95_ms)") | $(ms "$(j timeseries_raw .p50_ms)") | $(ms "$(j timeseries_raw .p95_ms)") |
	| GET /ads/{busiest ad}/timeseries?fields=all vs the same with uniq and quantiles | $(ms "$(j timeseries_all_api .latency.p50_ms)") | $(ms "$(j timeseries_all_api .latency.p95_ms)") | $(ms "$(j timeseries_all_raw .p50_ms)") | $(ms "$(j timeseries_all_raw .p95_ms)") |
	EOF
		else
			echo "Not measured: GET /ads/analytics answered $code in this build (the query routes are issue 5). When they exist, \`make bench\`"
			echo "generates the events and fills this section."
		fi
		# VAST serving (issue 17): the open-loop runs of GET /vast/{id} and GET /vast, when measure found the route.
		echo
		echo "## VAST serving (issue 17)"
		echo
		if [ -f "$RES/vast_ad.json" ]; then
			echo "Open loop at $(num "$(j vast_meta .rate)") req/s for $DUR each (latency from the scheduled send time), $CONNS connections;"
			if [ -n "$(j vast_meta '.accept_encoding // ""')" ]; then
				echo "every answer must be 200. Each request sends \`Accept-Encoding: $(j vast_meta .accept_encoding)\`, as players do, so the tags go out"
				echo "compressed (\`http.compress\`). Target: p99 ≤ 2 ms."
			else
				echo "every answer must be 200. Target: p99 ≤ 2 ms."
			fi
			echo
			echo "| request | achieved req/s | answered 200 | p50 ms | p99 ms | p99.9 ms | max ms | p99 ≤ 2 ms |"
			echo "|---|---:|---:|---:|---:|---:|---:|---|"
			for r in vast_ad vast_pick; do
				label="GET /vast (weighted pick)"
				[ "$r" = vast_ad ] && label="GET /vast/$(j vast_meta .ad)"
				printf '| %s | %s | %s of %s | %s | %s | %s | %s | %s |\n' "$label" "$(num "$(j "$r" .requests_per_sec)")" \
					"$(num "$(j "$r" '.status["200"] // 0')")" "$(num "$(j "$r" .requests)")" "$(ms "$(j "$r" .latency.p50_ms)")" \
					"$(ms "$(j "$r" .latency.p99_ms)")" "$(ms "$(j "$r" .latency.p999_ms)")" "$(ms "$(j "$r" .latency.max_ms)")" \
					"$(meets "$(j "$r" .latency.p99_ms)" 2 "<=")"
			done
		else
			echo "Not measured: GET /vast/{id} answered $(j vast_meta .code) in this build."
		fi

		cat <<-EOF

	## Go microbenchmarks

	\`go test -run '^\$' -bench . -benchmem ./ingest/... ./loadgen ./server\` (ns/op, B/op and allocs/op per operation; parallel benchmarks
	use both cores):

	\`\`\`
	$(grep -E '^(Benchmark|pkg:|ok|FAIL|---)' "$RES/micro.txt" 2>/dev/null | grep -v '^ok' || echo "not run")
	\`\`\`

	## Profiles of adtracker

	EOF
		for prof in profiled_noop profiled profiled_pixel profiled_batch; do
			if [ ! -s "$RES/$prof.children.txt" ]; then
				echo "No profile ($prof): perf is not installed (apt-get install linux-perf), could not attach, or BENCH_PROFILE=0."
				echo
				continue
			fi
			what="single events (POST /ads/*)"
			[ "$prof" = profiled_batch ] && what="batch 1000 (POST /events)"
			[ "$prof" = profiled_pixel ] && what="pixels (GET /t/{event})"
			[ "$prof" = profiled_noop ] && what="the no-op server, single events (the reference: what every HTTP request costs here)"
			cat <<-EOF
	### $what

	\`perf record -F 499 -g -p <adtracker pid>\` for a separate run of the same length, not one in the tables (perf, not pprof, because
	it also sees the kernel). Inclusive share of adtracker's samples, and that share of the profiled run's own
	$(srv_us "$prof") CPU-µs per event (components nest: the handler is inside the route wrapper inside the router; decode and
	enqueue inside the handler).

	$(profile_table "$prof")

	Self time, top symbols:

	\`\`\`
	$(cat "$RES/$prof.self.txt")
	\`\`\`

	EOF
		done
		cat <<-EOF
	## Analysis

	<!-- analysis:begin -->
	$analysis
	<!-- analysis:end -->
	EOF
		if [ -n "$cluster" ]; then
			echo
			printf '%s\n' "$cluster"
		fi
	} >"$OUT"
	log "wrote $OUT; raw results in $RES"
}

if [ "$REPORT_ONLY" = 0 ]; then
	measure
fi
report
