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
# executions of each target. Runs GLR_FUZZ_JOBS targets at once (default:
# one per CPU). CI (scripts/test.sh) runs it with 20 s each.
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

# fuzz_one TARGET — one target's run; its summary line goes to
# $BUILD/fuzz-TARGET.summary, its status is the run's
fuzz_one() {
  local t=$1 seeds=spec/fuzz/corpus/$1 work=$BUILD/corpus/$1 art=$BUILD/artifacts/$1
  local log=$BUILD/fuzz-$1.log sum=$BUILD/fuzz-$1.summary rc=0 execs
  [ -d "$seeds" ] || { echo "$t: no seed corpus $seeds" >"$sum"; return 1; }
  mkdir -p "$work" "$art"
  # the first corpus directory receives the new inputs, the seeds stay as
  # committed; leaks count (detect_leaks), a slow input is a failure
  "$BUILD/fuzz_$t" -max_total_time="$SECONDS_EACH" -print_final_stats=1 -timeout=10 \
    -rss_limit_mb=1024 -artifact_prefix="$art/" "$work" "$seeds" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  if ((rc != 0)); then
    tail -40 "$log" >&2
    echo "$t: FAILED (status $rc, ${execs:-?} executions; log $log, input in $art)" >"$sum"
  else
    echo "$t: ${execs:-?} executions in ${SECONDS_EACH}s, corpus $(ls "$work" | wc -l) new + $(ls "$seeds" | wc -l) seeds" >"$sum"
  fi
  return $rc
}

# GLR_FUZZ_JOBS targets at once (default: one per CPU)
jobs_max=${GLR_FUZZ_JOBS:-$(nproc)}
status=0
running=()
for t in "${targets[@]}"; do
  echo "fuzz: $t for ${SECONDS_EACH}s"
  fuzz_one "$t" &
  running+=($!)
  if ((${#running[@]} >= jobs_max)); then
    wait "${running[0]}" || status=1
    running=("${running[@]:1}")
  fi
done
for pid in "${running[@]}"; do wait "$pid" || status=1; done
summary=()
for t in "${targets[@]}"; do summary+=("$(cat "$BUILD/fuzz-$t.summary")"); done
printf 'fuzz: %s\n' "${summary[@]}"
exit $status
