#!/usr/bin/env bash
# Installs chdb (a current ClickHouse engine in-process, for node) into the git-ignored
# .tools/chdb when missing, then runs scripts/chdb-check.js with the given extra query files.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version=3.4.0
prefix="$repo/.tools/chdb"

installed() {
	[ -f "$prefix/node_modules/chdb/package.json" ] &&
		grep -q "\"version\": \"$version\"" "$prefix/node_modules/chdb/package.json" &&
		# The engine itself is an optional dependency; an interrupted install can lack it.
		[ -d "$prefix/node_modules/@chdb" ]
}

command -v node >/dev/null || { echo "error: node is required for the chdb check" >&2; exit 1; }
if ! installed; then
	echo "installing chdb@$version into $prefix (the engine download is ~180 MB)" >&2
	mkdir -p "$prefix"
	npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error "chdb@$version" >&2
	installed || { echo "error: chdb@$version did not install into $prefix" >&2; exit 1; }
fi

exec node "$repo/scripts/chdb-check.js" "$@"
