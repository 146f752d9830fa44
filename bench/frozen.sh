#!/usr/bin/env bash
# Run a benchmark against a frozen snapshot of one commit, so that commits landing while it runs (or a dirty work
# tree) do not change the code being measured. The benchmark scripts themselves come from the work tree's bench/;
# results are written to the work tree's bench/results/ and record the snapshot's commit.
#
#   bench/frozen.sh [--commit REV] -- bench/ingest.py --json
#   bench/frozen.sh -- bench/verify_latency.py --backends postgres
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REV=HEAD
if [ "${1:-}" = "--commit" ]; then REV=$2; shift 2; fi
if [ "${1:-}" = "--" ]; then shift; fi
SNAP=$(mktemp -d /tmp/tl_bench_frozen_XXXXXX)
trap 'rm -rf "$SNAP"' EXIT
git -C "$ROOT" archive "$REV" | tar -x -C "$SNAP"
rm -rf "$SNAP/bench"
mkdir -p "$ROOT/bench/results"
(cd "$ROOT" && tar -c --exclude=results --exclude=__pycache__ bench) | tar -x -C "$SNAP"
ln -s "$ROOT/bench/results" "$SNAP/bench/results"
git -C "$ROOT" rev-parse "$REV" > "$SNAP/.bench-source-commit"
echo ">> measuring $(cat "$SNAP/.bench-source-commit") from $SNAP" >&2
cd "$SNAP"
"$ROOT/.venv/bin/python" "$@"
