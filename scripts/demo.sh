#!/usr/bin/env bash
# Quickstart: installs MariaDB server binaries if absent (Debian packages;
# the system service is never started), then runs `dropship demo`, which
# starts its own throwaway servers on free ports.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
exec cargo run --quiet -- demo "$@"
