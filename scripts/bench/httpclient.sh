#!/usr/bin/env bash
# httpclient.sh — HTTP client benchmark: goluarun.http's client through
# net.defaultpool (scripts/bench/httpclient.lua, goluarun -p 1) against Go's
# net/http client (scripts/bench/go_httpclient.go, GOMAXPROCS=1), both with
# $GOROUTINES goroutines doing GETs over keep-alive conns to the same nginx
# (1 worker) serving a static 100-byte file, interleaved.
#
#   scripts/bench/httpclient.sh   (env: DURATION=5 GOROUTINES=50 RUNS=3
#                                  CLIENT_CPU=0 SERVER_CPU=1 GOLUARUN=...)
#
# Each client is pinned to CPU $CLIENT_CPU, nginx to $SERVER_CPU. The table
# shows the median req/s of $RUNS runs and the client's CPU time per request
# (utime+stime of the whole process, from /usr/bin/time's figures, over all
# runs). Missing Debian packages (nginx, golang-go, curl) are installed
# with apt-get (lib.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

DURATION=${DURATION:-5}
GOROUTINES=${GOROUTINES:-50}
RUNS=${RUNS:-3}
CLIENT_CPU=${CLIENT_CPU:-0}
SERVER_CPU=${SERVER_CPU:-1}
GOLUARUN=${GOLUARUN:-$ROOT/build/goluarun}

source "$ROOT/scripts/bench/lib.sh"
need_pkgs httpclient.sh nginx golang-go curl util-linux time
[ -x "$GOLUARUN" ] || { echo "httpclient.sh: $GOLUARUN not built (scripts/setup.sh)" >&2; exit 1; }

if (($(nproc) < 2)); then
  echo "httpclient.sh: only $(nproc) CPU: no pinning (results are not comparable)" >&2
  PIN_CLIENT=(); PIN_SERVER=()
else
  PIN_CLIENT=(taskset -c "$CLIENT_CPU"); PIN_SERVER=(taskset -c "$SERVER_CPU")
fi

TMP=$(mktemp -d /tmp/httpclient-bench.XXXXXX)
chmod 755 "$TMP" # nginx's worker (www-data when started as root) reads the files
export LUA_PATH="$ROOT/lua/?.lua;;"
NGX_PID=""
cleanup() {
  [ -n "$NGX_PID" ] && kill -QUIT "$NGX_PID" 2>/dev/null && wait "$NGX_PID" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

# --- the Go client -----------------------------------------------------------
env GO111MODULE=off GOFLAGS= CGO_ENABLED=0 GOCACHE="$TMP/go-cache" GOPATH="$TMP/go-path" \
  go build -o "$TMP/go_httpclient" "$ROOT/scripts/bench/go_httpclient.go"

# --- nginx: a static 100-byte body ------------------------------------------
PORT=$(free_port "$GOLUARUN")
mkdir -p "$TMP/ngx/logs" "$TMP/ngx/www"
printf '%099d\n' 0 > "$TMP/ngx/www/body.txt"
cat > "$TMP/ngx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $TMP/ngx/nginx.pid;
error_log $TMP/ngx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $TMP/ngx/tmp;
  server { listen 127.0.0.1:$PORT; root $TMP/ngx/www; }
}
EOF
"${PIN_SERVER[@]}" nginx -p "$TMP/ngx" -c "$TMP/ngx/nginx.conf" -e "$TMP/ngx/logs/error.log" \
  > "$TMP/ngx.out" 2>&1 &
NGX_PID=$!
URL="http://127.0.0.1:$PORT/body.txt"
wait_http httpclient.sh "$URL"
[ "$(curl -s "$URL")" = "$(printf '%099d' 0)" ] || { echo "httpclient.sh: nginx answers wrong" >&2; exit 1; }

# run NAME CMD...: one run; appends "rps requests cpu_seconds" to $TMP/NAME
run() {
  local name=$1 out rps n cpu
  shift
  out=$( { /usr/bin/time -f "cpu %U %S" "${PIN_CLIENT[@]}" "$@" "$URL" "$GOROUTINES" "$DURATION"; } 2>&1 )
  rps=$(awk '/^requests / { print $6 }' <<<"$out")
  n=$(awk '/^requests / { print $2 }' <<<"$out")
  cpu=$(awk '/^cpu / { print $2 + $3 }' <<<"$out")
  if ! grep -q "errors 0$" <<<"$out"; then echo "httpclient.sh: $name: errors:" >&2; echo "$out" >&2; fi
  echo "$rps $n $cpu" >> "$TMP/$name"
  printf '  %-10s run: %10.0f req/s\n' "$name" "$rps" >&2
}

echo "warming up..." >&2
"${PIN_CLIENT[@]}" "$GOLUARUN" -p 1 "$ROOT/scripts/bench/httpclient.lua" "$URL" "$GOROUTINES" 1 > /dev/null
GOMAXPROCS=1 "${PIN_CLIENT[@]}" "$TMP/go_httpclient" "$URL" "$GOROUTINES" 1 > /dev/null
for ((i = 1; i <= RUNS; i++)); do
  run goluarun "$GOLUARUN" -p 1 "$ROOT/scripts/bench/httpclient.lua"
  GOMAXPROCS=1 run go "$TMP/go_httpclient"
done

summary() {
  sort -n -k1 "$TMP/$1" | awk '
    { r[NR] = $1; runs = runs sprintf(" %.0f", $1); n += $2; t += $3 }
    END {
      med = (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
      printf "%.0f|%s|%.2f\n", med, runs, t * 1e6 / n
    }'
}
IFS='|' read -r G_MED G_RUNS G_CPU <<<"$(summary goluarun)"
IFS='|' read -r O_MED O_RUNS O_CPU <<<"$(summary go)"

echo
echo "HTTP client, GET of a static 100-byte body from nginx (1 worker), keep-alive:"
echo "$GOROUTINES goroutines, ${DURATION}s per run, median of $RUNS"
echo "client CPU $CLIENT_CPU, nginx CPU $SERVER_CPU ($(nproc) CPUs, $(uname -r)), $(go version | awk '{print $3}')"
echo
printf '%-34s %12s %14s   %s\n' "client" "req/s" "CPU us/req" "runs (req/s)"
printf '%-34s %12s %14s   %s\n' "goluarun -p 1 http.get (pool)" "$G_MED" "$G_CPU" "$G_RUNS"
printf '%-34s %12s %14s   %s\n' "Go net/http GOMAXPROCS=1" "$O_MED" "$O_CPU" "$O_RUNS"
awk -v g="$G_MED" -v o="$O_MED" -v gc="$G_CPU" -v oc="$O_CPU" 'BEGIN {
  printf "%-34s %11.2fx %13.2fx\n", "ratio goluarun/Go", g / o, gc / oc
  printf "\ntarget: >= 1.0x Go req/s: %s\n", (g / o >= 1.0) ? "met" : "NOT met"
}'
