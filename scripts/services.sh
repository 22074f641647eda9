#!/usr/bin/env bash
# Local Postgres and ClickHouse for development and tests: project-private instances on
# 127.0.0.1 with their data under $DATA_DIR (default: <repo>/.data), installed from Debian's
# packages when missing.
#
#   scripts/services.sh up|down|status|env [postgres|clickhouse]
#
# Environment: PG_PORT (5432), CH_TCP_PORT (9000), CH_HTTP_PORT (8123), DATA_DIR (<repo>/.data),
# CLICKHOUSE_ANALYST_PASSWORD (analyst). `up` is a no-op for a component that already runs and
# answers, and refuses when DATA_DIR's server runs on other ports than asked; `down` stops only
# servers whose pid file is in DATA_DIR; `status` says "running" only for DATA_DIR's own server on
# the asked port, never for another server that happens to answer there. `env` prints, as shell
# assignments, the ports and the ADTRACKER_POSTGRES_DSN / ADTRACKER_CLICKHOUSE_ADDR that reach
# these servers (`make run` and `eval "$(scripts/services.sh env)"` use it, so the binary never
# talks to another server on the default ports). Runs as root (apt-get, and runuser to run
# Postgres as the postgres user, which initdb and the postmaster require).
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_PORT="${PG_PORT:-5432}"
CH_TCP_PORT="${CH_TCP_PORT:-9000}"
CH_HTTP_PORT="${CH_HTTP_PORT:-8123}"
DATA_DIR="${DATA_DIR:-$ADT_REPO/.data}"

usage() {
	echo "usage: $0 up|down|status|env [postgres|clickhouse]" >&2
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
		[ "$(pg_state "$PG_DIR" "$PG_PORT")" != stopped ] || log "starting postgres in $PG_DIR on 127.0.0.1:$PG_PORT"
		pg_start "$PG_DIR" "$PG_PORT"
		pg_setup
		echo "postgres   $(pg_dsn)"
		;;
	clickhouse)
		[ "$(ch_state "$CH_DIR" "$CH_TCP_PORT")" != stopped ] || log "starting clickhouse in $CH_DIR on 127.0.0.1:$CH_TCP_PORT (http $CH_HTTP_PORT)"
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

# status_one prints one component's line and returns 0 only when it is "running" (DATA_DIR's server on the asked port).
status_one() {
	local state
	case "$1" in
	postgres)
		if [ -z "$(pg_bindir || true)" ]; then
			echo "postgres   not installed"
			return 1
		fi
		state="$(pg_state "$PG_DIR" "$PG_PORT")"
		printf 'postgres   %-13s %s  (%s)\n' "$state" "$(pg_dsn)" "$PG_DIR"
		;;
	clickhouse)
		if ! command -v clickhouse-server >/dev/null; then
			echo "clickhouse not installed"
			return 1
		fi
		state="$(ch_state "$CH_DIR" "$CH_TCP_PORT")"
		printf 'clickhouse %-13s %s  (%s)\n' "$state" "$(ch_addr)" "$CH_DIR"
		;;
	esac
	[ "$state" = running ]
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
		status_one "$c" || rc=3
	done
	# Like pg_ctl status: non-zero when something is not running, for scripts that ask.
	exit "$rc"
	;;
env)
	for c in "${components[@]}"; do
		case "$c" in
		postgres) printf 'PG_PORT=%q\nADTRACKER_POSTGRES_DSN=%q\n' "$PG_PORT" "$(pg_dsn)" ;;
		clickhouse) printf 'CH_TCP_PORT=%q\nCH_HTTP_PORT=%q\nADTRACKER_CLICKHOUSE_ADDR=%q\n' "$CH_TCP_PORT" "$CH_HTTP_PORT" "$(ch_addr)" ;;
		esac
	done
	;;
*) usage ;;
esac
