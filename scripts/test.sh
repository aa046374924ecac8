#!/usr/bin/env bash
# test.sh — build goluarun and run the whole test suite with CTest:
#   1. warnings-as-errors build: C unit tests + every busted spec, each spec
#      also under the fault-injection switch (GOLUA_MOCKEAGAIN=rw); among
#      them chaos_spec (GOLUA_CHAOS, the example servers under two seeds)
#      and allocfail_spec (GOLUA_ALLOCFAIL across many N);
#   2. AddressSanitizer + UBSan build: the same suite;
#   3. ThreadSanitizer build (clang-16, with runtime/tsan_longjmp.c so TSan
#      sees liblua's fortified longjmps): the
#      C tests and every busted spec (without the fault-injection pass);
#      any TSan report, also from a child process, fails the step;
#   4. fuzzing: each libFuzzer target of spec/fuzz for GLR_FUZZ_SECONDS
#      (default 20; one per CPU at once) from its seed corpus (scripts/fuzz.sh;
#      clang-16).
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
  # a build-tsan configured with another compiler would keep it: start over
  grep -qs '^CMAKE_C_COMPILER:.*clang-16$' build-tsan/CMakeCache.txt || rm -f build-tsan/CMakeCache.txt
  CC=clang-16 BUILD=build-tsan scripts/setup.sh -DGLR_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug
  # reports go to files too (log_path), so one in a spec's child process,
  # whose exit status the spec may not look at, still fails the step;
  # allocator_may_return_null: a huge allocation fails like glibc's (Lua
  # raises "not enough memory") instead of aborting
  tsanlog=$PWD/build-tsan/tsan-reports
  rm -rf "$tsanlog" && mkdir -p "$tsanlog"
  TSAN_OPTIONS="halt_on_error=1 allocator_may_return_null=1 log_path=$tsanlog/report suppressions=$PWD/scripts/tsan.supp" \
    run_ctest build-tsan -LE mock
  if compgen -G "$tsanlog/report.*" >/dev/null; then
    echo "test: ThreadSanitizer reports:" && cat "$tsanlog"/report.* && status=1
  fi
  scripts/fuzz.sh "${GLR_FUZZ_SECONDS:-20}" || status=1
fi
exit $status
