#!/usr/bin/env bash
# Builds the libFuzzer targets with clang-16 (ASan + UBSan) and runs each for a
# bounded time from the committed seed corpus (tests/fuzz/corpus/TARGET). Any
# finding fails the run; its input is left in $out/artifacts.
#   tests/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]      (default 30 s, all)
# Longer runs: the same with more seconds, e.g. tests/fuzz/run.sh 3600 fuzz_method_args.
# New corpus entries go to $out/corpus, never into the committed seeds.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-30}
shift || true
out=${TIO_BUILD_ROOT:-$top/build}/fuzz
echo "=== fuzz: configure + build (clang-16)"
CC=clang-16 CXX=clang++-16 cmake -S "$top" -B "$out" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTIO_FUZZ=ON -DTIO_BUILD_TESTS=OFF -DTIO_WERROR=OFF >/dev/null
cmake --build "$out" --target fuzz_all -j "$(nproc)"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=($(cd "$top/tests/fuzz/corpus" && ls))
fi
mkdir -p "$out/artifacts"
for t in "${targets[@]}"; do
  echo "=== fuzz: $t for ${seconds}s"
  mkdir -p "$out/corpus/$t"
  # -rss_limit_mb bounds a leak; -timeout a hang (the simulator's ETIMEDOUT path sleeps 1 s).
  status=0
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$out/tests/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$out/artifacts/$t-" "$out/corpus/$t" "$top/tests/fuzz/corpus/$t" >"$out/$t.log" 2>&1 ||
    status=$?
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$out/$t.log"
    echo "fuzz: $t found a failure (exit $status); input in $out/artifacts"
    exit 1
  fi
  grep -E '^(Done|stat::(number_of_executed_units|new_units_added|peak_rss_mb))' "$out/$t.log" || true
done
echo "=== fuzz: no findings"
