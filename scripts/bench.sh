#!/usr/bin/env bash
# `make bench`: measures adtracker against references taken in the same run on the same machine, and writes BENCHMARKS.md.
#
# It starts the local services (scripts/services.sh up), builds the binary, and runs its own adtracker (port BENCH_PORT, data in
# .data/bench, ClickHouse database and Postgres database BENCH_DATABASE, so other data is left alone) next to the no-op HTTP
# ceiling server (`adtracker loadgen noop`), each on a port it checked was free. Then, each run BENCH_DURATION long with BENCH_CONNS connections:
#
#   ceiling     no-op server vs adtracker, single events (POST /ads/*), pixels and batches, end to end (--verify)
#   latency     open loop at BENCH_RATE requests/s against both
#   durability  single events with the ring file but no msync (fsync_interval=0), then single and batch with the in-memory ring
#   resources   server CPU seconds per million events, peak RSS (VmHWM, reset before each run), the generator's own CPU
#   profile     perf record of adtracker during one more single-event run, not used for any figure (when perf is installed)
#   micro       go test -bench for ./ingest/... and ./loadgen
#   analytics   only when GET /ads/analytics exists: BENCH_ANALYTICS_EVENTS generated events, API vs raw scan
#   vast        only when GET /vast/{id} exists: GET /vast/{id} and GET /vast, open loop at BENCH_VAST_RATE (5000) req/s
#
# Hand-written analysis between the "analysis" markers of BENCHMARKS.md survives a re-run; everything else is regenerated.
# `scripts/bench.sh --report` rewrites BENCHMARKS.md from the raw results of the last run (.data/bench/results) without measuring.
#
# Environment: BENCH_DURATION (10s) BENCH_CONNS (64) BENCH_RATE (50000) BENCH_PORT, BENCH_NOOP_PORT (default: free ports from 38080)
# BENCH_DATABASE (adtracker_bench) BENCH_OUT (BENCHMARKS.md) BENCH_ADS (1000) BENCH_ANALYTICS_EVENTS (10000000) BENCH_MICRO (1)
# BENCH_WRK (1: also measure both servers with wrk, when installed), BENCH_CLICKHOUSE (private: a ClickHouse server of its own in
# .data/bench/clickhouse, started and stopped by this script, so the ClickHouse CPU it reports is the benchmark's alone and nothing
# else on the machine queries it; shared: the one scripts/services.sh runs on CH_TCP_PORT), PG_PORT, CH_TCP_PORT.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ADT_REPO"
export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"

DUR="${BENCH_DURATION:-10s}"
CONNS="${BENCH_CONNS:-64}"
RATE="${BENCH_RATE:-50000}"
PORT="${BENCH_PORT:-}"
NOOP_PORT="${BENCH_NOOP_PORT:-}"
DB="${BENCH_DATABASE:-adtracker_bench}"
OUT="${BENCH_OUT:-BENCHMARKS.md}"
NADS="${BENCH_ADS:-1000}"
AEVENTS="${BENCH_ANALYTICS_EVENTS:-10000000}"
PG_PORT="${PG_PORT:-5432}"
CH_TCP_PORT="${CH_TCP_PORT:-9000}"
CH_MODE="${BENCH_CLICKHOUSE:-private}"
case "$CH_MODE" in private | shared) ;; *) die "BENCH_CLICKHOUSE must be private or shared" ;; esac
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
	! port_listening "$PORT" || die "port $PORT was taken by another process"
	# shellcheck disable=SC2046
	env $(server_env "$1" "$2" "${3:-}") "$BIN" serve >"$BDIR/adtracker-$1.log" 2>&1 &
	SERVER_PID=$!
	wait_http "$URL/healthz" "$SERVER_PID" "$BDIR/adtracker-$1.log"
	log "adtracker (pid $SERVER_PID, durable=$2, fsync_interval=${3:-1s}) on $URL"
}

stop_server() {
	stop_pid "$SERVER_PID" adtracker
	SERVER_PID=""
}

# --- measurements ----------------------------------------------------------------------------------------------------------------
TCK=$(getconf CLK_TCK)
proc_cpu() { # PID -> CPU seconds (user+system) so far
	if [ -z "$1" ] || [ ! -r "/proc/$1/stat" ]; then
		echo 0
		return
	fi
	# Fields after the parenthesised command name: utime is the 12th, stime the 13th.
	sed 's/^.*) //' "/proc/$1/stat" | awk -v t="$TCK" '{printf "%.3f", ($12 + $13) / t}'
}
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
		--argjson busy "$(awk -v a="$b0" -v b="$b1" -v c="$t0" -v d="$t1" -v n="$(nproc)" 'BEGIN {printf "%.3f", (b - a) / (d - c) * n}')" \
		--argjson wall "$(awk -v c="$t0" -v d="$t1" -v n="$(nproc)" -v t="$TCK" 'BEGIN {printf "%.3f", (d - c) / n / t}')" \
		--argjson rss "${rss:-0}" --argjson rc "$rc" \
		'{server_cpu_s: $cpu, clickhouse_cpu_s: $ch, machine_busy_cores: $busy, wall_s: $wall, peak_rss_kb: $rss, exit: $rc}' \
		>"$RES/$name.proc.json"
	local summary
	summary=$(jq -r '"\(.requests_per_sec|floor) req/s, \(.acked_events_per_sec|floor) ev/s acked, p99 \(.latency.p99_ms) ms" +
		(if .verify then ", verify \(if .verify.ok then "OK" else "MISMATCH" end), e2e \(.verify.end_to_end_events_per_sec|floor) ev/s" else "" end)' \
		"$RES/$name.json" 2>/dev/null || echo "no result (exit $rc; see $RES/$name.log)")
	log "$name: $summary"
}

# fresh empties the bench database's tables (never the development database: DB is checked above) and waits, at most 60 s, until
# ClickHouse runs no merge.
fresh() {
	local t i
	for t in $($CH -q "SELECT name FROM system.tables WHERE database = '$DB' AND engine LIKE '%MergeTree' AND name != 'schema_migrations'"); do
		$CH -q "TRUNCATE TABLE $DB.$t"
	done
	for ((i = 0; i < 120; i++)); do
		[ "$($CH -q 'SELECT count() FROM system.merges')" = 0 ] && return 0
		sleep 0.5
	done
	log "ClickHouse still merging after 60 s; measuring anyway"
}

verify_args=(--verify --clickhouse "127.0.0.1:$CHB_PORT" --database "$DB")

measure() {
	started=$(date -u +%FT%TZ)
	t_start=$(date +%s)
	loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
	rm -rf "$RES" "$BDIR/ingest" "$BDIR/ingest-nosync" "$BDIR/ingest-mem" "$BDIR/perf.data"
	mkdir -p "$RES"
	# --- setup -------------------------------------------------------------------------------------------------------------------------
	step "services and build"
	scripts/services.sh up >&2
	command -v jq >/dev/null || apt_install jq
	command -v curl >/dev/null || apt_install curl
	go build -o "$BIN" ./cmd/adtracker
	if [ "$CH_MODE" = private ]; then
		log "starting a private ClickHouse in $BDIR/clickhouse on 127.0.0.1:$CHB_PORT"
		mkdir -p "$BDIR/clickhouse"
		ch_start "$BDIR/clickhouse" "$CHB_PORT" "$CHB_HTTP"
		CH_PID=$(ch_pid "$BDIR/clickhouse")
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
	# Each adtracker run starts from empty tables with no merge running, so ClickHouse's CPU and the latency of a run are its own,
	# not the background merging of the previous run's parts. The latency run comes before the batch runs for the same reason.
	step "ceiling: no-op server vs adtracker, $CONNS connections, $DUR each"
	run_lg noop_single "$NOOP_PID" --url "$NOOP_URL" --mode single --duration "$DUR" "${ADS_ARG[@]}"
	fresh
	run_lg single "$SERVER_PID" --url "$URL" --mode single --duration "$DUR" "${ADS_ARG[@]}" "${verify_args[@]}"

	step "latency: open loop at $RATE req/s"
	run_lg noop_open "$NOOP_PID" --url "$NOOP_URL" --mode single --rate "$RATE" --duration "$DUR" "${ADS_ARG[@]}"
	fresh
	run_lg open "$SERVER_PID" --url "$URL" --mode single --rate "$RATE" --duration "$DUR" "${ADS_ARG[@]}" "${verify_args[@]}"

	step "pixels and batches"
	run_lg noop_pixel "$NOOP_PID" --url "$NOOP_URL" --mode pixel --duration "$DUR" "${ADS_ARG[@]}"
	fresh
	run_lg pixel "$SERVER_PID" --url "$URL" --mode pixel --duration "$DUR" "${ADS_ARG[@]}" "${verify_args[@]}"
	run_lg noop_batch1000 "$NOOP_PID" --url "$NOOP_URL" --mode batch --batch 1000 --duration "$DUR" "${ADS_ARG[@]}"
	fresh
	run_lg batch100 "$SERVER_PID" --url "$URL" --mode batch --batch 100 --duration "$DUR" "${ADS_ARG[@]}" "${verify_args[@]}"
	fresh
	run_lg batch1000 "$SERVER_PID" --url "$URL" --mode batch --batch 1000 --duration "$DUR" "${ADS_ARG[@]}" "${verify_args[@]}"

	if [ "${BENCH_WRK:-1}" = 1 ] && command -v wrk >/dev/null; then
		step "wrk reference (a C client, lighter than ours): no-op vs adtracker POST /ads/impression"
		cat >"$BDIR/impression.lua" <<-LUA
	wrk.method = "POST"
	wrk.body = '{"ad_id":${ADS%%,*},"viewer_id":"v-wrk","video_playback_time":1.5}'
	wrk.headers["Content-Type"] = "application/json"
	LUA
		wrk -t2 -c"$CONNS" -d"$DUR" -s "$BDIR/impression.lua" "$NOOP_URL/ads/impression" >"$RES/wrk_noop.txt" 2>&1 || true
		wrk -t2 -c"$CONNS" -d"$DUR" -s "$BDIR/impression.lua" "$URL/ads/impression" >"$RES/wrk_single.txt" 2>&1 || true
		log "wrk: noop $(awk '/Requests\/sec/ {print $2}' "$RES/wrk_noop.txt") req/s, adtracker $(awk '/Requests\/sec/ {print $2}' "$RES/wrk_single.txt") req/s"
	fi

	# The profile has a run of its own: perf's sampling costs CPU on a box where every core is contended, and the no-op run it is
	# compared with has no profiler attached.
	if command -v perf >/dev/null; then
		step "profile: one more single-event run under perf record (not in the tables)"
		fresh
		perf record -F 499 -g -p "$SERVER_PID" -o "$BDIR/perf.data" >"$BDIR/perf.log" 2>&1 &
		PERF_PID=$!
		run_lg profiled "$SERVER_PID" --url "$URL" --mode single --duration "$DUR" "${ADS_ARG[@]}" "${verify_args[@]}"
		kill -INT "$PERF_PID" 2>/dev/null || true
		wait "$PERF_PID" 2>/dev/null || true
		PERF_PID=""
	fi

	# Analytics (issue 5): measured only when the query routes exist in this build (GET /ads/analytics answers 200; without them
	# the path falls to GET /ads/{id}).
	ANALYTICS=0
	code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/ads/analytics" || true)
	if [ "$code" = 200 ]; then
		ANALYTICS=1
		step "analytics over $AEVENTS generated events"
		fresh
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
	# BENCH_VAST_RATE (5,000) req/s each, every answer 200. Target: p99 ≤ 2 ms.
	local vrate="${BENCH_VAST_RATE:-5000}" vcode
	vcode=$(curl -s -o /dev/null -w '%{http_code}' "$URL/vast/${ADS%%,*}" || true)
	echo "{\"rate\": $vrate, \"code\": \"$vcode\", \"ad\": ${ADS%%,*}}" >"$RES/vast_meta.json"
	if [ "$vcode" = 200 ]; then
		step "VAST serving: open loop at $vrate req/s"
		run_lg vast_ad "$SERVER_PID" --url "$URL" --mode get --rate "$vrate" --duration "$DUR" --path "/vast/${ADS%%,*}"
		run_lg vast_pick "$SERVER_PID" --url "$URL" --mode get --rate "$vrate" --duration "$DUR" --path "/vast"
	fi

	step "durability: the ring file without msync, and the in-memory ring (ADTRACKER_INGEST_DURABLE=false)"
	# The ring file survives SIGKILL through the page cache alone; the periodic msync (ingest.fsync_interval) is what bounds loss
	# on a machine crash. This run prices that msync separately from the file itself.
	stop_server
	start_server ingest-nosync true 0s
	fresh
	run_lg single_nosync "$SERVER_PID" --url "$URL" --mode single --duration "$DUR" "${ADS_ARG[@]}" "${verify_args[@]}"
	stop_server
	start_server ingest-mem false
	fresh
	run_lg single_mem "$SERVER_PID" --url "$URL" --mode single --duration "$DUR" "${ADS_ARG[@]}" "${verify_args[@]}"
	fresh
	run_lg batch1000_mem "$SERVER_PID" --url "$URL" --mode batch --batch 1000 --duration "$DUR" "${ADS_ARG[@]}" "${verify_args[@]}"
	stop_server
	stop_pid "$NOOP_PID" "noop server"
	NOOP_PID=""

	if [ "${BENCH_MICRO:-1}" = 1 ]; then
		step "Go microbenchmarks"
		go test -run '^$' -bench . -benchmem -benchtime 1s -timeout 5m ./ingest/... ./loadgen >"$RES/micro.txt" 2>&1 ||
			log "some microbenchmarks failed; see $RES/micro.txt"
	fi

	if [ -s "$BDIR/perf.data" ]; then
		perf report -i "$BDIR/perf.data" --stdio --no-children --sort symbol --percent-limit 1.2 2>/dev/null |
			grep -E '^ +[0-9.]+%' | sed -E 's/[[:space:]]+-[[:space:]]+-[[:space:]]*$//' | head -25 >"$RES/perf_self.txt" || true
		perf report -i "$BDIR/perf.data" --stdio --children --sort symbol --percent-limit 0.1 2>/dev/null |
			grep -E '^ +[0-9.]+%' | sed -E 's/[[:space:]]+-[[:space:]]+-[[:space:]]*$//' >"$RES/perf_children.txt" || true
	fi
	jq -n --arg started "$started" --argjson t_start "$t_start" --argjson t_end "$(date +%s)" --arg loadavg "$loadavg" \
		--arg dur "$DUR" --argjson conns "$CONNS" --argjson rate "$RATE" --argjson nads "$NADS" --argjson aevents "$AEVENTS" \
		--argjson analytics "$ANALYTICS" --arg code "$code" --arg chmode "$CH_MODE" --arg chversion "$($CH -q 'SELECT version()' 2>/dev/null || echo '?')" \
		'{started: $started, t_start: $t_start, t_end: $t_end, loadavg: $loadavg, duration: $dur, conns: $conns, rate: $rate,
		nads: $nads, analytics_events: $aevents, analytics: $analytics, analytics_code: $code, clickhouse_version: $chversion,
		clickhouse_mode: $chmode}' \
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
	DUR=$(m .duration)
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
	noop_rps=$(j noop_single .requests_per_sec)
	single_e2e=$(e2e single)
	pixel_e2e=$(e2e pixel)
	b1000=$(e2e batch1000)
	b100=$(e2e batch100)
	open_p99=$(j open .latency.p99_ms)
	max_rss=0
	for r in single pixel batch100 batch1000 open; do
		if [ -f "$RES/$r.proc.json" ]; then max_rss=$(jq -r --argjson m "$max_rss" '[.peak_rss_kb, $m] | max' "$RES/$r.proc.json"); fi
	done
	enqueue_allocs=""
	if [ -f "$RES/micro.txt" ]; then
		enqueue_allocs=$(awk '$1 ~ /^BenchmarkEnqueue/ {for (i = 1; i <= NF; i++) if ($i == "allocs/op") print $(i - 1)}' "$RES/micro.txt" |
			sort -n | tail -1)
	fi
	meets() { awk -v a="$1" -v b="$2" -v op="$3" 'BEGIN { if (a == "n/a" || a == "") { print "not measured"; exit }
		ok = (op == ">=") ? (a >= b) : (a <= b); print ok ? "met" : "**missed**" }'; }
	analysis=""
	if [ -f "$OUT" ]; then
		analysis=$(awk '/<!-- analysis:begin -->/ {on = 1; next} /<!-- analysis:end -->/ {on = 0} on' "$OUT")
	fi
	[ -n "$analysis" ] || analysis="_(No analysis written yet. Add it here; \`make bench\` keeps this section.)_"

	{
		cat <<-EOF
	# Benchmarks

	Generated by \`make bench\` (scripts/bench.sh) on $started; total script time $((t_end - t_start)) s. Every figure below comes from
	that one run; each result sits next to a reference measured in the same run on the same machine. Re-run it on yours:

	\`\`\`
	make bench                                   # BENCH_DURATION=10s BENCH_CONNS=$CONNS BENCH_RATE=$RATE
	\`\`\`

	## Machine

	| | |
	|---|---|
	| CPU | $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores visible to the run |
	| memory | $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) |
	| kernel | $(uname -sr) |
	| Go | $(go version | awk '{print $3}') |
	| ClickHouse | $(m .clickhouse_version), $(m '.clickhouse_mode // "shared"') server on the same machine (loopback) |
	| load average before the run | $(m .loadavg) (other work on the machine shows in the "machine busy" column) |

	Load generator: \`adtracker loadgen\` on the same machine (fasthttp client, $CONNS connections, closed loop unless a rate is
	given), so generator, server and ClickHouse share the $(nproc) cores. Events: Zipf-distributed over $NADS ads, per view
	impression 1 : start 0.9 : quartiles 0.8/0.7/0.6 : complete 0.5 : click 0.02 (single mode: impressions and clicks), each with a
	client event_id. "End to end" is events found in ClickHouse by event_id after the pipeline drained, per second of run + drain;
	\`--verify\` checked that every event answered 2xx is stored exactly once.

	## Results

	Runs of $DUR, $CONNS connections. CPU/M ev = adtracker CPU seconds per million stored events (run + drain). Peak RSS = adtracker's
	VmHWM, reset before each run. Gen CPU = the load generator's own CPU as a share of one core. Busy = cores in use on the whole
	machine during the run (everything: server, generator, ClickHouse, others).

	| run | req/s | acked ev/s | end-to-end ev/s | p50 ms | p99 ms | CPU/M ev | peak RSS | gen CPU | busy |
	|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
	$(row "no-op ceiling, single POST" noop_single)
	$(row "adtracker single POST /ads/*" single)
	$(row "no-op ceiling, pixel GET" noop_pixel)
	$(row "adtracker pixel GET /t/{event}" pixel)
	$(row "no-op ceiling, batch 1000" noop_batch1000)
	$(row "adtracker batch 100 /events" batch100)
	$(row "adtracker batch 1000 /events" batch1000)
	$(row "adtracker single, ring file without msync" single_nosync)
	$(row "adtracker single, in-memory ring" single_mem)
	$(row "adtracker batch 1000, in-memory ring" batch1000_mem)

	### Ratios

	| comparison | value |
	|---|---:|
	| single-event end to end / no-op ceiling (req/s) | $(ratio "$single_e2e" "$noop_rps") |
	| single-event accepted / no-op ceiling | $(ratio "$(j single .requests_per_sec)" "$noop_rps") |
	| pixel end to end / no-op pixel ceiling | $(ratio "$pixel_e2e" "$(j noop_pixel .requests_per_sec)") |
	| batch 1000 end to end / the no-op ceiling for batch 1000 (events/s) | $(ratio "$b1000" "$(j noop_batch1000 .acked_events_per_sec)") |
	| durable / in-memory ring, single end to end | $(ratio "$single_e2e" "$(e2e single_mem)") |
	| durable / ring file without msync, single end to end | $(ratio "$single_e2e" "$(e2e single_nosync)") |
	| durable / in-memory ring, batch 1000 end to end | $(ratio "$b1000" "$(e2e batch1000_mem)") |
	EOF
		if [ -f "$RES/wrk_noop.txt" ]; then
			wn=$(awk '/Requests\/sec/ {print $2}' "$RES/wrk_noop.txt")
			ws=$(awk '/Requests\/sec/ {print $2}' "$RES/wrk_single.txt")
			echo "| wrk (C client): adtracker POST /ads/impression / no-op, accepted req/s ($(num "$ws") / $(num "$wn")) | $(ratio "$ws" "$wn") |"
		fi
		cat <<-EOF

	### Latency at a fixed rate (open loop, $(num "$RATE") req/s, single events)

	Latency counts from each request's scheduled send time, so a stall is charged to every request it delayed (no coordinated
	omission); service time counts from the actual send.

	| server | achieved req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | service p99 ms | sent > 1 ms late | verify |
	|---|---:|---:|---:|---:|---:|---:|---:|---:|---|
	EOF
		for r in noop_open open; do
			label="no-op"
			[ "$r" = open ] && label="adtracker"
			printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$(num "$(j $r .requests_per_sec)")" \
				"$(ms "$(j $r .latency.p50_ms)")" "$(ms "$(j $r .latency.p90_ms)")" "$(ms "$(j $r .latency.p99_ms)")" \
				"$(ms "$(j $r .latency.p999_ms)")" "$(ms "$(j $r .latency.max_ms)")" "$(ms "$(j $r .service_time.p99_ms)")" \
				"$(num "$(j $r '.late_sends // 0')")" "$(verdict $r)"
		done
		cat <<-EOF

	### What the pipeline did

	From adtracker's /metrics before and after each run (run + drain): batches inserted into ClickHouse, their mean size and
	insert time, how many seconds of inserting per second of wall time (2 inserters: up to 2.0), events refused with 503 because the
	ring was full, and the Go heap in use after the run.

	| run | batches | rows/batch | insert ms | inserting s/s | refused (503) | heap in use |
	|---|---:|---:|---:|---:|---:|---:|
	EOF
		for r in single pixel batch100 batch1000 open single_nosync single_mem batch1000_mem; do pipe_row "$r"; done
		cat <<-EOF

	### Correctness of every end-to-end run

	| run | verify | drain after the run | ClickHouse CPU s / M events |
	|---|---|---:|---:|
	EOF
		for r in single pixel batch100 batch1000 open single_nosync single_mem batch1000_mem; do
			printf '| %s | %s | %s s | %s |\n' "$r" "$(verdict $r)" "$(ms "$(j $r '.verify.drain_seconds // "n/a"')")" "$(ch_per_m $r)"
		done
		cat <<-EOF

	## Targets

	| target | measured | |
	|---|---:|---|
	| single-event ingest end to end ≥ 0.7× the no-op ceiling | $(ratio "$single_e2e" "$noop_rps") | $(meets "$(awk -v a="$single_e2e" -v b="$noop_rps" 'BEGIN { if (a == "n/a" || b == "n/a") print "n/a"; else print a / b }')" 0.7 ">=") |
	| batched ≥ 1.5M events/s end to end | $(num "$b1000") ev/s (batch 1000), $(num "$b100") (batch 100) | $(meets "$b1000" 1500000 ">=") |
	| p99 ≤ 2 ms at $(num "$RATE") req/s | $(ms "$open_p99") ms | $(meets "$open_p99" 2 "<=") |
	| peak RSS ≤ 100 MB | $(mb "$max_rss") (largest of the durable runs) | $(meets "$((max_rss / 1024))" 100 "<=") |
	| 0 allocs per event on the enqueue path | ${enqueue_allocs:-n/a} allocs/op (BenchmarkEnqueue) | $(meets "${enqueue_allocs:-n/a}" 0 "<=") |
	| analytics p95 ≤ 50 ms over 10M events | $([ "$ANALYTICS" = 1 ] && echo "$(ms "$(j analytics_api .latency.p95_ms)") ms top 100, $(ms "$(j timeseries_api .latency.p95_ms)") ms series (default fields; fields=all $(ms "$(j analytics_all_api .latency.p95_ms)") / $(ms "$(j timeseries_all_api .latency.p95_ms)") ms)" || echo "—") | $([ "$ANALYTICS" = 1 ] && meets "$(j analytics_api .latency.p95_ms)" 50 "<=" || echo "not measured (no query routes in this build)") |

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
			echo "every answer must be 200. Target: p99 ≤ 2 ms."
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

	\`go test -run '^\$' -bench . -benchmem ./ingest/... ./loadgen\` (ns/op, B/op and allocs/op per operation; parallel benchmarks
	use both cores):

	\`\`\`
	$(grep -E '^(Benchmark|pkg:|ok|FAIL|---)' "$RES/micro.txt" 2>/dev/null | grep -v '^ok' || echo "not run")
	\`\`\`

	## Profile of adtracker during the single-event run

	EOF
		if [ -s "$RES/perf_self.txt" ]; then
			cat <<-EOF
	\`perf record -F 499 -g -p <adtracker pid>\` for a separate single-event run of the same length, not the one in the tables (perf, not \`debug.pprof_addr\`, because it also sees the kernel). Where adtracker's CPU
	went, by component: inclusive share of its samples, and that share of its $(cpu_per_m single) CPU seconds per million events
	as microseconds per event (components nest: the handler is inside the router, decode and enqueue inside the handler).

	| component | symbol | share | µs per event |
	|---|---|---:|---:|
	EOF
			while IFS='|' read -r label re; do
				# The pattern goes through the environment: awk would eat the backslashes of a -v value.
				pct=$(RE="$re" awk '{sym = $0; sub(/^.*\] /, "", sym); if (sym ~ ENVIRON["RE"]) {v = $1; sub(/%/, "", v); if (v + 0 > m) m = v + 0}}
					END {printf "%.1f", m}' "$RES/perf_children.txt")
				printf '| %s | %s | %s %% | %s |\n' "$label" "\`$(printf '%s' "$re" | tr -d '\\^$' | sed 's/\[0-9\]+/N/')\`" "$pct" \
					"$(awk -v p="$pct" -v c="$(cpu_per_m single)" 'BEGIN { if (c == "n/a") print "n/a"; else printf "%.2f", p / 100 * c }')"
			done <<-'COMPONENTS'
	HTTP server, all of it (fasthttp)|fasthttp\.\(\*Server\)\.serveConnCounted$
	socket writes (responses)|^syscall\.write$
	socket reads (requests)|^syscall\.read$
	router, middleware and handlers|server\.\(\*Server\)\.serve$
	metrics middleware (wraps the handler)|server\.\(\*Server\)\.build\.\(\*Server\)\.instrument\.func[0-9]+$
	ingest handler (single event)|ingest\.\(\*Handlers\)\.Register\.\(\*Handlers\)\.single\.func[0-9]+$
	JSON decode|decode\.\(\*Decoder\)\.DecodeJSON$
	enqueue: encode + ring record|pipeline\.\(\*Pipeline\)\.Enqueue$
	batcher (ring → batch)|pipeline\.\(\*Pipeline\)\.batcher$
	duplicate window (open-addressing table)|pipeline\.\(\*dupWindow\)\.seen$
	inserter (ClickHouse client)|pipeline\.\(\*Pipeline\)\.inserter$
	LZ4 compression|lz4block\.\(\*Compressor\)\.CompressBlock$
	ring file msync|pipeline\.\(\*Pipeline\)\.syncer$
	garbage collector|^runtime\.gcBgMarkWorker$
	allocation|^runtime\.mallocgc$
	goroutine scheduling|^runtime\.schedule$
	COMPONENTS
			cat <<-EOF

	Self time, top symbols:

	\`\`\`
	$(cat "$RES/perf_self.txt")
	\`\`\`
	EOF
		else
			echo "No profile: perf is not installed (apt-get install linux-perf) or could not attach."
		fi
		cat <<-EOF

	## Analysis

	<!-- analysis:begin -->
	$analysis
	<!-- analysis:end -->
	EOF
	} >"$OUT"
	log "wrote $OUT; raw results in $RES"
}

if [ "$REPORT_ONLY" = 0 ]; then
	measure
fi
report
