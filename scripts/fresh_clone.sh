#!/usr/bin/env bash
# Runs the README's two commands in a fresh clone of this repository's HEAD in a temporary folder with
# nothing beside it (no ../shared): what a new user does. CI runs it. Set TRAIN_ARGS to shorten the
# training run (default: the README's command as written).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git clone -q "$repo" "$tmp/normlab"
cd "$tmp/normlab"
[ ! -e ../shared ] || { echo "fresh_clone: $tmp/shared exists" >&2; exit 1; }
echo "fresh clone in $tmp/normlab: scripts/deps.sh && make && build/release/normlab train ${TRAIN_ARGS:-}"
# shellcheck disable=SC2086
scripts/deps.sh && make -s -j2 && build/release/normlab train ${TRAIN_ARGS:-} </dev/null
echo "fresh clone: scripts/deps.sh && make test"
scripts/deps.sh && make -s test
