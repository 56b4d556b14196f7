#!/usr/bin/env bash
# The README's test command: installs the dependencies, then builds and runs every
# test twice, once as shipped (-Werror) and once under AddressSanitizer +
# UndefinedBehaviorSanitizer (the Debian package is built and checked once, in the
# first, and clang-tidy runs over daemon/ after it), then runs every libFuzzer
# target for 30 s (tests/fuzz/run.sh). Build trees go to build/ (or $TIO_BUILD_ROOT).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
root=${TIO_BUILD_ROOT:-$top/build}
jobs=$(nproc)

"$top/packaging/install-deps.sh"

run_suite() {
  local name=$1; shift
  local exclude=$1; shift
  local dir="$root/$name"
  echo "=== $name: configure + build"
  cmake -S "$top" -B "$dir" -G Ninja "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
  echo "=== $name: test"
  # Tests spawn simulator processes; two per core keeps the machine busy, not thrashing.
  ctest --test-dir "$dir" -j "$((jobs * 2))" --output-on-failure --timeout 600 ${exclude:+-E "$exclude"}
}

run_suite release "" -DCMAKE_BUILD_TYPE=RelWithDebInfo
echo "=== release: clang-tidy (.clang-tidy, clang-tidy-16)"
bash "$top/tests/style/check_tidy.sh" "$top" "$root/release"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_suite sanitize "^packaging\." -DCMAKE_BUILD_TYPE=Debug -DTIO_SANITIZE=address,undefined
bash "$top/tests/fuzz/run.sh" 30
echo "=== all suites passed"
