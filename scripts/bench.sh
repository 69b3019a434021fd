#!/usr/bin/env bash
# End-to-end benchmarks: dropship vs MariaDB's and MySQL 9.7's own tools, side by side, ratios as medians of N runs.
#
#   scripts/bench.sh [--smoke] [--runs N] [--no-install]
#
# Installs the comparison tools from Debian (scripts/install-deps.sh --bench), builds dropship and the runner
# with the RELEASE profile, starts its own throwaway MariaDB and MySQL servers (never port 3306), and writes BENCHMARKS.md
# (full mode) or target/bench-smoke.md (--smoke). Extra arguments after `--` go to the runner
# (`target/release/bench --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=0
runs=""
install=1
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1 ;;
    --runs) runs="$2"; shift ;;
    --runs=*) runs="${1#--runs=}" ;;
    --no-install) install=0 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument '$1' (expected --smoke, --runs N, --no-install, -- RUNNER-ARGS)" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$runs" ] || { [ "$smoke" = 1 ] && runs=1 || runs=3; }

if [ "$install" = 1 ]; then
  scripts/install-deps.sh --bench
fi

target_dir="${CARGO_TARGET_DIR:-target}"
cargo build --release --bin dropship --bin bench
args=(--runs "$runs" --dropship "$target_dir/release/dropship")
if [ "$smoke" = 1 ]; then
  args+=(--smoke --out "$target_dir/bench-smoke.md")
else
  args+=(--out BENCHMARKS.md)
fi
mode=""
if [ "$smoke" = 1 ]; then mode="--smoke "; fi
cmdline="scripts/bench.sh ${mode}--runs $runs${extra[*]:+ -- ${extra[*]}}"
exec "$target_dir/release/bench" "${args[@]}" --command-line "$cmdline" "${extra[@]}"
