#!/usr/bin/env bash
# Interleaved price of the ring's durability: adtracker with the durable ring (ring file + its mirror written every
# ingest.fsync_interval), the ring file without the mirror (fsync_interval=0) and the in-memory ring, in turn, BENCH_DUR_ROUNDS rounds (order reversed every other
# round), each serving batch 1000 (16 connections) and single events (64 connections) for BENCH_DURATION, verified end to end.
# Prints one line per run: end-to-end events/s, adtracker's and ClickHouse's CPU-µs per stored event, 503 answers.
#
# The same loop pairs two builds (a change's before/after figure): BENCH_BASE_BINARY=/path/to/old/adtracker adds the configuration
# "base" (that binary, durable ring); BENCH_DUR_CONFIGS picks and orders the configurations (default "durable nosync mem") and
# BENCH_DUR_KINDS the traffic (default "batch single"; "pixel" is GET /t/{event}; "open" is single events at a fixed
# BENCH_DUR_RATE, default 20000/s, for the tail latency). E.g. before/after of the working tree against HEAD~1:
#   git worktree add /tmp/base HEAD~1 && (cd /tmp/base && go build -o /tmp/adtracker-base ./cmd/adtracker)
#   go build -o /tmp/adtracker-new ./cmd/adtracker
#   BENCH_BINARY=/tmp/adtracker-new BENCH_BASE_BINARY=/tmp/adtracker-base BENCH_DUR_CONFIGS="base durable" scripts/bench-durability.sh
# (BENCH_BINARY: the binary of the other configurations; default the one `make bench` built, .data/bench/adtracker.)
# To pair two settings of one build, give a wrapper script as either binary; it must exec, so the measured PID is adtracker's:
#   printf '#!/bin/sh\nexport ADTRACKER_INGEST_FLUSH_INTERVAL=500ms\nexec %s "$@"\n' "$PWD/.data/bench/adtracker" >/tmp/adt-500ms
#   chmod +x /tmp/adt-500ms; BENCH_BASE_BINARY=/tmp/adt-500ms BENCH_DUR_CONFIGS="base durable" scripts/bench-durability.sh
# Every server is new (fresh data directory); before its runs it serves BENCH_DUR_WARMUP (4s; 0 = none) of the first kind
# (closed-loop single events when that is open), not measured, so the runs see a warm process as make bench's do.
# BENCH_PPROF_DIR=dir: adtracker serves debug.pprof_addr, and a CPU profile of every run (all but its last second) lands in
# dir/KIND-CONFIG-rROUND.pprof (`go tool pprof`; `go tool pprof -proto dir/*.pprof` merges them, e.g. into a PGO profile).
#
# Needs a finished `make bench` (or BENCH_QUICK=1 scripts/bench.sh): it reuses its binary, its private ClickHouse data directory
# (.data/bench/clickhouse, started here on free ports and stopped at exit) and its database BENCH_DATABASE (adtracker_bench).
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ADT_REPO"
bench_reuse
DUR="${BENCH_DURATION:-8s}"
ROUNDS="${BENCH_DUR_ROUNDS:-3}"
CONFIGS="${BENCH_DUR_CONFIGS:-durable nosync mem}"
KINDS="${BENCH_DUR_KINDS:-batch single}"
WARMUP="${BENCH_DUR_WARMUP:-4s}"
case "$WARMUP" in 0 | 0s) WARMUP=0 ;; *[!0-9s]* | s | '') die "BENCH_DUR_WARMUP must be whole seconds, e.g. 4s, or 0" ;; esac
BASE="${BENCH_BASE_BINARY:-}"
PG_PORT="${PG_PORT:-5432}"
[ -x "$BDIR/adtracker" ] || die "run make bench (or BENCH_QUICK=1 scripts/bench.sh) first"

CHP=$(free_port 39100)
CHH=$(free_port $((CHP + 1)))
SP=""
cleanup() {
	if [ -n "$SP" ]; then stop_pid "$SP" adtracker; fi
	ch_stop "$BDIR/clickhouse"
}
trap cleanup EXIT
ch_start "$BDIR/clickhouse" "$CHP" "$CHH"
CH_PID=$(ch_pid "$BDIR/clickhouse")
CH="clickhouse-client --host 127.0.0.1 --port $CHP"
PORT=$(free_port 38200)
URL="http://127.0.0.1:$PORT"
PPROF_DIR="${BENCH_PPROF_DIR:-}"
PPROF_ENV=()
if [ -n "$PPROF_DIR" ]; then
	case $DUR in
	[0-9]*s) PPROF_SECS=$((${DUR%s} > 1 ? ${DUR%s} - 1 : 1)) ;;
	*) die "BENCH_PPROF_DIR needs BENCH_DURATION in whole seconds (e.g. 8s)" ;;
	esac
	mkdir -p "$PPROF_DIR"
	PPROF_PORT=$(free_port $((PORT + 1)))
	PPROF_ENV=("ADTRACKER_DEBUG_PPROF_ADDR=127.0.0.1:$PPROF_PORT")
fi

# kind_args KIND: the load generator's traffic arguments for one kind of run.
kind_args() {
	case $1 in
	single) echo --mode single --conns 64 ;;
	batch) echo --mode batch --batch 1000 --conns 16 ;;
	open) echo --mode single --conns 64 --rate "${BENCH_DUR_RATE:-20000}" ;;
	pixel) echo --mode pixel --conns 64 ;;
	*) die "unknown traffic $1 (single, pixel, batch, open)" ;;
	esac
}
for kind in $KINDS; do kind_args "$kind" >/dev/null; done

OUT="$BDIR/durability"
rm -rf "$OUT"
mkdir -p "$OUT"
ADS=""
for ((r = 1; r <= ROUNDS; r++)); do
	order="$CONFIGS"
	[ $((r % 2)) = 0 ] && order=$(echo "$CONFIGS" | tr ' ' '\n' | tac | tr '\n' ' ')
	for cfg in $order; do
		bin="${BENCH_BINARY:-$BDIR/adtracker}"
		case $cfg in
		durable) d=true f=1s ;;
		nosync) d=true f=0s ;;
		mem) d=false f=1s ;;
		base)
			[ -x "$BASE" ] || die "configuration base needs BENCH_BASE_BINARY (an adtracker binary)"
			d=true f=1s bin="$BASE"
			;;
		*) die "unknown configuration $cfg (durable, nosync, mem, base)" ;;
		esac
		rm -rf "$BDIR/dur-$cfg"
		env ADTRACKER_HTTP_ADDR="127.0.0.1:$PORT" \
			ADTRACKER_POSTGRES_DSN="postgres://adtracker:adtracker@127.0.0.1:$PG_PORT/$DB?sslmode=disable" \
			ADTRACKER_CLICKHOUSE_ADDR="127.0.0.1:$CHP" ADTRACKER_CLICKHOUSE_DATABASE="$DB" ADTRACKER_INGEST_DATA_DIR="$BDIR/dur-$cfg" \
			ADTRACKER_INGEST_DURABLE=$d ADTRACKER_INGEST_FSYNC_INTERVAL=$f ADTRACKER_HTTP_TRUSTED_PROXIES=127.0.0.1 ADTRACKER_LOG_LEVEL=warn \
			"${PPROF_ENV[@]}" "$bin" serve >"$OUT/adtracker-$cfg.log" 2>&1 &
		SP=$!
		wait_http "$URL/healthz" "$SP" "$OUT/adtracker-$cfg.log"
		[ -n "$ADS" ] || ADS=$(curl -fsS "$URL/ads?limit=1000" | jq -r 'map(.id) | join(",")')
		if [ "$WARMUP" != 0 ]; then
			# Not measured: a fresh server's first lap of the ring (and of the duplicate window and click tables) faults every
			# page in, and on ext4 each first write to a ring page goes through the filesystem (make bench's server, up for all
			# its rounds, pays that once). --verify waits until the warm-up's events are stored, so none is inserted during the run.
			warm="${KINDS%% *}"
			[ "$warm" != open ] || warm=single # closed loop: an open loop at 10,000 req/s would not lap the ring in 4 s
			read -ra args <<<"$(kind_args "$warm")"
			"$BDIR/adtracker" loadgen --json --seed 1 "${args[@]}" --url "$URL" --duration "$WARMUP" --ads "$ADS" \
				--verify --clickhouse "127.0.0.1:$CHP" --database "$DB" >"$OUT/warmup-$cfg-r$r.json" 2>"$OUT/warmup-$cfg-r$r.log" || true
			jq -e '.verify.ok' "$OUT/warmup-$cfg-r$r.json" >/dev/null 2>&1 ||
				log "warm-up of $cfg, round $r: not verified stored exactly once (see $OUT/warmup-$cfg-r$r.log)"
		fi
		for kind in $KINDS; do
			ch_fresh
			read -ra args <<<"$(kind_args "$kind")"
			c0=$(proc_cpu "$SP")
			h0=$(proc_cpu "$CH_PID")
			prof=""
			if [ -n "$PPROF_DIR" ]; then
				curl -fsS -o "$PPROF_DIR/$kind-$cfg-r$r.pprof" "http://127.0.0.1:$PPROF_PORT/debug/pprof/profile?seconds=$PPROF_SECS" &
				prof=$!
			fi
			"$BDIR/adtracker" loadgen --json --seed 1 "${args[@]}" --url "$URL" --duration "$DUR" --ads "$ADS" \
				--verify --clickhouse "127.0.0.1:$CHP" --database "$DB" >"$OUT/$kind-$cfg-r$r.json" 2>"$OUT/$kind-$cfg-r$r.log" || true
			c1=$(proc_cpu "$SP")
			h1=$(proc_cpu "$CH_PID")
			if [ -n "$prof" ]; then wait "$prof" || die "no CPU profile from $URL's debug.pprof_addr"; fi
			jq -r --arg k "$kind" --arg c "$cfg" --arg r "$r" \
				--argjson cpu "$(awk -v a="$c0" -v b="$c1" 'BEGIN {print b - a}')" --argjson ch "$(awk -v a="$h0" -v b="$h1" 'BEGIN {print b - a}')" \
				'"\($k) \($c) round \($r): e2e \(.verify.end_to_end_events_per_sec | floor) ev/s, verify \(.verify.ok), adtracker \($cpu / .verify.stored_acked * 1e6 * 100 | floor / 100) µs/ev, ClickHouse \($ch / .verify.stored_acked * 1e6 * 100 | floor / 100) µs/ev, 503 answers \(.status["503"] // 0), p99 \(.latency.p99_ms * 100 | floor / 100) ms"' \
				"$OUT/$kind-$cfg-r$r.json"
		done
		stop_pid "$SP" adtracker
		SP=""
	done
done
