#!/usr/bin/env bash
# gateway.sh — reverse-proxy benchmark: scripts/gateway.lua (goluarun -p 1)
# against nginx proxy_pass with an upstream keepalive pool (1 worker), and
# against the same nginx with lua-nginx-module doing a gateway's per-request
# Lua (access_by_lua: the route check and the X-Forwarded-* fields, as an
# OpenResty gateway does), all in front of the same upstream: nginx (1
# worker) serving a static 100-byte file. wrk -c$CONNS through each proxy,
# interleaved.
#
#   scripts/bench/gateway.sh     (env: DURATION=5 CONNS=50 RUNS=3
#                                 SERVER_CPU=0 WRK_CPU=1 GOLUARUN=...)
#
# The proxy under test is pinned to CPU $SERVER_CPU; wrk and the upstream
# share CPU $WRK_CPU. The table shows the median req/s of $RUNS runs and the
# proxy's CPU time (utime+stime from /proc/PID/stat; nginx: master +
# worker) per request over all runs, then split into user and kernel time. Missing Debian packages (wrk, nginx,
# curl) are installed with apt-get (lib.sh).
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
need_pkgs gateway.sh wrk nginx libnginx-mod-http-lua curl util-linux
[ -x "$GOLUARUN" ] || { echo "gateway.sh: $GOLUARUN not built (scripts/setup.sh)" >&2; exit 1; }

if (($(nproc) < 2)); then
  echo "gateway.sh: only $(nproc) CPU: no pinning (results are not comparable)" >&2
  PIN_SERVER=(); PIN_WRK=()
else
  PIN_SERVER=(taskset -c "$SERVER_CPU"); PIN_WRK=(taskset -c "$WRK_CPU")
fi

TMP=$(mktemp -d /tmp/gateway-bench.XXXXXX)
chmod 755 "$TMP" # nginx's worker (www-data when started as root) reads the files
export LUA_PATH="$ROOT/lua/?.lua;;" # this tree's library first
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

CLK_TCK=$(getconf CLK_TCK)
# cpu_ticks PID... -> "user kernel" clock ticks summed over the processes
cpu_ticks() {
  local u=0 k=0 pid f
  for pid in "$@"; do
    f=$(sed 's/^.*) //' "/proc/$pid/stat")
    set -- $f
    u=$((u + ${12}))
    k=$((k + ${13}))
  done
  echo "$u $k"
}

# start_nginx NAME MODULES CONF_BODY CPU...: one worker, in the foreground;
# prints its PID (called in $(...), a subshell: the caller adds it to PIDS)
start_nginx() {
  local name=$1 mods=$2 body=$3; shift 3
  mkdir -p "$TMP/$name/logs" "$TMP/$name/www"
  cat > "$TMP/$name/nginx.conf" <<EOF
$mods
worker_processes 1;
daemon off;
master_process on;
pid $TMP/$name/nginx.pid;
error_log $TMP/$name/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $TMP/$name/tmp;
  proxy_temp_path $TMP/$name/ptmp;
  $body
}
EOF
  "$@" nginx -p "$TMP/$name" -c "$TMP/$name/nginx.conf" -e "$TMP/$name/logs/error.log" \
    > "$TMP/$name.out" 2>&1 &
  echo $!
}

# --- upstream: nginx, a static 100-byte body ------------------------------
UP_PORT=$(free_port "$GOLUARUN")
UP_PID=$(start_nginx up "" "server { listen 127.0.0.1:$UP_PORT; root $TMP/up/www; }" "${PIN_WRK[@]}")
PIDS+=("$UP_PID")
printf '%099d\n' 0 > "$TMP/up/www/body.txt"
wait_http gateway.sh "http://127.0.0.1:$UP_PORT/body.txt"

# --- nginx proxy_pass with an upstream keepalive pool ----------------------
NP_PORT=$(free_port "$GOLUARUN")
NGX_PID=$(start_nginx proxy "" "upstream up { server 127.0.0.1:$UP_PORT; keepalive 64; }
  server { listen 127.0.0.1:$NP_PORT; location / { proxy_pass http://up;
    proxy_http_version 1.1; proxy_set_header Connection \"\";
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; } }" "${PIN_SERVER[@]}")
PIDS+=("$NGX_PID")
NGX_URL="http://127.0.0.1:$NP_PORT/body.txt"
wait_http gateway.sh "$NGX_URL"
NGX_PIDS=("$NGX_PID" $(pgrep -P "$NGX_PID"))

# --- the same with a gateway's per-request Lua (lua-nginx-module) ----------
OR_PORT=$(free_port "$GOLUARUN")
OR_PID=$(start_nginx openresty "$(nginx_lua_modules)" "upstream up { server 127.0.0.1:$UP_PORT; keepalive 64; }
  server { listen 127.0.0.1:$OR_PORT; location / {
    access_by_lua_block {
      local uri = ngx.var.uri
      if uri:sub(1, 1) ~= '/' then return ngx.exit(404) end
      ngx.req.set_header('X-Forwarded-For', ngx.var.remote_addr)
      ngx.req.set_header('X-Forwarded-Proto', ngx.var.scheme)
      ngx.req.set_header('X-Forwarded-Host', ngx.var.host)
    }
    proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }" "${PIN_SERVER[@]}")
PIDS+=("$OR_PID")
OR_URL="http://127.0.0.1:$OR_PORT/body.txt"
wait_http gateway.sh "$OR_URL"
OR_PIDS=("$OR_PID" $(pgrep -P "$OR_PID"))

# --- goluarun scripts/gateway.lua -------------------------------------------
cat > "$TMP/gw.lua" <<EOF
return { routes = { { prefix = "/", upstream = "up" } },
  upstreams = { up = { "127.0.0.1:$UP_PORT" } }, pool = { max_idle = 64 } }
EOF
"${PIN_SERVER[@]}" "$GOLUARUN" -p 1 "$ROOT/scripts/gateway.lua" "$TMP/gw.lua" 127.0.0.1:0 \
  > "$TMP/glr.out" 2> "$TMP/glr.err" &
GLR_PID=$!
PIDS+=($GLR_PID)
for _ in $(seq 100); do
  GLR_ADDR=$(sed -n 's/^listening on //p' "$TMP/glr.out" || true)
  [ -n "$GLR_ADDR" ] && break
  sleep 0.05
done
[ -n "${GLR_ADDR:-}" ] || { echo "gateway.sh: gateway.lua did not start" >&2; cat "$TMP/glr.err" >&2; exit 1; }
GLR_URL="http://$GLR_ADDR/body.txt"
wait_http gateway.sh "$GLR_URL"
BODY=$(printf '%099d' 0)
[ "$(curl -s "$GLR_URL")" = "$BODY" ] || { echo "gateway.sh: gateway.lua answers wrong" >&2; exit 1; }
[ "$(curl -s "$NGX_URL")" = "$BODY" ] || { echo "gateway.sh: nginx answers wrong" >&2; exit 1; }
[ "$(curl -s "$OR_URL")" = "$BODY" ] || { echo "gateway.sh: nginx + lua answers wrong" >&2; exit 1; }

run() {
  local name=$1 url=$2; shift 2
  local t0 t1 out rps n u0 k0 u1 k1
  read -r u0 k0 <<<"$(cpu_ticks "$@")"
  out=$("${PIN_WRK[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" "$url")
  read -r u1 k1 <<<"$(cpu_ticks "$@")"
  rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
  n=$(awk '/ requests in / { print $1 }' <<<"$out")
  if grep -q "Non-2xx\|Socket errors" <<<"$out"; then
    echo "gateway.sh: $name: wrk reported errors:" >&2; echo "$out" >&2
  fi
  echo "$rps $n $((u1 - u0)) $((k1 - k0))" >> "$TMP/res.$name"
  printf '  %-10s run: %10.0f req/s\n' "$name" "$rps" >&2
}

echo "warming up..." >&2
"${PIN_WRK[@]}" wrk -t1 -c"$CONNS" -d1s "$GLR_URL" > /dev/null
"${PIN_WRK[@]}" wrk -t1 -c"$CONNS" -d1s "$NGX_URL" > /dev/null
"${PIN_WRK[@]}" wrk -t1 -c"$CONNS" -d1s "$OR_URL" > /dev/null
for ((i = 1; i <= RUNS; i++)); do
  run goluarun "$GLR_URL" "$GLR_PID"
  run nginx "$NGX_URL" "${NGX_PIDS[@]}"
  run openresty "$OR_URL" "${OR_PIDS[@]}"
done

# summary NAME -> median|runs|CPU us/req|user us/req|kernel us/req
summary() {
  sort -n -k1 "$TMP/res.$1" | awk -v tck="$CLK_TCK" '
    { r[NR] = $1; runs = runs sprintf(" %.0f", $1); n += $2; u += $3; k += $4 }
    END {
      med = (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
      us = 1e6 / tck / n
      printf "%.0f|%s|%.2f|%.2f|%.2f\n", med, runs, (u + k) * us, u * us, k * us
    }'
}
IFS='|' read -r G_MED G_RUNS G_CPU G_U G_K <<<"$(summary goluarun)"
IFS='|' read -r N_MED N_RUNS N_CPU N_U N_K <<<"$(summary nginx)"
IFS='|' read -r O_MED O_RUNS O_CPU O_U O_K <<<"$(summary openresty)"

echo
echo "reverse proxy, GET of a static 100-byte body from one nginx upstream (1 worker),"
echo "keep-alive both sides: wrk -t1 -c$CONNS -d${DURATION}s, median of $RUNS"
echo "proxy CPU $SERVER_CPU, wrk + upstream CPU $WRK_CPU ($(nproc) CPUs, $(uname -r))"
echo "CPU us/req = user + kernel (/proc/PID/stat)"
echo
row() { printf '%-32s %10s %11s %8s %8s   %s\n' "$@"; }
row "proxy" "req/s" "CPU us/req" "user" "kernel" "runs (req/s)"
row "goluarun -p 1 gateway.lua" "$G_MED" "$G_CPU" "$G_U" "$G_K" "$G_RUNS"
row "nginx proxy_pass keepalive" "$N_MED" "$N_CPU" "$N_U" "$N_K" "$N_RUNS"
row "nginx + access_by_lua" "$O_MED" "$O_CPU" "$O_U" "$O_K" "$O_RUNS"
awk -v g="$G_MED" -v n="$N_MED" -v o="$O_MED" -v gc="$G_CPU" -v nc="$N_CPU" -v oc="$O_CPU" 'BEGIN {
  printf "%-32s %9.2fx %10.2fx\n", "ratio goluarun/nginx", g / n, gc / nc
  printf "%-32s %9.2fx %10.2fx\n", "ratio goluarun/nginx + lua", g / o, gc / oc
  printf "\ntarget: >= 0.90x nginx req/s: %s\n", (g / n >= 0.9) ? "met" : "NOT met"
}'
# each run's goluarun/nginx against the nginx run right after it: the
# box's speed drifts between minutes, a pair shares one (informational)
paste -d' ' "$TMP/res.goluarun" "$TMP/res.nginx" | awk '
  { r[NR] = $1 / $5; s = s sprintf(" %.2f", $1 / $5) }
  END {
    n = NR
    for (i = 2; i <= n; i++) { v = r[i]; for (j = i - 1; j >= 1 && r[j] > v; j--) r[j + 1] = r[j]; r[j + 1] = v }
    med = (n % 2) ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2
    printf "per-run goluarun/nginx (run order):%s; median %.2fx\n", s, med
  }'
