#!/usr/bin/env bash
# The product code is clean of what .clang-tidy checks (clang-tidy-16, Debian 12).
# Slow (minutes on 2 cores), so not part of every ctest run: run it before a
# submission, as the README says. Usage: check_tidy.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
top=$1
build=$2
cd "$top"
# The daemon's libraries are built with g++'s -ffat-lto-objects (daemon/CMakeLists.txt),
# which clang does not know: it says so, and tidy would count that as a finding.
run-clang-tidy-16 -p "$build" -j "$(nproc)" -quiet -extra-arg=-Wno-ignored-optimization-argument daemon/
