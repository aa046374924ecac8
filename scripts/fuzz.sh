#!/usr/bin/env bash
# fuzz.sh — build the libFuzzer targets (spec/fuzz/*.c; clang-16 with
# -fsanitize=fuzzer,address,undefined, CMake option GLR_FUZZ) into
# ${BUILD:-build-fuzz} and run each for SECONDS (default 60) from its
# committed seed corpus spec/fuzz/corpus/<target>:
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# New inputs go to $BUILD/corpus/<target> (reused by the next run; copy the
# ones worth keeping into the committed corpus); a crash is saved as
# $BUILD/artifacts/<target>/crash-* and makes the script fail: fix it and
# add that input to spec/fuzz/corpus/<target> as a regression. Prints the
# executions of each target. CI (scripts/test.sh) runs it with 30 s each.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${1:-60}
shift || true
BUILD=${BUILD:-build-fuzz}
CC_FUZZ=${CC_FUZZ:-clang-16}
targets=("$@")
if ((${#targets[@]} == 0)); then
  for f in spec/fuzz/*.c; do targets+=("$(basename "$f" .c)"); done
fi

command -v "$CC_FUZZ" >/dev/null || { echo "fuzz: $CC_FUZZ not found (scripts/setup.sh installs it)" >&2; exit 1; }
CC=$CC_FUZZ cmake -S . -B "$BUILD" -DGLR_WERROR=ON -DGLR_FUZZ=ON >/dev/null
cmake --build "$BUILD" --target fuzz -j"$(nproc)" >/dev/null

status=0
summary=()
for t in "${targets[@]}"; do
  seeds=spec/fuzz/corpus/$t
  work=$BUILD/corpus/$t
  art=$BUILD/artifacts/$t
  [ -d "$seeds" ] || { echo "fuzz: no seed corpus $seeds" >&2; status=1; continue; }
  mkdir -p "$work" "$art"
  log=$BUILD/fuzz-$t.log
  echo "fuzz: $t for ${SECONDS_EACH}s"
  # the first corpus directory receives the new inputs, the seeds stay as
  # committed; leaks count (detect_leaks), a slow input is a failure
  rc=0
  "$BUILD/fuzz_$t" -max_total_time="$SECONDS_EACH" -print_final_stats=1 -timeout=10 \
    -rss_limit_mb=1024 -artifact_prefix="$art/" "$work" "$seeds" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  if ((rc != 0)); then
    status=1
    tail -40 "$log" >&2
    summary+=("$t: FAILED (status $rc, ${execs:-?} executions; log $log, input in $art)")
  else
    summary+=("$t: ${execs:-?} executions in ${SECONDS_EACH}s, corpus $(ls "$work" | wc -l) new + $(ls "$seeds" | wc -l) seeds")
  fi
done
printf 'fuzz: %s\n' "${summary[@]}"
exit $status
