#!/usr/bin/env bash
# Instruction-count profile of `dropship replicate` applying the benchmark workload (reader + applier; the
# servers are not profiled). Instruction counts are stable on a noisy shared machine, unlike wall times.
#
#   scripts/callgrind-apply.sh [DROPSHIP_BINARY] [OUT_DIR]     (defaults: target/release/dropship, target/callgrind)
#
# Runs the benchmark runner's apply phase once (TRANSACTIONS=2000 transactions of 10 changes by default, i.e.
# 20k row changes; env var to change it) with the binary wrapped in `valgrind --tool=callgrind`, then prints
# the top functions by instructions (inclusive and self) with callgrind_annotate. The raw profile stays in
# OUT_DIR/callgrind.out.<pid> (open it with kcachegrind or callgrind_annotate). The runner's apply *rates* from
# this run are meaningless (callgrind is ~50x slower); compare instruction totals ("PROGRAM TOTALS").
# Needs valgrind (scripts/install-deps.sh --bench) and a release build with debug info (the release profile
# has debug = 1): cargo build --release --bin dropship --bin bench
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(realpath "${1:-${CARGO_TARGET_DIR:-target}/release/dropship}")"
out="$(mkdir -p "${2:-target/callgrind}" && realpath "${2:-target/callgrind}")"
bench="$(dirname "$bin")/bench"
[ -x "$bench" ] || bench="${CARGO_TARGET_DIR:-target}/release/bench"
command -v valgrind >/dev/null || { echo "callgrind-apply.sh: valgrind is missing: scripts/install-deps.sh --bench" >&2; exit 1; }
wrapper="$out/dropship-under-callgrind"
cat > "$wrapper" <<WRAP
#!/bin/sh
# Profile only long-running replicate processes; everything else runs natively.
case " \$* " in
  *" replicate "*) exec valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out.%p" "$bin" "\$@" ;;
  *) exec "$bin" "\$@" ;;
esac
WRAP
chmod +x "$wrapper"
rm -f "$out"/callgrind.out.*
"$bench" --phases apply --runs 1 --transactions "${TRANSACTIONS:-2000}" --dropship "$wrapper" --out "$out/bench.md"
for f in "$out"/callgrind.out.*; do
  echo "== $f"
  callgrind_annotate --inclusive=yes "$f" 2>/dev/null | sed -n '1,45p'
  echo "-- self"
  callgrind_annotate "$f" 2>/dev/null | sed -n '/^Ir/,$p' | sed -n '1,35p'
done
