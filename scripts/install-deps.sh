#!/usr/bin/env bash
# Installs what dropship's tests, demo and benchmarks need, from Debian packages. Idempotent.
#
#   scripts/install-deps.sh          mariadb-server + mariadb-client (only if mariadbd is missing), then real
#                                    MySQL 9.7 into a private folder (scripts/install-mysql.sh)
#   scripts/install-deps.sh --bench  also percona-toolkit (Debian 12's 3.2, for its Perl modules, and 3.7 from sid
#                                    for the benchmarks: install-mysql.sh --percona-toolkit), mydumper, sysbench,
#                                    valgrind (scripts/callgrind-apply.sh)
#
# It never starts, stops or reconfigures the system MariaDB service: the tests run their own throwaway servers
# from the binaries (see crates/sandbox). A policy-rc.d that forbids service starts is put in place for the
# duration of the install, so the package's postinst cannot start mariadb.service either.
set -euo pipefail

bench=0
for arg in "$@"; do
  case "$arg" in
    --bench) bench=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "install-deps.sh: unknown argument '$arg' (expected --bench)" >&2; exit 2 ;;
  esac
done

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

packages=()
have mariadbd || packages+=(mariadb-server)
have mariadb || packages+=(mariadb-client)
have openssl || packages+=(openssl)  # the TLS tests make their certificates with it
if [ "$bench" = 1 ]; then
  have pt-table-checksum || packages+=(percona-toolkit)
  have mydumper || packages+=(mydumper)
  have sysbench || packages+=(sysbench)
  have valgrind || packages+=(valgrind)
fi

mysql() {
  if [ "$bench" = 1 ]; then
    "$(dirname "$0")/install-mysql.sh" --percona-toolkit
  else
    "$(dirname "$0")/install-mysql.sh"
  fi
}

if [ "${#packages[@]}" -eq 0 ]; then
  echo "install-deps.sh: Debian packages are installed ($(/usr/sbin/mariadbd --version 2>/dev/null || mariadbd --version))"
  mysql
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "install-deps.sh: need root (or sudo) to install: ${packages[*]}" >&2
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps.sh: apt-get not found; install these packages by hand: ${packages[*]}" >&2
  exit 1
fi

# Forbid service starts during the install (exit 101 = "action forbidden" for invoke-rc.d), restoring any
# existing policy afterwards.
policy=/usr/sbin/policy-rc.d
backup=""
if [ -e "$policy" ]; then
  backup="$(mktemp)"
  "${sudo[@]}" cp -a "$policy" "$backup"
fi
restore_policy() {
  if [ -n "$backup" ]; then
    "${sudo[@]}" cp -a "$backup" "$policy"
    rm -f "$backup"
  else
    "${sudo[@]}" rm -f "$policy"
  fi
}
trap restore_policy EXIT
printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
"${sudo[@]}" chmod 755 "$policy"

echo "install-deps.sh: installing ${packages[*]}"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}"
echo "install-deps.sh: done ($(/usr/sbin/mariadbd --version))"
restore_policy
trap - EXIT
mysql
