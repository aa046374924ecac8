#!/usr/bin/env bash
# redis_client.sh — goluarun.redis (the client) vs redis-benchmark, both
# against one Debian redis-server on 127.0.0.1.
#
#   scripts/bench/redis_client.sh [--reps N] [-n REQUESTS] [-c CLIENTS] [-P PIPELINE] [--lua]
#
# --lua adds goluarun-lua: the same client with GOLUARUN_RESP_LUA=1
# (resp.lua's Lua reader only), in the same interleaved run.
#
# Two rounds: plain calls (-P 1) and pipelined (-P PIPELINE, default 16).
# In each, for GET and SET, `goluarun -p 1 scripts/bench/redis_client.lua`
# (CLIENTS goroutines, each with its own client, sharing REQUESTS; a
# pipeline is r:pipeline of PIPELINE commands) and
# `redis-benchmark -t get,set -n REQUESTS -c CLIENTS -P PIPELINE -q` run
# alternately, N times each (default 3); figures are medians of the
# client-side requests per second, with the redis-server CPU µs per request
# each load cost and each client's own CPU µs per request. Target:
# goluarun / redis-benchmark >= 0.7 everywhere.
# redis-server runs pinned to SERVER_CPU (default 0) with `--save ''
# --appendonly no`, the clients to CLIENT_CPU (default 1); it is started
# here and stopped by its PID. Missing Debian packages (redis-server,
# redis-tools) are installed with apt-get.
#
# environment: BUILD (default build; goluarun is $BUILD/goluarun),
# SERVER_CPU, CLIENT_CPU.
set -euo pipefail
cd "$(dirname "$0")/../.."

REPS=3
N=200000
C=50
PIPE=16
WITH_LUA=0
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
BUILD=${BUILD:-build}
GOLUARUN=$BUILD/goluarun

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "redis_client.sh: $*" >&2; exit 1; }

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

source scripts/bench/lib.sh
need_pkgs redis_client.sh redis-server redis-tools util-linux
[ -x "$GOLUARUN" ] || die "$GOLUARUN not found (build first: scripts/setup.sh)"
ncpu=$(nproc)
((SERVER_CPU < ncpu && CLIENT_CPU < ncpu)) || die "CPUs $SERVER_CPU and $CLIENT_CPU needed, $ncpu online"

TMP=$(mktemp -d)
SPID=""
stop_server() {
  [ -n "$SPID" ] || return 0
  kill "$SPID" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$SPID" 2>/dev/null || true
  wait "$SPID" 2>/dev/null || true
  SPID=""
}
trap 'stop_server; rm -rf "$TMP"' EXIT

PORT=$(free_port "$GOLUARUN")
taskset -c "$SERVER_CPU" redis-server --port "$PORT" --bind 127.0.0.1 --save '' \
  --appendonly no --dir "$TMP" >"$TMP/server.out" 2>&1 &
SPID=$!
for _ in $(seq 200); do
  [ "$(timeout 2 redis-cli -p "$PORT" PING 2>/dev/null)" = PONG ] && break
  kill -0 "$SPID" 2>/dev/null || { cat "$TMP/server.out" >&2; die "redis-server did not start"; }
  sleep 0.05
done

# the server's CPU time in µs (utime + stime from /proc)
server_cpu_us() {
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); print ($12 + $13) * 1000000 / hz }' \
    "/proc/$SPID/stat"
}

# one run: prints "TEST RPS SERVER_CPU_US_PER_REQUEST CLIENT_CPU_US_PER_REQUEST"
# (the client's user + system time, from /usr/bin/time: less hit by a busy
# machine than requests per second)
run_one() { # who test pipe
  local before after rps cpu
  before=$(server_cpu_us)
  if [ "${1%-lua}" = goluarun ]; then
    rps=$([ "$1" = goluarun-lua ] && export GOLUARUN_RESP_LUA=1
      /usr/bin/time -f '%U %S' -o "$TMP/cpu" timeout 300 taskset -c "$CLIENT_CPU" "$GOLUARUN" -p 1 scripts/bench/redis_client.lua \
      "127.0.0.1:$PORT" "$2" "$N" "$C" "$3" | sed -n 's/^[A-Z]*: \([0-9.]*\) requests.*/\1/p')
  else
    rps=$(/usr/bin/time -f '%U %S' -o "$TMP/cpu" timeout 300 taskset -c "$CLIENT_CPU" redis-benchmark -h 127.0.0.1 -p "$PORT" \
      -t "$2" -n "$N" -P "$3" -c "$C" -q 2>&1 | tr '\r' '\n' \
      | sed -n 's/^[A-Z]*: \([0-9.]*\) requests per second.*/\1/p' | tail -1)
  fi
  after=$(server_cpu_us)
  [ -n "$rps" ] || die "no figure from $1 $2 -P $3"
  cpu=$(awk '{ print ($1 + $2) * 1000000 }' "$TMP/cpu")
  awk -v t="${2^^}" -v r="$rps" -v b="$before" -v a="$after" -v n="$N" -v c="$cpu" \
    'BEGIN { printf "%s %s %.2f %.2f\n", t, r, (a - b) / n, c / n }'
}

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2];
  else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

CLIENTS=(goluarun redis-benchmark)
((WITH_LUA)) && CLIENTS=(goluarun goluarun-lua redis-benchmark)
for pipe in 1 "$PIPE"; do
  for r in $(seq "$REPS"); do
    for t in set get; do
      for who in "${CLIENTS[@]}"; do
        run_one "$who" "$t" "$pipe" | tee -a "$TMP/$who.$pipe" \
          | sed "s/^/  -P $pipe $who run $r: /" >&2
      done
    done
  done
done
stop_server

echo
echo "redis-server (CPU $SERVER_CPU) vs clients (CPU $CLIENT_CPU): -n $N -c $C; median of $REPS;"
echo "goluarun -p 1 scripts/bench/redis_client.lua vs redis-benchmark -t get,set -q"
printf '%-4s %-8s %14s %14s %7s %12s %12s %12s %12s\n' P test goluarun redis-bench ratio \
  'srv us/req' 'srv us/req' 'cli us/req' 'cli us/req'
fig() { # who pipe T column
  awk -v t="$3" -v c="$4" '$1 == t { print $c }' "$TMP/$1.$2" | median
}
for pipe in 1 "$PIPE"; do
  for T in SET GET; do
    for who in "${CLIENTS[@]}"; do
      [ "$who" = redis-benchmark ] && continue
      a=$(fig "$who" "$pipe" "$T" 2) b=$(fig redis-benchmark "$pipe" "$T" 2)
      ca=$(fig "$who" "$pipe" "$T" 3) cb=$(fig redis-benchmark "$pipe" "$T" 3)
      ua=$(fig "$who" "$pipe" "$T" 4) ub=$(fig redis-benchmark "$pipe" "$T" 4)
      ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }')
      name=$T; [ "$who" = goluarun-lua ] && name="$T(lua)"
      printf '%-4s %-8s %14s %14s %6sx %12s %12s %12s %12s\n' "$pipe" "$name" "$a" "$b" "$ratio" \
        "$ca" "$cb" "$ua" "$ub"
    done
  done
done
