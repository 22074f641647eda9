#!/usr/bin/env bash
# Runs golangci-lint with the committed .golangci.yml, installing the pinned version into the
# git-ignored .tools/bin first when it is missing (a `go install` through the Go module proxy,
# about a minute the first time). Arguments replace the default `./...`:
#
#   scripts/lint.sh                      # the whole tree (what `make lint` and CI run)
#   scripts/lint.sh ./ingest/...         # one subtree
#   scripts/lint.sh --fix ./config/...   # any `golangci-lint run` flag
#
# .golangci.yml sets build-tags: chaos, so the chaos suite (cmd/adtracker/chaos_test.go) is linted too.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version=v2.15.0
bin="$repo/.tools/bin"
lint="$bin/golangci-lint"

# `golangci-lint version` prints "golangci-lint has version 2.15.0 built with go1.26.x ...".
installed() {
	[ -x "$lint" ] && "$lint" version 2>/dev/null | grep -q "version ${version#v} "
}

command -v go >/dev/null || { echo "error: go is required to install golangci-lint" >&2; exit 1; }
if ! installed; then
	echo "installing golangci-lint $version into $bin (about a minute the first time)" >&2
	mkdir -p "$bin"
	GOBIN="$bin" go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$version"
	installed || { echo "error: golangci-lint $version did not install into $bin" >&2; exit 1; }
fi

cd "$repo"
if [ $# -eq 0 ]; then
	set -- ./...
fi
exec "$lint" run "$@"
