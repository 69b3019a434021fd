#!/usr/bin/env bash
# Installs real MySQL 9.7 (mysqld, mysql, mysqlbinlog) into a private folder, never into the system. Idempotent.
#
#   scripts/install-mysql.sh            into $DROPSHIP_MYSQL_ROOT (default /opt/dropship-mysql)
#   scripts/install-mysql.sh --print    print the folder if it holds a working mysqld, else exit 1
#   scripts/install-mysql.sh --percona-toolkit
#                                       also percona-toolkit 3.7 from sid (the benchmarks' pt-table-checksum),
#                                       unpacked into ROOT/percona-toolkit and run by the system perl through
#                                       ROOT/bin/pt-table-checksum (its Perl modules come from Debian 12:
#                                       install-deps.sh --bench installs them)
#
# Debian's `sid` suite carries MySQL 9.7 (mysql-server-core, mysql-client-core). Those packages need a newer C
# library than the machine's, so they are not installed: they and their recursive dependencies are downloaded
# through a separate apt configuration (its own sources list, lists and cache under the folder) and unpacked with
# `dpkg -x` into one folder. The binaries then run through that folder's own dynamic loader:
#
#   ROOT/usr/lib64/ld-linux-x86-64.so.2 --library-path ROOT/usr/lib/x86_64-linux-gnu:ROOT/lib/x86_64-linux-gnu \
#       ROOT/usr/sbin/mysqld ...
#
# `ROOT/bin/mysqld`, `ROOT/bin/mysql` and `ROOT/bin/mysqlbinlog` are wrappers that do exactly that; the test
# sandbox (crates/sandbox) finds them through $DROPSHIP_MYSQL_ROOT or the default folder.
set -euo pipefail

root="${DROPSHIP_MYSQL_ROOT:-/opt/dropship-mysql}"
mirror="${DROPSHIP_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
packages=(mysql-server-core mysql-client-core)

works() {
  [ -x "$root/bin/mysqld" ] && "$root/bin/mysqld" --version 2>/dev/null | grep -q 'Ver 9\.'
}

percona=0
case "${1:-}" in
  --print) if works; then echo "$root"; exit 0; else exit 1; fi ;;
  --percona-toolkit) percona=1 ;;
  -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
  "") ;;
  *) echo "install-mysql.sh: unknown argument '$1' (expected --print or --percona-toolkit)" >&2; exit 2 ;;
esac

pt_works() {
  [ -x "$root/bin/pt-table-checksum" ] && "$root/bin/pt-table-checksum" --version 2>/dev/null | grep -Eq ' 3\.([7-9]|[1-9][0-9])'
}

if works && { [ "$percona" = 0 ] || pt_works; }; then
  echo "install-mysql.sh: $("$root/bin/mysqld" --version) in $root"
  [ "$percona" = 0 ] || echo "install-mysql.sh: $("$root/bin/pt-table-checksum" --version) in $root"
  exit 0
fi

if [ "$(id -u)" -ne 0 ] && [ ! -w "$(dirname "$root")" ]; then
  echo "install-mysql.sh: cannot write $root; run as root or set DROPSHIP_MYSQL_ROOT to a writable folder" >&2
  exit 1
fi

apt_dir="$root/.apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs"
cat >"$apt_dir/sources.list" <<EOF
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror sid main
EOF
apt_opts=(
  -o "Dir::Etc::sourcelist=$apt_dir/sources.list"
  -o "Dir::Etc::sourceparts=-"
  -o "Dir::State::Lists=$apt_dir/lists"
  -o "Dir::Cache=$apt_dir/cache"
  -o "Dir::State::status=/dev/null"
  -o "APT::Get::List-Cleanup=0"
  -o "Acquire::Languages=none"
  -o "APT::Sandbox::User=root"
)

if [ -z "$(ls "$apt_dir/lists" 2>/dev/null | grep -v partial)" ] || [ "${DROPSHIP_MYSQL_REFRESH:-0}" = 1 ]; then
  echo "install-mysql.sh: reading the sid package lists"
  apt-get "${apt_opts[@]}" -qq update
fi

if [ "$percona" = 1 ] && ! pt_works; then
  # Perl scripts only: the deb alone, no dependencies (the system perl and its DBD::mysql run them).
  mkdir -p "$apt_dir/pt"
  if ! (cd "$apt_dir/pt" && apt-get "${apt_opts[@]}" -qq download percona-toolkit); then
    apt-get "${apt_opts[@]}" -qq update
    (cd "$apt_dir/pt" && apt-get "${apt_opts[@]}" -qq download percona-toolkit)
  fi
  rm -rf "$root/percona-toolkit"
  for deb in "$apt_dir/pt"/*.deb; do
    dpkg -x "$deb" "$root/percona-toolkit"
  done
  rm -rf "$apt_dir/pt"
  mkdir -p "$root/bin"
  printf '#!/bin/sh\nexec perl "%s/percona-toolkit/usr/bin/pt-table-checksum" "$@"\n' "$root" >"$root/bin/pt-table-checksum"
  chmod 755 "$root/bin/pt-table-checksum"
  if ! pt_works; then
    echo "install-mysql.sh: $root/bin/pt-table-checksum does not run (its Perl modules: install-deps.sh --bench):" >&2
    "$root/bin/pt-table-checksum" --version >&2 || true
    exit 1
  fi
  echo "install-mysql.sh: $("$root/bin/pt-table-checksum" --version) in $root"
  if works; then
    exit 0
  fi
fi

# Every package the two need, recursively (Depends and PreDepends only), as concrete package names.
mapfile -t deps < <(
  apt-cache "${apt_opts[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances "${packages[@]}" \
    | awk '/^[a-z0-9]/ { print $1 }' | sort -u
)
# Virtual packages have no candidate: keep only downloadable ones.
downloadable=()
for p in "${deps[@]}"; do
  policy="$(apt-cache "${apt_opts[@]}" policy "$p" 2>/dev/null || true)"
  case "$policy" in
    *"Candidate: (none)"*|"") ;;
    *Candidate:*) downloadable+=("$p") ;;
  esac
done
echo "install-mysql.sh: downloading ${#downloadable[@]} packages"
if ! (cd "$apt_dir/debs" && apt-get "${apt_opts[@]}" -qq download "${downloadable[@]}"); then
  # sid moves daily: stale lists name files the mirror no longer has.
  echo "install-mysql.sh: download failed; refreshing the sid package lists and trying once more"
  apt-get "${apt_opts[@]}" -qq update
  (cd "$apt_dir/debs" && apt-get "${apt_opts[@]}" -qq download "${downloadable[@]}")
fi

echo "install-mysql.sh: unpacking into $root"
for deb in "$apt_dir/debs"/*.deb; do
  dpkg -x "$deb" "$root"
done

loader="$root/usr/lib64/ld-linux-x86-64.so.2"
[ -e "$loader" ] || loader="$root/lib64/ld-linux-x86-64.so.2"
if [ ! -e "$loader" ]; then
  echo "install-mysql.sh: no ld-linux-x86-64.so.2 in $root after unpacking" >&2
  exit 1
fi
libs="$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu"
mkdir -p "$root/bin"
for tool in mysqld:usr/sbin/mysqld mysql:usr/bin/mysql mysqlbinlog:usr/bin/mysqlbinlog \
  mysqldump:usr/bin/mysqldump mysqladmin:usr/bin/mysqladmin; do
  name="${tool%%:*}"
  path="$root/${tool#*:}"
  [ -e "$path" ] || continue
  cat >"$root/bin/$name" <<EOF
#!/bin/sh
exec "$loader" --library-path "$libs" "$path" "\$@"
EOF
  chmod 755 "$root/bin/$name"
done

if ! works; then
  echo "install-mysql.sh: $root/bin/mysqld does not run:" >&2
  "$root/bin/mysqld" --version >&2 || true
  exit 1
fi
rm -rf "$apt_dir/debs" "$apt_dir/cache"
echo "install-mysql.sh: $("$root/bin/mysqld" --version) in $root"
