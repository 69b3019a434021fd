#!/usr/bin/env bash
# Installs the dependencies (if missing) and runs the whole test suite, dev profile. The quickstart:
#   scripts/test.sh
# Extra arguments go to `cargo test` (for example `scripts/test.sh -p dropship-sandbox`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
if [ "$#" -eq 0 ]; then
  set -- --workspace
fi
exec cargo test "$@"
