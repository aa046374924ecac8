#!/usr/bin/env bash
# soak.sh — N minutes (default 10) of mixed load against -p 2 servers, then
# check that the servers are back where they started. Not part of CI.
#   scripts/soak.sh [MINUTES]   (GOLUARUN_BIN: the binary; SOAK_SECONDS: overrides MINUTES)
# Servers (each `goluarun -p 2 -l soak.stats`, on free loopback ports):
# scripts/echo.lua, scripts/http_hello.lua, scripts/redis_lite.lua. The
# load (scripts/soak/load.lua, -p 2): persistent echo clients, echo churn,
# HTTP keep-alive and one-request connections, checked RESP SET/GET/MGET,
# slow clients, RST storms (SO_LINGER 0). Baseline: each server's figures
# after a 5 s warm-up load, once idle. At the end, within 30 s of the load
# stopping: goroutines, pollDescs and fds back to at most their baseline,
# RSS at most baseline * 1.25 + 16 MiB, zero client errors (RSTs are
# injected, not counted), nothing on the servers' stderr but lines about
# those RSTs. Prints a table; exits 1 if any check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-10}
BIN=${GOLUARUN_BIN:-build/goluarun}
[ -x "$BIN" ] || scripts/setup.sh
BUILD_DIR=$(dirname "$BIN")
export LUA_PATH="$PWD/scripts/?.lua;$PWD/lua/?.lua;;"
export LUA_CPATH="$PWD/$BUILD_DIR/?.so;$BUILD_DIR/?.so;;"
TMP=$(mktemp -d /tmp/soak.XXXXXX)
declare -A PID ADDR STATS
fail=0

stop_all() {
  for s in "${!PID[@]}"; do kill -TERM "${PID[$s]}" 2>/dev/null || true; done
  for s in "${!PID[@]}"; do wait "${PID[$s]}" 2>/dev/null || true; done
}
trap stop_all EXIT

# wait_line FILE PATTERN — the first match of a sed -n regex, within 10 s
wait_line() {
  local i v
  for i in $(seq 100); do
    v=$(sed -nE "s/$2/\1/p" "$1" | head -1)
    [ -n "$v" ] && { echo "$v"; return 0; }
    sleep 0.1
  done
  echo "soak: no '$2' in $1" >&2; cat "$1" "${1%.out}.err" >&2 || true; return 1
}

start() { # name script args...
  local name=$1; shift
  SOAK_STATS_PORT=0 "$BIN" -p 2 -l soak.stats "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
  PID[$name]=$!
  ADDR[$name]=$(wait_line "$TMP/$name.out" '^listening on (.*)$')
  STATS[$name]=$(wait_line "$TMP/$name.out" '^soak stats on (.*)$')
}

# stats NAME — "goroutines polldescs fds rss_kb" of a server
stats() {
  local pid=${PID[$1]} line
  line=$(python3 - "${STATS[$1]}" <<'PY'
import socket, sys
h, p = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((h, int(p)), 5)
print(s.makefile().readline().strip())
PY
)
  local g pd fds rss
  g=$(sed -E 's/.*goroutines=([0-9]+).*/\1/' <<<"$line")
  pd=$(sed -E 's/.*polldescs=([0-9]+).*/\1/' <<<"$line")
  fds=$(ls "/proc/$pid/fd" | wc -l)
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  echo "$g $pd $fds $rss"
}

start echo scripts/echo.lua 127.0.0.1:0
start http scripts/http_hello.lua 127.0.0.1:0
start redis scripts/redis_lite.lua 127.0.0.1:0
echo "soak: echo ${ADDR[echo]}  http ${ADDR[http]}  redis ${ADDR[redis]}  (${SOAK_SECONDS:-$((MINUTES * 60))} s)"

load() { "$BIN" -p 2 scripts/soak/load.lua "$1" "${ADDR[echo]}" "${ADDR[http]}" "${ADDR[redis]}"; }

# settled NAME G PD FDS — wait (30 s at most) until at most these figures
settled() {
  local i cur
  for i in $(seq 60); do
    cur=($(stats "$1"))
    if [ "${cur[0]}" -le "$2" ] && [ "${cur[1]}" -le "$3" ] && [ "${cur[2]}" -le "$4" ]; then
      echo "${cur[*]}"; return 0
    fi
    sleep 0.5
  done
  echo "${cur[*]}"; return 1
}

load 5 >"$TMP/warmup.log" || { echo "soak: warm-up load failed"; cat "$TMP/warmup.log"; exit 1; }
declare -A BASE
for s in echo http redis; do
  # idle: wait until two readings agree
  prev=""; for i in $(seq 60); do cur=$(stats $s); [ "$cur" = "$prev" ] && break; prev=$cur; sleep 0.5; done
  BASE[$s]=$cur
done

t0=$(date +%s)
load "${SOAK_SECONDS:-$((MINUTES * 60))}" | tee "$TMP/load.log" || fail=1
t1=$(date +%s)

printf '%-6s %-28s %-28s %s\n' server "baseline g/pd/fds/rssKB" "end g/pd/fds/rssKB" verdict
for s in echo http redis; do
  b=(${BASE[$s]})
  if end=$(settled $s "${b[0]}" "${b[1]}" "${b[2]}"); then v=ok; else v="NOT BACK"; fail=1; fi
  e=($end)
  lim=$(( b[3] * 5 / 4 + 16384 ))
  if [ "${e[3]}" -gt "$lim" ]; then v="$v, RSS over $lim"; fail=1; fi
  printf '%-6s %-28s %-28s %s\n' $s "${b[*]}" "${e[*]}" "$v"
done
for s in echo http redis; do
  n=$(grep -cvE 'reset by peer|ECONNRESET|connection reset|broken pipe|EPIPE' "$TMP/$s.err" || true)
  r=$(grep -cE 'reset by peer|ECONNRESET|connection reset|broken pipe|EPIPE' "$TMP/$s.err" || true)
  echo "$s stderr: $r lines about injected resets, $n other"
  if [ "$n" -gt 0 ]; then fail=1; head -5 "$TMP/$s.err"; fi
done
echo "soak: load ran $((t1 - t0)) s; logs in $TMP; $([ $fail = 0 ] && echo PASS || echo FAIL)"
exit $fail
