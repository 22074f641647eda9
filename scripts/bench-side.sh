#!/usr/bin/env bash
# Side-by-side pairs: two adtracker builds served at the same time, each loaded at the same open-loop rate, so both see the same
# box. A sequential pair (scripts/bench-durability.sh) reads each build minutes apart, and on a shared 2-core machine the CPU per
# event moves by ±15 % between minutes; measured at the same moment the two drift together, and a few rounds resolve a 3 %
# change.
#
#   BENCH_SIDE_A=/tmp/adtracker-base BENCH_SIDE_B=/tmp/adtracker-new scripts/bench-side.sh
#
# Per round, one line: each server's CPU-µs per request (utime + stime from /proc over the round, divided by the requests the
# load generator sent it) and B/A; then the median and range of B/A. Each round starts both servers afresh (BENCH_SIDE_WARMUP of
# load first, 4s, not measured), and every other round swaps their start order and ports. Set both to one build to see the
# method's own spread. A young server is cheaper than one long up: its duplicate window (262,144 ids) fills only after ~33 s
# at 8000/s, and until then no id is evicted.
#   BENCH_SIDE_KIND   pixel (default; GET /t/{event}) or single (POST /ads/impression, /ads/click)
#   BENCH_SIDE_RATE   requests/s per server (8000): the sum must stay well inside what the box serves, or the run measures
#                     queueing instead of cost
#   BENCH_SIDE_ROUNDS rounds (5), BENCH_DURATION seconds per round (10s)
# Both servers use the durable ring and the bench's private ClickHouse (started here on free ports, stopped at exit) and database;
# events are not verified here (bench-durability.sh does that). Needs a finished `make bench` (or BENCH_QUICK=1 scripts/bench.sh).
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ADT_REPO"
bench_reuse
A="${BENCH_SIDE_A:-}"
B="${BENCH_SIDE_B:-}"
[ -x "$A" ] && [ -x "$B" ] || die "BENCH_SIDE_A and BENCH_SIDE_B must name adtracker binaries"
KIND="${BENCH_SIDE_KIND:-pixel}"
case "$KIND" in pixel | single) ;; *) die "BENCH_SIDE_KIND must be pixel or single" ;; esac
RATE="${BENCH_SIDE_RATE:-8000}"
ROUNDS="${BENCH_SIDE_ROUNDS:-5}"
DUR="${BENCH_DURATION:-10s}"
WARMUP="${BENCH_SIDE_WARMUP:-4s}"
PG_PORT="${PG_PORT:-5432}"
[ -x "$BDIR/adtracker" ] || die "run make bench (or BENCH_QUICK=1 scripts/bench.sh) first"

CHP=$(free_port 39400)
CHH=$(free_port $((CHP + 1)))
PA=""
PB=""
cleanup() {
	if [ -n "$PA" ]; then stop_pid "$PA" adtracker; fi
	if [ -n "$PB" ]; then stop_pid "$PB" adtracker; fi
	ch_stop "$BDIR/clickhouse"
}
trap cleanup EXIT
ch_start "$BDIR/clickhouse" "$CHP" "$CHH"
OUT="$BDIR/side"
rm -rf "$OUT"
mkdir -p "$OUT"

# serve BIN PORT NAME: start one server in the background (its PID in SERVED).
serve() {
	rm -rf "$BDIR/side-$3"
	env ADTRACKER_HTTP_ADDR="127.0.0.1:$2" \
		ADTRACKER_POSTGRES_DSN="postgres://adtracker:adtracker@127.0.0.1:$PG_PORT/$DB?sslmode=disable" \
		ADTRACKER_CLICKHOUSE_ADDR="127.0.0.1:$CHP" ADTRACKER_CLICKHOUSE_DATABASE="$DB" ADTRACKER_INGEST_DATA_DIR="$BDIR/side-$3" \
		ADTRACKER_HTTP_TRUSTED_PROXIES=127.0.0.1 ADTRACKER_LOG_LEVEL=warn "$1" serve >"$OUT/adtracker-$3.log" 2>&1 &
	SERVED=$!
}
PORTA=$(free_port 38400)
PORTB=$(free_port $((PORTA + 1)))
ADS=""

# load PORT DURATION SEED OUT: the open-loop load generator against one server.
load() {
	"$BDIR/adtracker" loadgen --quiet --json --seed "$3" --mode "$KIND" --rate "$RATE" --conns 32 --url "http://127.0.0.1:$1" \
		--duration "$2" --ads "$ADS" >"$4" 2>/dev/null || true
}
for ((r = 1; r <= ROUNDS; r++)); do
	# Every round starts both servers afresh, and every other round swaps which build is started first and on which port:
	# what differs between the two slots by itself (start order, placement) then falls on each build in turn.
	if ((r % 2)); then
		serve "$A" "$PORTA" a
		PA=$SERVED
		serve "$B" "$PORTB" b
		PB=$SERVED
	else
		serve "$B" "$PORTA" b
		PB=$SERVED
		serve "$A" "$PORTB" a
		PA=$SERVED
	fi
	pa=$PORTA pb=$PORTB
	((r % 2)) || pa=$PORTB pb=$PORTA
	wait_http "http://127.0.0.1:$pa/healthz" "$PA" "$OUT/adtracker-a.log"
	wait_http "http://127.0.0.1:$pb/healthz" "$PB" "$OUT/adtracker-b.log"
	[ -n "$ADS" ] || ADS=$(curl -fsS "http://127.0.0.1:$pa/ads?limit=1000" | jq -r 'map(.id) | join(",")')
	# Warm-up, not measured: both servers fault their rings in and reach their steady table sizes.
	load "$pa" "$WARMUP" 1 /dev/null &
	wa=$!
	load "$pb" "$WARMUP" 2 /dev/null &
	wb=$!
	wait "$wa" "$wb"
	a0=$(proc_cpu "$PA")
	b0=$(proc_cpu "$PB")
	load "$pa" "$DUR" $((2 * r + 1)) "$OUT/a-r$r.json" &
	wa=$!
	load "$pb" "$DUR" $((2 * r + 2)) "$OUT/b-r$r.json" &
	wb=$!
	wait "$wa" "$wb"
	a1=$(proc_cpu "$PA")
	b1=$(proc_cpu "$PB")
	awk -v r="$r" -v a0="$a0" -v a1="$a1" -v b0="$b0" -v b1="$b1" \
		-v na="$(jq '.requests // 0' "$OUT/a-r$r.json")" -v nb="$(jq '.requests // 0' "$OUT/b-r$r.json")" 'BEGIN {
		if (na == 0 || nb == 0) { printf "round %d: no requests answered (see %s)\n", r, "'"$OUT"'"; exit 1 }
		ua = (a1 - a0) * 1e6 / na; ub = (b1 - b0) * 1e6 / nb
		printf "round %d: A %.2f µs/req (%d requests), B %.2f µs/req (%d requests), B/A %.3f\n", r, ua, na, ub, nb, ub / ua }' |
		tee -a "$OUT/rounds.txt"
	stop_pid "$PA" adtracker
	PA=""
	stop_pid "$PB" adtracker
	PB=""
done
awk '{ print $NF }' "$OUT/rounds.txt" | sort -n | awk '{ v[NR] = $1 } END {
	m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
	printf "B/A median %.3f (%.3f–%.3f) over %d rounds\n", m, v[1], v[NR], NR }'
