#!/usr/bin/env bash
# Every C++ source is as .clang-format lays it out (clang-format 14, Debian 12).
# Prints the files that are not and the command that fixes them.
set -euo pipefail
top=$1
cd "$top"
mapfile -t files < <(find daemon tests -name '*.cpp' -o -name '*.hpp' | sort)
bad=()
for f in "${files[@]}"; do
  clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  printf 'not formatted: %s\n' "${bad[@]}"
  echo "fix: clang-format -i ${bad[*]}"
  exit 1
fi
echo "${#files[@]} files formatted"
