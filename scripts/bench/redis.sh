#!/usr/bin/env bash
# redis.sh — scripts/redis_lite.lua under goluarun vs Debian's redis-server,
# both driven by redis-benchmark on 127.0.0.1.
#
#   scripts/bench/redis.sh [--reps N] [-n REQUESTS] [-c CLIENTS] [-P PIPELINE] [--lua]
#
# --lua adds a third server, redis_lite-lua: redis_lite with
# GOLUARUN_RESP_LUA=1 (resp.lua's Lua reader only, no C batch decoder), so
# the C reader's gain is measured in the same interleaved run.
#
# Each server runs pinned to SERVER_CPU (default 0), redis-benchmark to
# CLIENT_CPU (default 1), with `taskset`. redis_lite runs as
# `goluarun -p 1 scripts/redis_lite.lua PORT`, redis-server as
# `redis-server --port PORT --save '' --appendonly no`. Both are started by
# this script (and killed by their PIDs at the end); the runs alternate
# between them. Each figure is the median of N runs (default 3) of
# `redis-benchmark -t set,get -n 100000 -P 1 -c 50 -q`.
# The table gives requests per second and redis_lite / redis-server (target:
# at least 0.6 for SET and GET), and each server's CPU µs per request. Missing Debian packages (redis-server,
# redis-tools) are installed with apt-get.
#
# environment: BUILD (default build; goluarun is $BUILD/goluarun),
# SERVER_CPU, CLIENT_CPU.
set -euo pipefail
cd "$(dirname "$0")/../.."

REPS=3
N=100000
C=50
PIPE=1
TESTS=set,get
WITH_LUA=0
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
BUILD=${BUILD:-build}
GOLUARUN=$BUILD/goluarun

usage() {
  sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'
}

die() { echo "redis.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case $1 in
    --reps) REPS=${2:?}; shift ;;
    -n) N=${2:?}; shift ;;
    -c) C=${2:?}; shift ;;
    -P) PIPE=${2:?}; shift ;;
    --lua) WITH_LUA=1 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done
for v in "$REPS" "$N" "$C" "$PIPE"; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || die "'$v' is not a positive integer"
done

# ---- tools -------------------------------------------------------------------

source scripts/bench/lib.sh
need_pkgs redis.sh redis-server redis-tools util-linux
[ -x "$GOLUARUN" ] || die "$GOLUARUN not found (build first: scripts/setup.sh)"
ncpu=$(nproc)
if ((SERVER_CPU >= ncpu || CLIENT_CPU >= ncpu)); then
  die "CPUs $SERVER_CPU and $CLIENT_CPU needed, $ncpu online (set SERVER_CPU/CLIENT_CPU)"
fi

# ---- servers -----------------------------------------------------------------

TMP=$(mktemp -d)
declare -A PID PORT
stop_servers() {
  local pid
  for pid in "${PID[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PID[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PID=()
}
trap 'stop_servers; rm -rf "$TMP"' EXIT


wait_port() { # name: until it answers PING (10 s at most)
  for _ in $(seq 200); do
    [ "$(timeout 2 redis-cli -p "${PORT[$1]}" PING 2>/dev/null)" = PONG ] && return 0
    kill -0 "${PID[$1]}" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

start_server() { # name
  local port
  port=$(free_port "$GOLUARUN")
  case $1 in
    redis_lite)
      taskset -c "$SERVER_CPU" "$GOLUARUN" -p 1 scripts/redis_lite.lua "127.0.0.1:$port" \
        >"$TMP/$1.out" 2>&1 &
      ;;
    redis_lite-lua)
      GOLUARUN_RESP_LUA=1 taskset -c "$SERVER_CPU" "$GOLUARUN" -p 1 scripts/redis_lite.lua \
        "127.0.0.1:$port" >"$TMP/$1.out" 2>&1 &
      ;;
    redis-server)
      taskset -c "$SERVER_CPU" redis-server --port "$port" --bind 127.0.0.1 --save '' \
        --appendonly no --dir "$TMP" >"$TMP/$1.out" 2>&1 &
      ;;
  esac
  PID[$1]=$!
  PORT[$1]=$port
  wait_port "$1" || { cat "$TMP/$1.out" >&2; die "$1 did not start"; }
}

# ---- runs --------------------------------------------------------------------

# one redis-benchmark run: prints "TEST RPS" lines
bench_once() { # port
  timeout 300 taskset -c "$CLIENT_CPU" redis-benchmark -h 127.0.0.1 -p "$1" \
    -t "$TESTS" -n "$N" -P "$PIPE" -c "$C" -q 2>&1 | tr '\r' '\n' \
    | sed -n 's/^\([A-Z_]*\): \([0-9.]*\) requests per second.*/\1 \2/p'
}

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2];
  else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

SERVERS=(redis_lite redis-server)
((WITH_LUA)) && SERVERS=(redis_lite redis_lite-lua redis-server)
# both servers stay up (the idle one costs nothing) and the runs alternate,
# so that a change in the machine's load hits both alike
for server in "${SERVERS[@]}"; do
  start_server "$server"
  : >"$TMP/$server.runs"
done
# a server's CPU time in µs (utime + stime from /proc)
cpu_us() { # pid
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); print ($12 + $13) * 1000000 / hz }' \
    "/proc/$1/stat"
}
ntests=$(awk -F, '{ print NF }' <<<"$TESTS")
for r in $(seq "$REPS"); do
  for server in "${SERVERS[@]}"; do
    before=$(cpu_us "${PID[$server]}")
    bench_once "${PORT[$server]}" | tee -a "$TMP/$server.runs" | sed "s/^/  $server run $r: /" >&2
    after=$(cpu_us "${PID[$server]}")
    awk -v a="$after" -v b="$before" -v n="$((N * ntests))" \
      'BEGIN { printf "CPU %.2f\n", (a - b) / n }' >>"$TMP/$server.runs"
  done
done
stop_servers

declare -A RPS
for server in "${SERVERS[@]}"; do
  RPS[$server,CPU]=$(awk '$1 == "CPU" { print $2 }' "$TMP/$server.runs" | median)
  for t in ${TESTS//,/ }; do
    T=${t^^}
    RPS[$server,$T]=$(awk -v t="$T" '$1 == t { print $2 }' "$TMP/$server.runs" | median)
    [ -n "${RPS[$server,$T]}" ] || die "no $T figure from $server"
  done
done

echo
echo "redis-benchmark -t $TESTS -n $N -P $PIPE -c $C -q; server on CPU $SERVER_CPU, client on CPU $CLIENT_CPU; median of $REPS"
header=$(printf '%-6s' test)
for server in "${SERVERS[@]}"; do header+=$(printf ' %16s' "$server"); done
for server in "${SERVERS[@]}"; do
  [ "$server" = redis-server ] || header+=$(printf ' %16s' "${server#redis_}/redis")
done
echo "$header"
for t in ${TESTS//,/ }; do
  T=${t^^}
  line=$(printf '%-6s' "$T")
  for server in "${SERVERS[@]}"; do line+=$(printf ' %16s' "${RPS[$server,$T]}"); done
  for server in "${SERVERS[@]}"; do
    [ "$server" = redis-server ] && continue
    ratio=$(awk -v a="${RPS[$server,$T]}" -v b="${RPS[redis-server,$T]}" 'BEGIN { printf "%.2f", a / b }')
    line+=$(printf ' %15sx' "$ratio")
  done
  echo "$line"
done
line=$(printf '%-6s' 'us/req')
for server in "${SERVERS[@]}"; do line+=$(printf ' %16s' "${RPS[$server,CPU]}"); done
echo "$line   (server CPU µs per request, all tests)"
