# shellcheck shell=bash
# Shared helpers for the project's scripts: package installs and private Postgres / ClickHouse
# instances (one data directory each, loopback only). Source it; it defines functions only.
#
# Instances are described by a directory; everything an instance needs (config, data, logs,
# pid file, sockets) lives inside it, so several can run side by side on different ports and
# `rm -rf DIR` removes every trace. Functions that other scripts are expected to use:
#
#   ch_start DIR TCP_PORT HTTP_PORT    start (or keep) a ClickHouse server; CH_INTERSERVER_PORT
#                                      adds a replication port; files dropped into DIR/etc/config.d
#                                      or DIR/etc/users.d before the call are merged as usual
#   ch_stop DIR                        stop it if this directory's server runs
#   ch_state DIR TCP_PORT              prints running | stopped | "not answering" | "running on port P, not TCP_PORT" |
#                                      "stopped; port TCP_PORT is another server's" (only "running" means DIR's server on TCP_PORT)
#   pg_start DIR PORT / pg_stop DIR / pg_state DIR PORT   the same for Postgres
#   ensure_clickhouse / ensure_postgres                   apt-get install when missing
#   free_port FROM / wait_http URL PID LOG                ports and start-up waits for the bench scripts
#   proc_cpu PID                                          CPU seconds (user + system) a process has used so far
#   bench_reuse                                           BDIR and DB of a finished `make bench`, for the scripts that reuse it

ADT_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ADT_REPO="$(cd "$ADT_LIB_DIR/.." && pwd)"

# Servers are started with fd 9 closed: callers (scripts/services.sh) hold a flock on it, and a
# daemon inheriting it would keep that lock for its whole life.

# Seconds to wait for a server to answer after start, and for it to exit after SIGTERM.
: "${ADT_START_TIMEOUT:=60}"
: "${ADT_STOP_TIMEOUT:=30}"

log() { printf '%s\n' "$*" >&2; }
die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

# ---------------------------------------------------------------------------------------------
# packages

_adt_apt_updated=0

# apt_install PKG... installs Debian packages non-interactively, running `apt-get update` once
# per script run. Services are kept from starting during the install (no policy-rc.d → one is
# put in place for the duration), because a packaged cluster on 5432 would collide with ours.
apt_install() {
	[ "$(id -u)" -eq 0 ] || die "installing $* needs root (apt-get); run as root or install them yourself"
	command -v apt-get >/dev/null || die "apt-get not found: install $* by hand"
	local policy=/usr/sbin/policy-rc.d added_policy=0
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		added_policy=1
	fi
	local rc=0
	{
		if [ "$_adt_apt_updated" -eq 0 ]; then
			log "apt-get update"
			DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 && _adt_apt_updated=1
		fi &&
			log "apt-get install -y $*" &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2
	} || rc=$?
	if [ "$added_policy" -eq 1 ]; then rm -f "$policy"; fi
	[ "$rc" -eq 0 ] || die "apt-get install $* failed (exit $rc)"
}

ensure_clickhouse() {
	if ! command -v clickhouse-server >/dev/null || ! command -v clickhouse-client >/dev/null; then
		apt_install clickhouse-server clickhouse-client
	fi
	command -v clickhouse-server >/dev/null || die "clickhouse-server still missing after install"
}

# pg_bindir prints the newest /usr/lib/postgresql/N/bin that has initdb (Debian keeps the
# server binaries off PATH there).
pg_bindir() {
	local d best="" bestv=-1 v
	for d in /usr/lib/postgresql/*/bin; do
		[ -x "$d/initdb" ] || continue
		v="${d#/usr/lib/postgresql/}"
		v="${v%/bin}"
		case "$v" in *[!0-9]* | '') continue ;; esac
		if [ "$v" -gt "$bestv" ]; then
			best="$d"
			bestv="$v"
		fi
	done
	[ -n "$best" ] && printf '%s\n' "$best"
}

ensure_postgres() {
	if [ -z "$(pg_bindir)" ] || ! command -v psql >/dev/null; then
		apt_install postgresql
	fi
	[ -n "$(pg_bindir)" ] || die "no /usr/lib/postgresql/*/bin/initdb after installing postgresql"
	id -u postgres >/dev/null 2>&1 || die "the postgres user is missing (it comes with Debian's postgresql package)"
}

# ---------------------------------------------------------------------------------------------
# processes and ports

# port_listening PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_listening() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# port_in_use PORT: a socket on this machine has PORT as its local port in any state. A server that stopped a moment ago leaves
# TIME_WAIT connections on its port, and a new server (ClickHouse) then fails to bind it: "Address already in use".
port_in_use() {
	if command -v ss >/dev/null; then
		[ -n "$(ss -Htan "sport = :$1" 2>/dev/null)" ] && return 0
	fi
	port_listening "$1"
}

# free_port FROM: the first port from FROM on that no socket uses (a benchmark must never load someone else's server, nor fail
# to bind a port a previous run's server left in TIME_WAIT).
free_port() {
	local p="$1"
	while port_in_use "$p"; do p=$((p + 1)); done
	echo "$p"
}

# try_http URL PID: wait (30 s at most) until URL answers 2xx; 1 when the process PID exits first, 2 when the time runs out.
try_http() {
	local i
	for ((i = 0; i < 300; i++)); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 2
}

# wait_http URL PID LOG: try_http, dying with a pointer to LOG when the server does not come up.
wait_http() {
	local rc=0
	try_http "$1" "$2" || rc=$?
	case "$rc" in
	0) return 0 ;;
	1) die "pid $2 exited during start; see $3" ;;
	*) die "$1 did not answer within 30 s; see $3" ;;
	esac
}

# pid_of FILE prints the pid recorded in FILE (first line) when that process is alive and its
# command line contains PATTERN; a stale file (crash, reboot, pid reused) prints nothing.
pid_of() {
	local file="$1" pattern="$2" pid
	[ -r "$file" ] || return 1
	read -r pid <"$file" || true
	case "$pid" in '' | *[!0-9]*) return 1 ;; esac
	kill -0 "$pid" 2>/dev/null || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern" || return 1
	printf '%s\n' "$pid"
}

# stop_pid PID NAME [SIGNAL]: send SIGNAL (TERM), wait up to ADT_STOP_TIMEOUT s, then SIGKILL.
stop_pid() {
	local pid="$1" name="$2" sig="${3:-TERM}" i
	kill -s "$sig" "$pid" 2>/dev/null || return 0
	for ((i = 0; i < ADT_STOP_TIMEOUT * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	log "$name (pid $pid) still running after ${ADT_STOP_TIMEOUT}s; sending SIGKILL"
	kill -s KILL "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	die "$name (pid $pid) survived SIGKILL"
}

# show_log_tail FILE[:OFFSET]...: the last lines of the logs that explain a failed start; with
# OFFSET, only what was written past that byte (logs kept across starts hold old noise).
show_log_tail() {
	local arg f off
	for arg in "$@"; do
		f="${arg%:*}"
		off=0
		[ "$f" = "$arg" ] || off="${arg##*:}"
		[ -s "$f" ] || continue
		[ "$(stat -c %s "$f")" -gt "$off" ] || continue
		log "---- last lines of $f ----"
		tail -c "+$((off + 1))" "$f" | tail -n 30 >&2
	done
}

file_size() { if [ -e "$1" ]; then stat -c %s "$1"; else echo 0; fi; }

# proc_cpu PID prints the CPU seconds (user + system) PID has used so far, 0 when it is gone.
proc_cpu() {
	if [ -z "$1" ] || [ ! -r "/proc/$1/stat" ]; then
		echo 0
		return
	fi
	# Fields after the parenthesised command name: utime is the 12th, stime the 13th.
	sed 's/^.*) //' "/proc/$1/stat" | awk -v t="$(getconf CLK_TCK)" '{printf "%.3f", ($12 + $13) / t}'
}

# bench_reuse sets BDIR (DATA_DIR/bench) and DB (BENCH_DATABASE, default adtracker_bench) for the scripts that reuse a finished
# `make bench` (bench-durability.sh, bench-rows-per-insert.sh): its private ClickHouse data directory and its database.
bench_reuse() {
	DATA_DIR="${DATA_DIR:-$ADT_REPO/.data}"
	BDIR="$DATA_DIR/bench"
	DB="${BENCH_DATABASE:-adtracker_bench}"
	case "$DB" in *[!a-z0-9_]* | '' | adtracker) die "BENCH_DATABASE must be [a-z0-9_]+ and not the development database" ;; esac
	[ -d "$BDIR/clickhouse" ] || die "run make bench (or BENCH_QUICK=1 scripts/bench.sh) first"
}

# ---------------------------------------------------------------------------------------------
# ClickHouse

ch_answers() { clickhouse-client --host 127.0.0.1 --port "$1" --connect_timeout 2 -q 'SELECT 1' >/dev/null 2>&1; }

# ch_write_config DIR TCP HTTP writes a self-contained server config under DIR/etc. The
# packaged /etc/clickhouse-server/config.xml is not used: it also opens the interserver port
# 9009 and listens on ::1, so a second instance on other ports would collide with the first.
ch_write_config() {
	local dir="$1" tcp="$2" http="$3" f interserver=""
	mkdir -p "$dir/etc/config.d" "$dir/etc/users.d" "$dir/log" "$dir/db" "$dir/tmp" "$dir/user_files" "$dir/format_schemas"
	if [ -n "${CH_INTERSERVER_PORT:-}" ]; then
		interserver="<interserver_http_port>${CH_INTERSERVER_PORT}</interserver_http_port>
    <interserver_http_host>127.0.0.1</interserver_http_host>"
	fi
	# <yandex> root: 18.16 needs it, current servers accept it as a synonym of <clickhouse>.
	cat >"$dir/etc/config.xml" <<EOF
<?xml version="1.0"?>
<!-- Written by scripts/lib.sh on every start; edits here are lost. Drop extra files into config.d/. -->
<yandex>
    <logger>
        <level>information</level>
        <log>$dir/log/server.log</log>
        <errorlog>$dir/log/server.err.log</errorlog>
        <size>100M</size>
        <count>3</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>$tcp</tcp_port>
    <http_port>$http</http_port>
    $interserver
    <max_connections>4096</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <!-- Small caches: several instances may share this machine (they are allocated on demand). -->
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>$dir/db/</path>
    <tmp_path>$dir/tmp/</tmp_path>
    <user_files_path>$dir/user_files/</user_files_path>
    <format_schema_path>$dir/format_schemas/</format_schema_path>
    <users_config>users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <query_log>
        <database>system</database>
        <table>query_log</table>
        <partition_by>toYYYYMM(event_date)</partition_by>
        <flush_interval_milliseconds>7500</flush_interval_milliseconds>
    </query_log>
</yandex>
EOF
	cat >"$dir/etc/users.xml" <<'EOF'
<?xml version="1.0"?>
<!-- Written by scripts/lib.sh on every start. The project's users (analyst) come from users.d/. -->
<yandex>
    <profiles>
        <default>
            <max_memory_usage>10000000000</max_memory_usage>
            <use_uncompressed_cache>0</use_uncompressed_cache>
            <load_balancing>random</load_balancing>
        </default>
        <readonly>
            <readonly>1</readonly>
        </readonly>
    </profiles>
    <users>
        <!-- The server listens on 127.0.0.1 only; default has no password like the packaged one. -->
        <default>
            <password></password>
            <networks>
                <ip>::1</ip>
                <ip>127.0.0.1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF
	ch_copy_shipped "$dir"
}

# ch_copy_shipped DIR copies the files shipped to users (clickhouse/config.d, users.d) into the
# instance, so the local server and compose agree. A running server rereads users.d by itself.
ch_copy_shipped() {
	local dir="$1" f
	for f in "$ADT_REPO"/clickhouse/config.d/*.xml; do
		[ -e "$f" ] && cp "$f" "$dir/etc/config.d/"
	done
	for f in "$ADT_REPO"/clickhouse/users.d/*.xml; do
		[ -e "$f" ] && cp "$f" "$dir/etc/users.d/"
	done
	return 0
}

# ch_pid DIR prints the pid of DIR's running server.
ch_pid() { pid_of "$1/clickhouse.pid" "clickhouse-server"; }

# ch_port DIR prints the TCP port DIR's server was started with: config.xml is rewritten only by a start, so while the server
# runs it names the port that server listens on.
ch_port() { sed -n 's:.*<tcp_port>\([0-9]*\)</tcp_port>.*:\1:p' "$1/etc/config.xml" 2>/dev/null | head -n 1; }

# ch_state DIR TCP_PORT judges DIR's server, never whatever answers on the port: a server from another directory (a packaged one,
# another checkout) answering on TCP_PORT is "stopped; port … is another server's", and DIR's server on a different port says so.
ch_state() {
	local dir="$1" tcp="$2" actual
	if ! ch_pid "$dir" >/dev/null; then
		if port_listening "$tcp"; then echo "stopped; port $tcp is another server's"; else echo stopped; fi
		return 0
	fi
	actual="$(ch_port "$dir")"
	if [ -n "$actual" ] && [ "$actual" != "$tcp" ]; then
		echo "running on port $actual, not $tcp"
	elif ch_answers "$tcp"; then
		echo running
	else
		echo "not answering"
	fi
}

# ch_wait TCP PID DIR [ERRLOG_OFFSET] waits for SELECT 1 to answer, failing early when the
# process dies.
ch_wait() {
	local tcp="$1" pid="$2" dir="$3" off="${4:-0}" i
	for ((i = 0; i < ADT_START_TIMEOUT * 5; i++)); do
		ch_answers "$tcp" && return 0
		if ! kill -0 "$pid" 2>/dev/null; then
			show_log_tail "$dir/log/stdout.log" "$dir/log/server.err.log:$off"
			die "clickhouse-server ($dir) exited during start"
		fi
		sleep 0.2
	done
	show_log_tail "$dir/log/stdout.log" "$dir/log/server.err.log:$off"
	die "clickhouse-server ($dir, pid $pid) did not answer on 127.0.0.1:$tcp within ${ADT_START_TIMEOUT}s"
}

# ch_fresh empties the MergeTree tables of database $DB (schema_migrations kept) through the client command $CH, then waits, at
# most 60 s, until ClickHouse runs no merge, so a benchmark run's CPU and latency are its own. Only for benchmark databases.
ch_fresh() {
	local t
	for t in $($CH -q "SELECT name FROM system.tables WHERE database = '$DB' AND engine LIKE '%MergeTree' AND name != 'schema_migrations'"); do
		$CH -q "TRUNCATE TABLE $DB.$t"
	done
	ch_merges_settle 1 120 || log "ClickHouse still merging after 60 s; measuring anyway"
}

# ch_merges_settle LOOKS TRIES waits until the client command $CH sees no merge running on LOOKS looks in a row, 0.5 s apart,
# looking at most TRIES times; it returns 1 when merges were still running at the end.
ch_merges_settle() {
	local looks="$1" tries="$2" quiet=0 i
	for ((i = 0; i < tries; i++)); do
		if [ "$($CH -q 'SELECT count() FROM system.merges')" = 0 ]; then
			quiet=$((quiet + 1))
			[ "$quiet" -ge "$looks" ] && return 0
		else
			quiet=0
		fi
		sleep 0.5
	done
	return 1
}

# ch_yield PID NICE gives the ClickHouse server PID the CPU priority NICE (0 = as started, 19 = yields the most). ch_start runs the
# server under setsid, and with the kernel's autogroup scheduling (sched_autogroup_enabled = 1) a new session is a scheduling group
# of its own that gets an equal share of a contended CPU whatever its threads' nice values: a plain renice of its threads then only
# reorders ClickHouse's own threads. So the autogroup's nice is set, or every thread's when there is no autogroup. Setting it back
# to 0 needs root (CAP_SYS_NICE); a failure is reported, not fatal.
ch_yield() {
	local pid="$1" n="$2" t ok=1
	[ -n "$pid" ] && [ -d "/proc/$pid" ] || return 0
	if [ "$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null)" = 1 ] && [ -w "/proc/$pid/autogroup" ]; then
		echo "$n" 2>/dev/null >"/proc/$pid/autogroup" || ok=0
	else
		for t in /proc/"$pid"/task/*; do renice -n "$n" -p "${t##*/}" >/dev/null 2>&1 || ok=0; done
	fi
	[ "$ok" = 1 ] || log "could not set ClickHouse's nice to $n"
}

ch_start() {
	local dir="$1" tcp="$2" http="$3" pid port off
	ensure_clickhouse
	if pid="$(ch_pid "$dir")"; then
		port="$(ch_port "$dir")"
		if [ -n "$port" ] && [ "$port" != "$tcp" ]; then
			die "clickhouse-server of $dir already runs on port $port, not $tcp: set CH_TCP_PORT=$port, or stop it first (scripts/services.sh down clickhouse)"
		fi
		ch_copy_shipped "$dir"
		ch_wait "$tcp" "$pid" "$dir"
		return 0
	fi
	for port in "$tcp" "$http" ${CH_INTERSERVER_PORT:-}; do
		if port_listening "$port"; then
			die "port $port on 127.0.0.1 is taken by another process; set CH_TCP_PORT / CH_HTTP_PORT to free ones"
		fi
	done
	ch_write_config "$dir" "$tcp" "$http"
	# Temporary parts a stop left behind (merges cancelled at shutdown): 18.16 deletes them at start, but a merge it starts meanwhile
	# can write into one, and the start then fails ("Directory not empty: …/tmp_merge_…"; seen once in scripts/bench-durability.sh).
	# They are never committed data, and the server is not running.
	find "$dir/db/data" -mindepth 3 -maxdepth 3 -type d -name 'tmp_*' -exec rm -rf {} + 2>/dev/null || true
	: >"$dir/log/stdout.log"
	off="$(file_size "$dir/log/server.err.log")"
	# setsid: the server outlives the shell (and a Ctrl-C in make) that started it; CLICKHOUSE
	# passwords referenced by users.d files via from_env are read from this environment.
	CLICKHOUSE_ANALYST_PASSWORD="${CLICKHOUSE_ANALYST_PASSWORD:-analyst}" \
		setsid clickhouse-server --config-file="$dir/etc/config.xml" \
		</dev/null >>"$dir/log/stdout.log" 2>&1 9>&- &
	pid=$!
	echo "$pid" >"$dir/clickhouse.pid"
	ch_wait "$tcp" "$pid" "$dir" "$off"
}

ch_stop() {
	local dir="$1" pid
	if pid="$(ch_pid "$dir")"; then
		stop_pid "$pid" "clickhouse-server ($dir)"
	fi
	rm -f "$dir/clickhouse.pid"
}

# ---------------------------------------------------------------------------------------------
# Postgres

# Postgres runs as the postgres user (initdb and the postmaster refuse root), so DIR is
# chowned to it and every directory above DIR must let that user through.
pg_prepare_dir() {
	local dir="$1" p parents=()
	mkdir -p "$dir"
	dir="$(cd "$dir" && pwd)"
	p="$(dirname "$dir")"
	while [ "$p" != "/" ]; do
		parents=("$p" "${parents[@]}")
		p="$(dirname "$p")"
	done
	for p in "${parents[@]}"; do
		# Only the search bit, only where missing (e.g. a 0700 mktemp dir above a test's DATA_DIR).
		if ! runuser -u postgres -- test -x "$p"; then
			log "granting search permission on $p so the postgres user can reach $dir"
			chmod o+x "$p"
		fi
	done
	chown postgres: "$dir"
	chmod 700 "$dir"
}

pg_pid() { pid_of "$1/data/postmaster.pid" "postgres"; }

# pg_port DIR prints the port DIR's running server listens on (line 4 of postmaster.pid).
pg_port() { sed -n 4p "$1/data/postmaster.pid" 2>/dev/null; }

pg_answers() {
	"$(pg_bindir)/pg_isready" -q -h 127.0.0.1 -p "$1" -t 2 >/dev/null 2>&1
}

# pg_state DIR PORT judges DIR's server, like ch_state: another server answering on PORT does not make it "running".
pg_state() {
	local dir="$1" port="$2" actual
	if ! pg_pid "$dir" >/dev/null; then
		if port_listening "$port"; then echo "stopped; port $port is another server's"; else echo stopped; fi
		return 0
	fi
	actual="$(pg_port "$dir")"
	if [ -n "$actual" ] && [ "$actual" != "$port" ]; then
		echo "running on port $actual, not $port"
	elif pg_answers "$port"; then
		echo running
	else
		echo "not answering"
	fi
}

pg_wait() {
	local port="$1" dir="$2" off="${3:-0}" i pid
	for ((i = 0; i < ADT_START_TIMEOUT * 5; i++)); do
		pg_answers "$port" && return 0
		# postmaster.pid appears a moment after start; give up only once it existed and died.
		if [ "$i" -gt 25 ] && ! pid="$(pg_pid "$dir")"; then
			show_log_tail "$dir/postgres.log:$off"
			die "postgres ($dir) exited during start"
		fi
		sleep 0.2
	done
	show_log_tail "$dir/postgres.log:$off"
	die "postgres ($dir) did not answer on 127.0.0.1:$port within ${ADT_START_TIMEOUT}s"
}

pg_start() {
	local dir="$1" port="$2" bin sock off
	ensure_postgres
	bin="$(pg_bindir)"
	if pg_pid "$dir" >/dev/null; then
		local actual
		actual="$(pg_port "$dir")"
		if [ -n "$actual" ] && [ "$actual" != "$port" ]; then
			die "postgres of $dir already runs on port $actual, not $port: set PG_PORT=$actual, or stop it first (scripts/services.sh down postgres)"
		fi
		pg_wait "$port" "$dir"
		return 0
	fi
	port_listening "$port" && die "port $port on 127.0.0.1 is taken by another process; set PG_PORT to a free one"
	pg_prepare_dir "$dir"
	dir="$(cd "$dir" && pwd)"
	sock="$dir/run"
	# A unix socket path is limited to 107 bytes.
	[ "${#sock}" -le 90 ] || die "postgres socket dir $sock is too long for a unix socket; use a shorter DATA_DIR"
	runuser -u postgres -- mkdir -p "$sock"
	if [ ! -s "$dir/data/PG_VERSION" ]; then
		rm -rf "$dir/data"
		# trust: the server listens on loopback and a unix socket inside DIR only.
		runuser -u postgres -- "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
			>"$dir/initdb.log" 2>&1 || {
			show_log_tail "$dir/initdb.log"
			die "initdb failed in $dir/data"
		}
		echo "include_if_exists = 'adtracker.conf'" >>"$dir/data/postgresql.conf"
	fi
	# Rewritten every start so PG_PORT changes take effect. fsync off: this is a disposable dev
	# and test database, and tests that create many tables run much faster without it.
	runuser -u postgres -- tee "$dir/data/adtracker.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sock'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
	off="$(file_size "$dir/postgres.log")"
	if ! runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -s -w -t "$ADT_START_TIMEOUT" start \
		>"$dir/pg_ctl.log" 2>&1 9>&-; then
		show_log_tail "$dir/pg_ctl.log" "$dir/postgres.log:$off"
		die "postgres ($dir) did not start on 127.0.0.1:$port"
	fi
	pg_wait "$port" "$dir" "$off"
}

# pg_stop DIR: SIGINT is Postgres's "fast" shutdown; SIGTERM ("smart") would wait for every
# client, and a test binary's idle pool could hold it forever.
pg_stop() {
	local dir="$1" pid
	if pid="$(pg_pid "$dir")"; then
		stop_pid "$pid" "postgres ($dir)" INT
	fi
}

# pg_psql DIR PORT ARGS... runs psql as the postgres superuser over the instance's socket.
pg_psql() {
	local dir="$1" port="$2"
	shift 2
	psql -X -q -v ON_ERROR_STOP=1 -h "$(cd "$dir" && pwd)/run" -p "$port" -U postgres "$@"
}
