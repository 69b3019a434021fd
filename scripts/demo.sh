#!/usr/bin/env bash
# Quickstart: installs MariaDB (Debian packages; the system service is never
# started) and MySQL 9.7 (scripts/install-mysql.sh, into a private folder) if
# absent, then runs `dropship demo` (MySQL; `--flavor mariadb` for MariaDB),
# which starts its own throwaway servers on free ports.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
exec cargo run --quiet -- demo "$@"
