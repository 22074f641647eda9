#!/usr/bin/env bash
# Local Postgres and ClickHouse for development and tests: project-private instances on
# 127.0.0.1 with their data under $DATA_DIR (default: <repo>/.data), installed from Debian's
# packages when missing.
#
#   scripts/services.sh up|down|status [postgres|clickhouse]
#
# Environment: PG_PORT (5432), CH_TCP_PORT (9000), CH_HTTP_PORT (8123), DATA_DIR (<repo>/.data),
# CLICKHOUSE_ANALYST_PASSWORD (analyst). `up` is a no-op for a component that already runs and
# answers; `down` stops only servers whose pid file is in DATA_DIR. Runs as root (apt-get, and
# runuser to run Postgres as the postgres user, which initdb and the postmaster require).
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_PORT="${PG_PORT:-5432}"
CH_TCP_PORT="${CH_TCP_PORT:-9000}"
CH_HTTP_PORT="${CH_HTTP_PORT:-8123}"
DATA_DIR="${DATA_DIR:-$ADT_REPO/.data}"

usage() {
	echo "usage: $0 up|down|status [postgres|clickhouse]" >&2
	exit 2
}

if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
cmd="$1"
case "${2:-all}" in
postgres) components=(postgres) ;;
clickhouse) components=(clickhouse) ;;
all) components=(postgres clickhouse) ;;
*) usage ;;
esac

mkdir -p "$DATA_DIR"
DATA_DIR="$(cd "$DATA_DIR" && pwd)"
PG_DIR="$DATA_DIR/postgres"
CH_DIR="$DATA_DIR/clickhouse"

pg_dsn() { echo "postgres://adtracker:adtracker@127.0.0.1:$PG_PORT/adtracker?sslmode=disable"; }
ch_addr() { echo "127.0.0.1:$CH_TCP_PORT"; }

# The role and database are checked on every `up`, so a running server whose database was
# dropped by hand is repaired; both statements are no-ops when they exist.
pg_setup() {
	pg_psql "$PG_DIR" "$PG_PORT" -d postgres <<'SQL'
SELECT 'CREATE ROLE adtracker SUPERUSER LOGIN PASSWORD ''adtracker'''
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'adtracker') \gexec
SELECT 'CREATE DATABASE adtracker OWNER adtracker'
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'adtracker') \gexec
SQL
}

ch_setup() {
	clickhouse-client --host 127.0.0.1 --port "$CH_TCP_PORT" -q 'CREATE DATABASE IF NOT EXISTS adtracker'
}

up_one() {
	case "$1" in
	postgres)
		[ "$(pg_state "$PG_DIR" "$PG_PORT")" = running ] || log "starting postgres in $PG_DIR on 127.0.0.1:$PG_PORT"
		pg_start "$PG_DIR" "$PG_PORT"
		pg_setup
		echo "postgres   $(pg_dsn)"
		;;
	clickhouse)
		[ "$(ch_state "$CH_DIR" "$CH_TCP_PORT")" = running ] || log "starting clickhouse in $CH_DIR on 127.0.0.1:$CH_TCP_PORT (http $CH_HTTP_PORT)"
		ch_start "$CH_DIR" "$CH_TCP_PORT" "$CH_HTTP_PORT"
		ch_setup
		echo "clickhouse $(ch_addr)  (http://127.0.0.1:$CH_HTTP_PORT)"
		;;
	esac
}

down_one() {
	case "$1" in
	postgres) pg_stop "$PG_DIR" ;;
	clickhouse) ch_stop "$CH_DIR" ;;
	esac
	echo "$1 stopped"
}

status_one() {
	case "$1" in
	postgres)
		local bin
		bin="$(pg_bindir || true)"
		if [ -z "$bin" ]; then
			echo "postgres   not installed"
		else
			printf 'postgres   %-13s %s  (%s)\n' "$(pg_state "$PG_DIR" "$PG_PORT")" "$(pg_dsn)" "$PG_DIR"
		fi
		;;
	clickhouse)
		if ! command -v clickhouse-server >/dev/null; then
			echo "clickhouse not installed"
		else
			printf 'clickhouse %-13s %s  (%s)\n' "$(ch_state "$CH_DIR" "$CH_TCP_PORT")" "$(ch_addr)" "$CH_DIR"
		fi
		;;
	esac
}

# Two `up`s at once (make test in two shells, parallel test packages) would both see "stopped"
# and race to start the same data directory.
lock() {
	exec 9>"$DATA_DIR/.services.lock"
	flock -w 120 9 || die "another scripts/services.sh holds $DATA_DIR/.services.lock"
}

case "$cmd" in
up)
	lock
	for c in "${components[@]}"; do up_one "$c"; done
	;;
down)
	lock
	for c in "${components[@]}"; do down_one "$c"; done
	;;
status)
	rc=0
	for c in "${components[@]}"; do
		line="$(status_one "$c")"
		echo "$line"
		case "$line" in *" running "*) ;; *) rc=3 ;; esac
	done
	# Like pg_ctl status: non-zero when something is not running, for scripts that ask.
	exit "$rc"
	;;
*) usage ;;
esac
