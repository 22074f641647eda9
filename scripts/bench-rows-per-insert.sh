#!/usr/bin/env bash
# ClickHouse's CPU per event as a function of the rows per insert, without adtracker: clickhouse-client inserts the same events
# (the ones `make bench` exported, .data/bench/chref.native) through every materialized view, one part per BENCH_ROWS_SIZES rows,
# from empty tables, BENCH_ROWS_ROUNDS interleaved rounds (order reversed every other round). ClickHouse's CPU (utime + stime from
# /proc) is counted from the insert's start until no merge has run for 3 s, so the merges the parts cause are in the figure.
#
# It answers "what does an insert of N rows cost ClickHouse per event", which sets ingest.batch_size and ingest.flush_interval
# (README, "Memory or throughput"; BENCHMARKS.md, "Rows per insert"). The rows go in as RowBinary so that the client cuts blocks
# of exactly N rows (max_insert_block_size) and the server keeps them (min_insert_block_size_rows = N); a Native file keeps the
# block sizes it was written with.
#
# BENCH_ROWS_VIEWS picks which views are attached during the inserts (default "all"; several are interleaved like the sizes):
#   all      every view (what production runs)
#   none     no view: the events table alone
#   stats    the four ad_stats_* views, no breakdown view
#   nohour   every view but ad_stats_hour_mv and ad_stats_hour_invalid_mv
# The views are detached with DETACH TABLE and attached again at exit (also after a failure).
#
#   BENCH_ROWS_SIZES="16384 49152" BENCH_ROWS_VIEWS="all none" scripts/bench-rows-per-insert.sh
#
# Needs a finished `make bench` (or BENCH_QUICK=1 scripts/bench.sh): it reuses its private ClickHouse data directory
# (.data/bench/clickhouse, started here on free ports and stopped at exit), its database and its exported events.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ADT_REPO"
bench_reuse
SIZES="${BENCH_ROWS_SIZES:-16384 24576 49152 131072 1048576}"
ROUNDS="${BENCH_ROWS_ROUNDS:-2}"
VIEWSETS="${BENCH_ROWS_VIEWS:-all}"
[ -s "$BDIR/chref.native" ] && [ -s "$BDIR/chref.native.rows" ] ||
	die "run make bench (or BENCH_QUICK=1 scripts/bench.sh) first: it exports the events this script inserts"

CHP=$(free_port 39300)
CHH=$(free_port $((CHP + 1)))
CH="clickhouse-client --host 127.0.0.1 --port $CHP"
DETACHED=()
attach_all() {
	local v
	for v in "${DETACHED[@]}"; do $CH -q "ATTACH TABLE $DB.$v" || log "could not attach $DB.$v again: run ATTACH TABLE $DB.$v"; done
	DETACHED=()
}
cleanup() {
	attach_all
	ch_stop "$BDIR/clickhouse"
}
trap cleanup EXIT
ch_start "$BDIR/clickhouse" "$CHP" "$CHH"
CH_PID=$(ch_pid "$BDIR/clickhouse")

# DESCRIBE lists the columns in table order on every version (as bench.sh's export does).
COLS=$($CH -q "DESCRIBE TABLE $DB.events FORMAT TSV" | awk -F'\t' '$3 != "MATERIALIZED" && $3 != "ALIAS" {print $1}' | paste -sd, -)
ROWS=$(cat "$BDIR/chref.native.rows")
RB="$BDIR/chref.rowbinary"
if [ ! -s "$RB" ] || [ "$RB" -ot "$BDIR/chref.native" ]; then
	ch_fresh
	$CH --database "$DB" -q "INSERT INTO events ($COLS) FORMAT Native" <"$BDIR/chref.native"
	# Arrival order, as adtracker inserts them: storage order is sorted by ad_id, which makes small parts far cheaper for the
	# views than live traffic (BENCHMARKS.md, "Issue 20 after session 20").
	$CH --database "$DB" -q "SELECT $COLS FROM events ORDER BY receive_time, event_id FORMAT RowBinary" >"$RB"
fi

# quiet waits until no merge has run for 3 s (6 looks, 0.5 s apart), at most 5 minutes.
quiet() { ch_merges_settle 6 600 || log "ClickHouse still merging after 5 minutes; counting anyway"; }

views_of() { # SET -> the views to detach
	local all
	all=$($CH -q "SELECT name FROM system.tables WHERE database = '$DB' AND engine = 'MaterializedView' ORDER BY name")
	case $1 in
	all) ;;
	none) echo "$all" ;;
	stats) echo "$all" | grep '^ad_breakdown_hour' || true ;;
	nohour) echo "$all" | grep -E '^ad_stats_hour(_invalid)?_mv$' || true ;;
	*) die "unknown BENCH_ROWS_VIEWS set $1 (all, none, stats, nohour)" ;;
	esac
}

reverse() { echo "$1" | tr ' ' '\n' | tac | tr '\n' ' '; }

for ((r = 1; r <= ROUNDS; r++)); do
	sizes="$SIZES" sets="$VIEWSETS"
	if [ $((r % 2)) = 0 ]; then sizes=$(reverse "$SIZES") sets=$(reverse "$VIEWSETS"); fi
	for set in $sets; do
		attach_all
		for v in $(views_of "$set"); do
			$CH -q "DETACH TABLE $DB.$v"
			DETACHED+=("$v")
		done
		for n in $sizes; do
			ch_fresh
			quiet
			c0=$(proc_cpu "$CH_PID")
			t0=$(date +%s.%N)
			$CH --database "$DB" --max_insert_block_size="$n" --min_insert_block_size_rows="$n" \
				-q "INSERT INTO events ($COLS) FORMAT RowBinary" <"$RB"
			t1=$(date +%s.%N)
			quiet
			c1=$(proc_cpu "$CH_PID")
			awk -v n="$n" -v s="$set" -v r="$r" -v rows="$ROWS" -v a="$c0" -v b="$c1" -v t0="$t0" -v t1="$t1" 'BEGIN {
				printf "rows per insert %8d, views %-6s round %d: ClickHouse %.2f CPU-µs per event (insert and merges), insert %.1f s\n",
					n, s, r, (b - a) / rows * 1e6, t1 - t0 }'
		done
	done
done
