#!/usr/bin/env bash
# The units of units/ as systemd reads them (issue 5):
#  - `systemd-analyze verify` on instantiated copies must print nothing at all
#    (it exits 0 on unknown keys and bad values, so any stderr is a failure), with
#    ExecStart pointing at the built binaries and the man pages of packaging/man
#    on MANPATH (Documentation=man: is checked too);
#  - `systemd-analyze security --offline=yes` must rate tio-manager@.service at an
#    exposure of 2.0 or less.
# usage: check_units.sh SOURCE_DIR TIO_MANAGERD TIO_SIMKERNEL
set -euo pipefail
src=$1 managerd=$2 simkernel=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/units" "$work/man/man8"
cp "$src"/packaging/man/*.8 "$work/man/man8/"
for u in "$src"/units/*; do
  name=$(basename "$u")
  sed -e "s|/usr/sbin/tio-managerd|$managerd|" -e "s|/usr/bin/tio-simkernel|$simkernel|" "$u" > "$work/units/${name/@./@vm1.}"
done
cd "$work/units"
MANPATH="$work/man" systemd-analyze verify ./* > "$work/verify.out" 2>&1 || { cat "$work/verify.out"; echo "FAIL: verify exited non-zero"; exit 1; }
if [ -s "$work/verify.out" ]; then cat "$work/verify.out"; echo "FAIL: verify printed warnings"; exit 1; fi
echo "verify: clean ($(ls | tr '\n' ' '))"

for unit in tio-manager@vm1.service tio-simkernel.service; do
  line=$(systemd-analyze security --offline=yes "./$unit" 2>&1 | grep "Overall exposure level") || {
    systemd-analyze security --offline=yes "./$unit"; echo "FAIL: no exposure level for $unit"; exit 1; }
  level=$(echo "$line" | sed -E 's/.*: ([0-9]+\.[0-9]+).*/\1/')
  echo "$unit: exposure $level"
  awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }' || { echo "FAIL: $unit exposure $level > 2.0"; exit 1; }
done
