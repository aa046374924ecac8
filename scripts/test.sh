#!/usr/bin/env bash
# test.sh — build goluarun and run the whole test suite with CTest:
#   1. warnings-as-errors build: C unit tests + every busted spec, each spec
#      also under the fault-injection switch (GOLUA_MOCKEAGAIN=rw); among
#      them chaos_spec (GOLUA_CHAOS, the example servers under two seeds)
#      and allocfail_spec (GOLUA_ALLOCFAIL across many N);
#   2. AddressSanitizer + UBSan build: the same suite;
#   3. ThreadSanitizer build: the scheduler / netpoller C tests;
#   4. fuzzing: each libFuzzer target of spec/fuzz for GLR_FUZZ_SECONDS
#      (default 30) from its seed corpus (scripts/fuzz.sh; clang-16).
# Set GLR_TEST_QUICK=1 to run only step 1.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -c 0 || true
status=0

run_ctest() { # build-dir label-args...
  local dir=$1; shift
  (cd "$dir" && ctest --output-on-failure --timeout 600 -j2 "$@") || status=1
}

BUILD=build scripts/setup.sh
run_ctest build

if [ "${GLR_TEST_QUICK:-0}" != 1 ]; then
  BUILD=build-asan scripts/setup.sh -DGLR_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=Debug
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    run_ctest build-asan
  BUILD=build-tsan scripts/setup.sh -DGLR_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug
  TSAN_OPTIONS=halt_on_error=1 run_ctest build-tsan -L sched
  scripts/fuzz.sh "${GLR_FUZZ_SECONDS:-30}" || status=1
fi
exit $status
