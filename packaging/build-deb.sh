#!/usr/bin/env bash
# Builds the Debian package with dpkg-buildpackage (debhelper, cmake) from a copy
# of the source tree with packaging/debian as its debian/, and checks it with
# lintian. usage: packaging/build-deb.sh [OUT_DIR]   (default: build/deb)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/build/deb}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

src="$work/tio-manager-0.1.0"
mkdir -p "$src"
# The tracked sources (a clean checkout), not build trees.
(cd "$top" && git ls-files -z --cached --others --exclude-standard | grep -zv '^build/' | xargs -0 cp --parents -t "$src")
cp -r "$top/packaging/debian" "$src/debian"
(cd "$src" && dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1) || { tail -50 "$work/build.log"; exit 1; }
mkdir -p "$out"
cp "$work"/tio-manager_*.deb "$out/"
deb=$(ls "$out"/tio-manager_*_*.deb | grep -v dbgsym | head -1)
echo "built $deb"
# lintian: any error or warning fails the build.
lintian --fail-on error,warning "$deb"
echo "lintian: clean"
