#!/usr/bin/env bash
# Installs what the VAST client tests (cmd/adtracker/vast_*_test.go) need, quickly when it is already there:
#   - the real web VAST client, npm @dailymotion/vast-client (pinned with its @xmldom/xmldom by package-lock.json here), into
#     the git-ignored .tools/vast-client, where scripts/vast-client/drive.js loads it from;
#   - Debian's ffmpeg, which the browser test uses to make its video (apt, when missing).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
prefix="$repo/.tools/vast-client"
# A copy of the lock file, written only after a finished install: a lock that changed, or an interrupted install, reinstalls.
stamp="$prefix/.installed-lock.json"

installed() {
	cmp -s "$here/package-lock.json" "$stamp" && [ -f "$prefix/node_modules/@dailymotion/vast-client/package.json" ]
}

if ! installed; then
	command -v npm >/dev/null || { echo "error: npm is required to install @dailymotion/vast-client" >&2; exit 1; }
	echo "installing @dailymotion/vast-client into $prefix" >&2
	rm -rf "$prefix"
	mkdir -p "$prefix"
	cp "$here/package.json" "$here/package-lock.json" "$prefix/"
	npm ci --prefix "$prefix" --no-audit --no-fund --loglevel=error >&2
	cp "$here/package-lock.json" "$stamp"
	installed || { echo "error: @dailymotion/vast-client did not install into $prefix" >&2; exit 1; }
fi

if ! command -v ffmpeg >/dev/null; then
	# shellcheck source=../lib.sh
	source "$repo/scripts/lib.sh"
	apt_install ffmpeg
fi
