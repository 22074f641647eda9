#!/usr/bin/env bash
# Installs what the VAST client tests (cmd/adtracker/vast_*_test.go) need, quickly when it is already there:
#   - the real web VAST client, npm @dailymotion/vast-client (pinned with its @xmldom/xmldom by package-lock.json here), into
#     the git-ignored .tools/vast-client, where scripts/vast-client/drive.js loads it from;
#   - Debian's ffmpeg, which the browser test uses to make its video, and node/npm when missing (apt).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
prefix="$repo/.tools/vast-client"
# A copy of the lock file, written only after a finished install: a lock that changed, or an interrupted install, reinstalls.
stamp="$prefix/.installed-lock.json"

installed() {
	cmp -s "$here/package-lock.json" "$stamp" && [ -f "$prefix/node_modules/@dailymotion/vast-client/package.json" ]
}

# shellcheck source=../lib.sh
source "$repo/scripts/lib.sh"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	apt_install nodejs npm # a fresh machine (CI); drive.js needs node ≥ 18 (fetch), which Debian 12's is
fi
if ! installed; then
	echo "installing @dailymotion/vast-client into $prefix" >&2
	rm -rf "$prefix"
	mkdir -p "$prefix"
	cp "$here/package.json" "$here/package-lock.json" "$prefix/"
	npm ci --prefix "$prefix" --no-audit --no-fund --loglevel=error >&2
	cp "$here/package-lock.json" "$stamp"
	installed || { echo "error: @dailymotion/vast-client did not install into $prefix" >&2; exit 1; }
fi

if ! command -v ffmpeg >/dev/null; then
	apt_install ffmpeg
fi
