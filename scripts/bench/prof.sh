#!/usr/bin/env bash
# prof.sh — the profiler's overhead: the echo server (loadgen) and the HTTP
# server (wrk) with and without a 99 Hz profile running, interleaved.
#
#   scripts/bench/prof.sh [--reps N] [--duration S] [--procs N]
#
# Each repetition runs "off" then "on" against a fresh server (goluarun
# -p N, GOLUA_DEBUG_ADDR on a free port in both); "on" fetches
# /debug/profile?seconds=S&format=folded during the measured run. Prints
# one RUN line per run (requests/s and the server's CPU µs per request,
# from /proc/PID/stat: steadier than throughput on a shared box) and the
# medians' on/off ratios per server.
# Only processes this script started are signalled, by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/bench/lib.sh
REPS=3 DUR=4 PROCS=1
while [ $# -gt 0 ]; do
  case $1 in
    --reps) REPS=$2; shift 2 ;;
    --duration) DUR=$2; shift 2 ;;
    --procs) PROCS=$2; shift 2 ;;
    *) echo "usage: scripts/bench/prof.sh [--reps N] [--duration S] [--procs N]" >&2; exit 2 ;;
  esac
done
need_pkgs prof.sh wrk curl
BUILD=${BUILD:-build}
GL=$BUILD/goluarun B=$BUILD/bench
mkdir -p "$B"
[ -x "$B/loadgen" ] || cc -O2 -o "$B/loadgen" scripts/bench/loadgen.c
LOG=$(mktemp) SPID=
trap '[ -n "$SPID" ] && kill "$SPID" 2>/dev/null; rm -f "$LOG"' EXIT

start() {                      # start SCRIPT: server on PORT, debug on DPORT
  PORT=$(free_port "$GL") DPORT=$(free_port "$GL")
  GOLUA_DEBUG_ADDR=127.0.0.1:$DPORT "$GL" -p "$PROCS" "scripts/$1" "127.0.0.1:$PORT" >>"$LOG" 2>&1 &
  SPID=$!
  wait_http "$1" "http://127.0.0.1:$DPORT/metrics"
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
CLK_TCK=$(getconf CLK_TCK)

stop() { kill "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null || true; SPID=; }

profile_during() {             # profile_during: a folded profile of DUR-1 s
  [ "$1" = on ] || return 0
  curl -s --max-time $((DUR + 10)) -o /dev/null \
    "http://127.0.0.1:$DPORT/debug/profile?seconds=$((DUR - 1))&format=folded" &
}

echo_rate() {
  "$B/loadgen" -p "$PORT" -c 50 -s 64 -d 1 >/dev/null 2>&1   # warm-up
  profile_during "$1"
  "$B/loadgen" -p "$PORT" -c 50 -s 64 -d "$DUR" 2>>"$LOG" |
    sed -n 's/^RESULT mode=echo.* rps=\([0-9.]*\).*/\1/p'
}

http_rate() {
  wrk -t1 -c50 -d1s "http://127.0.0.1:$PORT/" >/dev/null 2>&1     # warm-up
  profile_during "$1"
  wrk -t1 -c50 -d"${DUR}s" "http://127.0.0.1:$PORT/" 2>>"$LOG" |
    sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p'
}

declare -A R U
for rep in $(seq "$REPS"); do
  for bench in echo http; do
    for mode in off on; do
      if [ $bench = echo ]; then start echo.lua; else start http_server.lua; fi
      t0=$(cpu_ticks "$SPID")
      if [ $bench = echo ]; then rate=$(echo_rate $mode); else rate=$(http_rate $mode); fi
      t1=$(cpu_ticks "$SPID")
      stop
      # CPU over warm-up + run, requests of the run: an upper bound, same for both
      us=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v r="$rate" -v d="$DUR" \
        'BEGIN { printf "%.2f", t / hz * 1e6 / (r * d) }')
      echo "RUN rep=$rep bench=$bench profile=$mode rps=$rate cpu_us_per_req=$us"
      R[$bench,$mode]+="$rate "
      U[$bench,$mode]+="$us "
    done
  done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
for bench in echo http; do
  off=$(median <<<"${R[$bench,off]}") on=$(median <<<"${R[$bench,on]}")
  uoff=$(median <<<"${U[$bench,off]}") uon=$(median <<<"${U[$bench,on]}")
  awk -v b=$bench -v off="$off" -v on="$on" -v uoff="$uoff" -v uon="$uon" 'BEGIN {
    printf "%s: median rps off %.0f, on (99 Hz) %.0f, ratio on/off %.3f; server CPU us/req off %.2f, on %.2f, ratio %.3f\n",
      b, off, on, on / off, uoff, uon, uon / uoff }'
done
