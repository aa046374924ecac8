#!/usr/bin/env bash
# http_scale.sh — does one script use every core? scripts/http_hello.lua
# (served from every P through net.serve(addr, "http_hello")) with -p 1 and
# -p 2, both accept designs (one acceptor whose connections idle Ps steal,
# and accepting on every P with SO_REUSEPORT), against nginx +
# lua-nginx-module with 1 and 2 workers. Same client, same cores: every
# server may use CPUs $CPUS, and so does wrk -t2 (on a 2-CPU box the client
# takes a large share, which caps what any server can show).
#
#   scripts/bench/http_scale.sh   (env: DURATION=5 CONNS=100 RUNS=3 CPUS=0,1
#                                  GOLUARUN=build/goluarun CLOSE=1)
#
# Prints median req/s of $RUNS alternating runs per server, ratios, and for
# goluarun how the connections spread over the Ps (GET /debug/procs).
# CLOSE=1 adds a run set with "Connection: close" (one connection per
# request: accept-bound), where the accept design matters most.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DURATION=${DURATION:-5}
CONNS=${CONNS:-100}
RUNS=${RUNS:-3}
CPUS=${CPUS:-0,1}
CLOSE=${CLOSE:-1}
GOLUARUN=${GOLUARUN:-$ROOT/build/goluarun}

source "$ROOT/scripts/bench/lib.sh"
need_pkgs http_scale.sh wrk nginx libnginx-mod-http-lua curl util-linux
[ -x "$GOLUARUN" ] || { echo "http_scale.sh: $GOLUARUN not built" >&2; exit 1; }

PIN=(taskset -c "$CPUS")
TMP=$(mktemp -d /tmp/http-scale.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

declare -A URL
start_glr() { # NAME PROCS MODE
  local port; port=$(free_port "$GOLUARUN")
  "${PIN[@]}" "$GOLUARUN" -p "$2" "$ROOT/scripts/http_hello.lua" "127.0.0.1:$port" "$3" \
    > "$TMP/$1.out" 2> "$TMP/$1.err" &
  PIDS+=($!)
  URL[$1]="http://127.0.0.1:$port/"
  wait_http http_scale.sh "${URL[$1]}"
}

MODS=$(nginx_lua_modules)
start_nginx() { # NAME WORKERS
  local port dir=$TMP/$1; port=$(free_port "$GOLUARUN")
  mkdir -p "$dir/logs"
  cat > "$dir/nginx.conf" <<NGX
$MODS
worker_processes $2;
daemon off;
master_process on;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port reuseport;
    location / { content_by_lua_block { ngx.print("Hello, World!\n") } }
  }
}
NGX
  "${PIN[@]}" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" > "$dir/out" 2>&1 &
  PIDS+=($!)
  URL[$1]="http://127.0.0.1:$port/"
  wait_http http_scale.sh "${URL[$1]}"
}

SERVERS=(glr_p1 glr_p2_one glr_p2_every nginx_1 nginx_2)
start_glr glr_p1 1 every
start_glr glr_p2_one 2 one
start_glr glr_p2_every 2 every
start_nginx nginx_1 1
start_nginx nginx_2 2
for s in "${SERVERS[@]}"; do
  [ "$(curl -s "${URL[$s]}")" = "Hello, World!" ] || { echo "http_scale.sh: $s answers wrong" >&2; exit 1; }
done

procs() { curl -s "${URL[$1]}debug/procs" | tr '\n' ' '; }

run() { # SET NAME [wrk args...]
  local set=$1 name=$2; shift 2
  local out rps
  out=$("${PIN[@]}" wrk -t2 -c"$CONNS" -d"${DURATION}s" "$@" "${URL[$name]}")
  rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
  grep -q "Non-2xx" <<<"$out" && { echo "http_scale.sh: $name: non-2xx answers" >&2; echo "$out" >&2; }
  echo "$rps" >> "$TMP/$set.$name"
  printf '  %-8s %-16s %10.0f req/s\n' "$set" "$name" "$rps" >&2
}

median() { sort -n "$1" | awk '{ r[NR] = $1 } END { print (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2 }'; }

SETS=(keepalive)
((CLOSE)) && SETS+=(close)
echo "warming up..." >&2
for s in "${SERVERS[@]}"; do "${PIN[@]}" wrk -t2 -c"$CONNS" -d1s "${URL[$s]}" > /dev/null; done
declare -A SPREAD0 SPREAD1
for set in "${SETS[@]}"; do
  args=()
  [ "$set" = close ] && args=(-H "Connection: close")
  for s in glr_p2_one glr_p2_every; do SPREAD0[$set.$s]=$(procs "$s"); done
  for ((i = 1; i <= RUNS; i++)); do
    for s in "${SERVERS[@]}"; do run "$set" "$s" "${args[@]}"; done
  done
  for s in glr_p2_one glr_p2_every; do SPREAD1[$set.$s]=$(procs "$s"); done
done

echo
echo "HTTP GET / \"Hello, World!\\n\": wrk -t2 -c$CONNS -d${DURATION}s, median of $RUNS; servers and wrk on CPUs $CPUS ($(nproc) CPUs)"
for set in "${SETS[@]}"; do
  echo
  echo "== $set =="
  base=$(median "$TMP/$set.glr_p1")
  n1=$(median "$TMP/$set.nginx_1")
  n2=$(median "$TMP/$set.nginx_2")
  printf '%-36s %10s %10s %10s\n' server "req/s" "vs -p 1" "vs nginx"
  for s in "${SERVERS[@]}"; do
    m=$(median "$TMP/$set.$s")
    case $s in
      glr_p1) label="goluarun -p 1"; ref=$n1 ;;
      glr_p2_one) label="goluarun -p 2 (accept = one)"; ref=$n2 ;;
      glr_p2_every) label="goluarun -p 2 (accept = every)"; ref=$n2 ;;
      nginx_1) label="nginx 1 worker + lua"; ref=$n1 ;;
      nginx_2) label="nginx 2 workers + lua"; ref=$n2 ;;
    esac
    awk -v l="$label" -v m="$m" -v b="$base" -v r="$ref" 'BEGIN { printf "%-36s %10.0f %9.2fx %9.2fx\n", l, m, m / b, m / r }'
  done
  for s in glr_p2_one glr_p2_every; do
    echo "  connections per P, $s: before [${SPREAD0[$set.$s]}] after [${SPREAD1[$set.$s]}]"
  done
done
echo
echo "(vs nginx: goluarun -p N against nginx with N workers)"
