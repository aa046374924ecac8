#!/usr/bin/env bash
# luasocket.sh — LuaSocket's socket.http (Debian lua-socket, unchanged) as a
# client, under lua5.4 with LuaSocket's C core and under goluarun with
# goluarun.socket, against one server (scripts/http_hello.lua, goluarun
# -p 1 on $SERVER_CPU). Client side figures: requests/s and client CPU
# µs/request, taken in the same run, repetitions interleaved.
#   scripts/bench/luasocket.sh [REQUESTS [REPS]]     (default 5000 3)
# Rows: lua5.4 (one request at a time), goluarun c=1 (the same), goluarun
# c=50 (50 goroutines on one P). Each request opens a connection, as
# socket.http does.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/bench/lib.sh
BUILD=${BUILD:-build}
GLR=$BUILD/goluarun
N=${1:-5000}
REPS=${2:-3}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
need_pkgs luasocket lua5.4 lua-socket curl
[ -x "$GLR" ] || { echo "luasocket: build $GLR first" >&2; exit 1; }

port=$(free_port "$GLR")
taskset -c "$SERVER_CPU" "$GLR" -p 1 scripts/http_hello.lua "127.0.0.1:$port" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
wait_http luasocket "http://127.0.0.1:$port/"
url="http://127.0.0.1:$port/"
client=scripts/bench/luasocket_client.lua

# run NAME CMD... — one measured client run: prints "NAME req/s cpu_us/req"
run() {
  local name=$1 out secs
  shift
  out=$( { /usr/bin/time -f "cpu %U %S" taskset -c "$CLIENT_CPU" "$@" ; } 2>&1 )
  secs=$(sed -n 's/^requests [0-9]* seconds \([0-9.]*\)$/\1/p' <<<"$out")
  local cpu
  cpu=$(awk '/^cpu /{print $2+$3}' <<<"$out")
  awk -v n="$name" -v r="$N" -v s="$secs" -v c="$cpu" \
    'BEGIN { printf "RUN %s %.0f %.1f\n", n, r / s, c * 1e6 / r }'
}

for _ in $(seq "$REPS"); do
  run lua5.4 lua5.4 "$client" "$url" "$N" 1
  run goluarun-c1 "$GLR" -p 1 "$client" "$url" "$N" 1
  run goluarun-c50 "$GLR" -p 1 "$client" "$url" "$N" 50
done | tee /dev/stderr | awk '
  { rps[$2] = rps[$2] " " $3; cpu[$2] = cpu[$2] " " $4 }
  function med(s,   a, n, i, j, t) { n = split(s, a, " "); for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }; return a[int((n + 1) / 2)] }
  END {
    base = med(rps["lua5.4"])
    printf "\n| client | req/s (median) | vs lua5.4 | client CPU µs/req |\n|---|---|---|---|\n"
    for (k in rps) printf "| %s | %d | %.2fx | %.1f |\n", k, med(rps[k]), med(rps[k]) / base, med(cpu[k])
  }'
