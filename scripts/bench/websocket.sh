#!/usr/bin/env bash
# websocket.sh — WebSocket echo: goluarun (scripts/bench/ws_echo.lua,
# goluarun.http + goluarun.websocket, `goluarun -p 1`) vs Node's `ws`
# package (spec/node/ws_peer.js server, Debian node-ws), both driven by the
# same Node load generator (scripts/bench/ws_load.js) on 127.0.0.1.
#
#   scripts/bench/websocket.sh [--reps N] [-c CONNS] [-s SIZE] [-d SECONDS]
#
# Each server runs pinned to SERVER_CPU (default 0), the load generator to
# CLIENT_CPU (default 1), with `taskset`; runs alternate between the two
# servers. Each figure is the median of N runs (default 3) of C connections
# (default 50) each echoing SIZE-byte text messages (default 64) one at a
# time for SECONDS (default 4). Prints echoed messages/s, the ratio
# goluarun / node, and the server's CPU µs per message (utime+stime from
# /proc over the run). The load generator is single-threaded Node: when it
# is the bottleneck the rates converge, and the CPU column tells the
# servers apart.
#
# environment: BUILD (default build), SERVER_CPU, CLIENT_CPU.
set -euo pipefail
cd "$(dirname "$0")/../.."

REPS=3 C=50 SIZE=64 DUR=4
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
BUILD=${BUILD:-build}
GOLUARUN=$BUILD/goluarun
die() { echo "websocket.sh: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
  case $1 in
    --reps) REPS=${2:?}; shift ;;
    -c) C=${2:?}; shift ;;
    -s) SIZE=${2:?}; shift ;;
    -d) DUR=${2:?}; shift ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
  shift
done
source scripts/bench/lib.sh
need_pkgs websocket.sh nodejs node-ws util-linux
[ -x "$GOLUARUN" ] || die "$GOLUARUN not found (build first: scripts/setup.sh)"
export NODE_PATH=/usr/share/nodejs

TMP=$(mktemp -d)
declare -A PID PORT
stop_servers() {
  local pid
  for pid in "${PID[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PID[@]}"; do wait "$pid" 2>/dev/null || true; done
  PID=()
}
trap 'stop_servers; rm -rf "$TMP"' EXIT

start() { # name, command...; waits for the port in its output
  local name=$1; shift
  taskset -c "$SERVER_CPU" "$@" > "$TMP/$name.out" 2>&1 &
  PID[$name]=$!
  for _ in $(seq 200); do
    PORT[$name]=$(grep -o -m1 -E '(listening on 127.0.0.1:|listening )[0-9]+' "$TMP/$name.out" | grep -o -E '[0-9]+$' || true)
    [ -n "${PORT[$name]}" ] && return 0
    sleep 0.05
  done
  die "$name did not start: $(cat "$TMP/$name.out")"
}
start goluarun "$GOLUARUN" -p 1 scripts/bench/ws_echo.lua 127.0.0.1:0
start node node spec/node/ws_peer.js server

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)
declare -A RATES CPUS
for rep in $(seq "$REPS"); do
  for name in goluarun node; do
    before=$(cpu_ticks "${PID[$name]}")
    out=$(taskset -c "$CLIENT_CPU" timeout 60 node scripts/bench/ws_load.js \
      "ws://127.0.0.1:${PORT[$name]}/" "$C" "$SIZE" "$DUR")
    after=$(cpu_ticks "${PID[$name]}")
    msgs=$(echo "$out" | awk '{print $2}')
    rate=$(echo "$out" | awk '{print $4}')
    us=$(awk -v t=$((after - before)) -v hz="$TCK" -v m="$msgs" 'BEGIN{printf "%.2f", t / hz * 1e6 / (m > 0 ? m : 1)}')
    echo "RUN $name rep=$rep c=$C size=$SIZE rate=$rate cpu_us_per_msg=$us"
    RATES[$name]+="$rate "
    CPUS[$name]+="$us "
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
g=$(echo "${RATES[goluarun]}" | median); n=$(echo "${RATES[node]}" | median)
gc=$(echo "${CPUS[goluarun]}" | median); nc=$(echo "${CPUS[node]}" | median)
echo
echo "| server | echo msgs/s (median of $REPS) | server CPU µs/msg |"
echo "|---|---|---|"
echo "| goluarun -p 1 (goluarun.websocket) | $g | $gc |"
echo "| node ws | $n | $nc |"
awk -v g="$g" -v n="$n" 'BEGIN{printf "\ngoluarun / node: %.2fx\n", g / n}'
