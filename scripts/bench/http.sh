#!/usr/bin/env bash
# http.sh — HTTP "Hello, World!" benchmark: scripts/http_server.lua
# (goluarun -p 1) against nginx + lua-nginx-module (one worker), both
# answering GET / with "Hello, World!\n" over keep-alive connections.
#
#   scripts/bench/http.sh            (env: DURATION=5 CONNS=50 RUNS=3
#                                     SERVER_CPU=0 WRK_CPU=1 GOLUARUN=...)
#
# Load: wrk -t1 -c$CONNS -d${DURATION}s, pinned to CPU $WRK_CPU; each server
# pinned to CPU $SERVER_CPU. Runs alternate between the servers; the table
# shows the median requests/s of $RUNS runs, and the server CPU time
# (utime+stime from /proc/PID/stat, nginx: master + worker) per request
# over all runs. Missing Debian packages (wrk, nginx,
# libnginx-mod-http-lua, curl) are installed with apt-get.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

DURATION=${DURATION:-5}
CONNS=${CONNS:-50}
RUNS=${RUNS:-3}
SERVER_CPU=${SERVER_CPU:-0}
WRK_CPU=${WRK_CPU:-1}
GOLUARUN=${GOLUARUN:-$ROOT/build/goluarun}

source "$ROOT/scripts/bench/lib.sh"
need_pkgs http.sh wrk nginx libnginx-mod-http-lua curl util-linux
[ -x "$GOLUARUN" ] || { echo "http.sh: $GOLUARUN not built (scripts/setup.sh)" >&2; exit 1; }

NCPU=$(nproc)
if ((NCPU < 2)); then
  echo "http.sh: only $NCPU CPU: no pinning (results are not comparable)" >&2
  PIN_SERVER=(); PIN_WRK=()
else
  PIN_SERVER=(taskset -c "$SERVER_CPU"); PIN_WRK=(taskset -c "$WRK_CPU")
fi

TMP=$(mktemp -d /tmp/http-bench.XXXXXX)
GLR_PID=""; NGX_PID=""
cleanup() {
  [ -n "$GLR_PID" ] && kill "$GLR_PID" 2>/dev/null && wait "$GLR_PID" 2>/dev/null || true
  [ -n "$NGX_PID" ] && kill -QUIT "$NGX_PID" 2>/dev/null && wait "$NGX_PID" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

CLK_TCK=$(getconf CLK_TCK)
# cpu_ticks PID... -> utime+stime summed over the processes
cpu_ticks() {
  local t=0 pid f
  for pid in "$@"; do
    # fields after "(comm) ": state is field 3; utime 14, stime 15
    f=$(sed 's/^.*) //' "/proc/$pid/stat")
    set -- $f
    t=$((t + ${12} + ${13}))
  done
  echo "$t"
}


# --- goluarun --------------------------------------------------------------
: > "$TMP/glr.out"
"${PIN_SERVER[@]}" "$GOLUARUN" -p 1 "$ROOT/scripts/http_server.lua" 127.0.0.1:0 \
  > "$TMP/glr.out" 2> "$TMP/glr.err" &
GLR_PID=$!
for _ in $(seq 100); do
  GLR_ADDR=$(sed -n 's/^listening on //p' "$TMP/glr.out" || true)
  [ -n "$GLR_ADDR" ] && break
  sleep 0.05
done
[ -n "${GLR_ADDR:-}" ] || { echo "http.sh: http_server.lua did not start" >&2; cat "$TMP/glr.err" >&2; exit 1; }
GLR_URL="http://$GLR_ADDR/"
wait_http http.sh "$GLR_URL"
GLR_PIDS=("$GLR_PID")

# --- nginx + lua-nginx-module ----------------------------------------------
# a free port: bind :0 with goluarun and release it
NGX_PORT=$(free_port "$GOLUARUN")
# the modules as Debian enables them (paths relative to the /usr/share/nginx prefix)
MODS=$(nginx_lua_modules)
mkdir -p "$TMP/ngx/logs"
cat > "$TMP/ngx/nginx.conf" <<EOF
$MODS
worker_processes 1;
daemon off;
master_process on;
pid $TMP/ngx/nginx.pid;
error_log $TMP/ngx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$NGX_PORT;
    location / { content_by_lua_block { ngx.print("Hello, World!\n") } }
  }
}
EOF
"${PIN_SERVER[@]}" nginx -p "$TMP/ngx" -c "$TMP/ngx/nginx.conf" -e "$TMP/ngx/logs/error.log" \
  > "$TMP/ngx.out" 2>&1 &
NGX_PID=$!
NGX_URL="http://127.0.0.1:$NGX_PORT/"
wait_http http.sh "$NGX_URL"
NGX_PIDS=("$NGX_PID" $(pgrep -P "$NGX_PID"))
[ "$(curl -s "$NGX_URL")" = "Hello, World!" ] || { echo "http.sh: nginx answers wrong" >&2; exit 1; }
[ "$(curl -s "$GLR_URL")" = "Hello, World!" ] || { echo "http.sh: http_server.lua answers wrong" >&2; exit 1; }

# --- runs ------------------------------------------------------------------
# run NAME URL PIDS... : one wrk run; appends "rps requests ticks" to $TMP/NAME
run() {
  local name=$1 url=$2; shift 2
  local t0 t1 out rps n
  t0=$(cpu_ticks "$@")
  out=$("${PIN_WRK[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" "$url")
  t1=$(cpu_ticks "$@")
  rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
  n=$(awk '/ requests in / { print $1 }' <<<"$out")
  if grep -q "Non-2xx\|Socket errors" <<<"$out"; then
    echo "http.sh: $name: wrk reported errors:" >&2; echo "$out" >&2
  fi
  echo "$rps $n $((t1 - t0))" >> "$TMP/$name"
  printf '  %-10s run: %10.0f req/s\n' "$name" "$rps" >&2
}

echo "warming up..." >&2
"${PIN_WRK[@]}" wrk -t1 -c"$CONNS" -d1s "$GLR_URL" > /dev/null
"${PIN_WRK[@]}" wrk -t1 -c"$CONNS" -d1s "$NGX_URL" > /dev/null
for ((i = 1; i <= RUNS; i++)); do
  run goluarun "$GLR_URL" "${GLR_PIDS[@]}"
  run nginx "$NGX_URL" "${NGX_PIDS[@]}"
done

# summary NAME -> "median_rps all_runs us_per_req"
summary() {
  sort -n -k1 "$TMP/$1" | awk -v tck="$CLK_TCK" '
    { r[NR] = $1; runs = runs sprintf(" %.0f", $1); n += $2; t += $3 }
    END {
      med = (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
      printf "%.0f|%s|%.2f\n", med, runs, (t / tck) * 1e6 / n
    }'
}
IFS='|' read -r G_MED G_RUNS G_CPU <<<"$(summary goluarun)"
IFS='|' read -r N_MED N_RUNS N_CPU <<<"$(summary nginx)"

echo
echo "HTTP GET / \"Hello, World!\\n\", keep-alive: wrk -t1 -c$CONNS -d${DURATION}s, median of $RUNS"
echo "server CPU $SERVER_CPU, wrk CPU $WRK_CPU ($(nproc) CPUs, $(uname -r))"
echo
printf '%-26s %12s %14s   %s\n' "server" "req/s" "CPU us/req" "runs (req/s)"
printf '%-26s %12s %14s   %s\n' "goluarun -p 1 http.lua" "$G_MED" "$G_CPU" "$G_RUNS"
printf '%-26s %12s %14s   %s\n' "nginx 1 worker + lua" "$N_MED" "$N_CPU" "$N_RUNS"
awk -v g="$G_MED" -v n="$N_MED" -v gc="$G_CPU" -v nc="$N_CPU" 'BEGIN {
  printf "%-26s %11.2fx %13.2fx\n", "ratio goluarun/nginx", g / n, gc / nc
  printf "\ntarget: >= 1.0x nginx req/s: %s\n", (g / n >= 1.0) ? "met" : "NOT met"
  printf "target: server CPU us/req <= nginx'"'"'s: %s\n", (gc <= nc) ? "met" : "NOT met"
}'
