#!/usr/bin/env bash
# tls.sh — TLS benchmark: goluarun against nginx (1 worker) and Go's
# crypto/tls, all serving the same certificate, TLS 1.3, one cipher suite.
#
#   scripts/bench/tls.sh     (env: KEYS="ec rsa" SECTIONS=hello,full,resume,idle,echo
#                             ONLY=goluarun,nginx,go DURATION=5 RUNS=3 CONNS=50
#                             IDLE_CONNS=5000 SERVER_CPU=0 CLIENT_CPU=1
#                             BUILD=build GOLUARUN=$BUILD/goluarun)
#
# For each certificate kind (ECDSA P-256, RSA 2048; made here by openssl,
# self-signed for localhost and 127.0.0.1, removed at exit):
#   hello   HTTPS keep-alive "Hello, World!\n": goluarun -p 1
#           scripts/http_server.lua --tls (goluarun.http, as http.sh) vs
#           nginx `return 200`, wrk -t1 -c$CONNS -d$DURATION over https;
#           req/s and server CPU us/request
#   full    full handshakes/s: tls_hs -m full -c $CONNS (new connection,
#           handshake, one GET, reset; no session offered), same two servers
#   resume  resumed handshakes/s: tls_hs -m resume (each connection offers
#           the ticket its slot got last; the resumed count is checked)
#   idle    resident memory per idle TLS connection: a fresh server
#           (goluarun: scripts/http_hello.lua --tls, the minimal server), RSS
#           before and 1 s into holding $IDLE_CONNS connections that each
#           did a handshake and one GET (tls_hs -m idle)
#   echo    64-byte TLS echo round trips/s: goluarun -p 1 scripts/echo.lua
#           --tls vs go_tls_echo.go (GOMAXPROCS=1), tls_hs -m echo -c $CONNS
# Servers run pinned to CPU $SERVER_CPU, clients to CPU $CLIENT_CPU. Runs
# alternate between the servers; tables show medians of $RUNS runs and the
# server CPU (utime+stime of every process of the server, from /proc) per
# operation over all runs. Every process is started here and stopped by
# PID; every client run is bounded by `timeout`. Missing Debian packages
# (wrk nginx golang-go openssl libssl-dev curl) are installed by lib.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

KEYS=${KEYS:-ec rsa}
SECTIONS=${SECTIONS:-hello,full,resume,idle,echo}
ONLY=${ONLY:-goluarun,nginx,go}
DURATION=${DURATION:-5}
RUNS=${RUNS:-3}
CONNS=${CONNS:-50}
IDLE_CONNS=${IDLE_CONNS:-5000}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
GOLUARUN=${GOLUARUN:-$BUILD/goluarun}
B="$BUILD/bench"
SUITE=TLS_AES_256_GCM_SHA384   # what wrk (OpenSSL's default order) gets too

die() { echo "tls.sh: $*" >&2; exit 1; }
section() { [[ ",$SECTIONS," == *",$1,"* ]]; }
selected() { [[ ",$ONLY," == *",$1,"* ]]; }

source "$ROOT/scripts/bench/lib.sh"
need_pkgs tls.sh wrk nginx golang-go openssl libssl-dev curl util-linux build-essential
if selected goluarun; then
  [ -x "$GOLUARUN" ] || die "$GOLUARUN not built (BUILD=build scripts/setup.sh), or ONLY=nginx,go"
fi
NCPU=$(nproc)
((NCPU >= 2)) || echo "tls.sh: only $NCPU CPU: server and client share it (not comparable)" >&2
PIN_S=(taskset -c "$SERVER_CPU"); PIN_C=(taskset -c "$CLIENT_CPU")
((NCPU >= 2)) || { PIN_S=(); PIN_C=(); }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
((IDLE_CONNS + 100 <= $(ulimit -n))) ||
  die "IDLE_CONNS=$IDLE_CONNS needs more fds than ulimit -n ($(ulimit -n))"

TMP=$(mktemp -d /tmp/tls-bench.XXXXXX)
PIDS=()
forget_pid() {
  local keep=() p
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]+"${keep[@]}"}")
}
stop_pid() {            # stop_pid PID: TERM, KILL after 5 s, reap
  local pid=$1 i
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  forget_pid "$pid"
}
cleanup() {
  local p
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do stop_pid "$p"; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo "tls.sh: interrupted" >&2; exit 130' INT TERM

# ---- tools -------------------------------------------------------------------
mkdir -p "$B"
cc -std=c11 -O2 -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes -Wundef \
  -o "$B/tls_hs" "$ROOT/scripts/bench/tls_hs.c" -lssl -lcrypto || die "tls_hs did not build"
if selected go; then
  env GO111MODULE=off GOFLAGS= CGO_ENABLED=0 GOCACHE="$B/go-cache" GOPATH="$B/go-path" \
    go build -o "$B/go_tls_echo" "$ROOT/scripts/bench/go_tls_echo.go" || die "go_tls_echo did not build"
fi

CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() {           # cpu_ticks PID... -> utime+stime summed
  local t=0 pid stat rest
  for pid in "$@"; do
    stat=$(<"/proc/$pid/stat"); rest=${stat##*) }
    # shellcheck disable=SC2206
    local f=($rest)
    t=$((t + f[11] + f[12]))
  done
  echo "$t"
}
rss_kib() {             # rss_kib PID... -> VmRSS summed
  local t=0 pid
  for pid in "$@"; do t=$((t + $(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status"))); done
  echo "$t"
}
field() {               # field NAME LINE
  local kv
  for kv in $2; do [ "${kv%%=*}" = "$1" ] && { echo "${kv#*=}"; return 0; }; done
  echo NA
}

# ---- servers -------------------------------------------------------------------
# each start_* sets SPIDS (the server's processes, first = the one started)
# and SPORT, and returns once the server answers over TLS

# wait_line FILE PID: the port of a "listening on ADDR" line (10 s)
wait_line() {
  local i addr
  for ((i = 0; i < 200; i++)); do
    addr=$(sed -n 's/^listening on //p' "$1" | head -n 1)
    [ -n "$addr" ] && { echo "${addr##*:}"; return 0; }
    kill -0 "$2" 2>/dev/null || break
    sleep 0.05
  done
  return 1
}

start_line_server() {   # start_line_server NAME CMD...: a server printing "listening on"
  local name=$1; shift
  : > "$TMP/$name.out"
  "${PIN_S[@]}" "$@" > "$TMP/$name.out" 2> "$TMP/$name.err" &
  local pid=$!
  PIDS+=("$pid"); SPIDS=("$pid")
  SPORT=$(wait_line "$TMP/$name.out" "$pid") || {
    cat "$TMP/$name.err" >&2; stop_pid "$pid"; die "$name did not start: $*"; }
}

# start_glr_hello [SCRIPT]: goluarun -p 1 SCRIPT --tls (default
# http_server.lua: goluarun.http, the server http.sh measures)
start_glr_hello() {
  local script=${1:-http_server.lua}
  start_line_server glr_hello "$GOLUARUN" -p 1 "$ROOT/scripts/$script" 127.0.0.1:0 \
    --tls "$CERT" "$KEYF"
  [ "$(curl -s --max-time 5 --cacert "$CERT" "https://127.0.0.1:$SPORT/")" = "Hello, World!" ] || {
    cat "$TMP/glr_hello.err" >&2
    die "goluarun $script --tls does not answer HTTPS (is the TLS core in this build?); ONLY=nginx,go runs without it"; }
}

start_glr_echo() {
  start_line_server glr_echo "$GOLUARUN" -p 1 "$ROOT/scripts/echo.lua" 127.0.0.1:0 \
    --tls "$CERT" "$KEYF"
}

start_go_echo() {
  local port
  port=$(free_port_any)
  start_line_server go_echo env GOMAXPROCS=1 "$B/go_tls_echo" "$port" "$CERT" "$KEYF"
}

start_nginx() {
  local port dir="$TMP/ngx"
  port=$(free_port_any)
  rm -rf "$dir"; mkdir -p "$dir/logs"
  cat > "$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process on;
worker_rlimit_nofile $(ulimit -n);
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections $((IDLE_CONNS + 1000)); }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $CERT;
    ssl_certificate_key $KEYF;
    ssl_protocols TLSv1.3;
    location / { default_type text/plain; return 200 "Hello, World!\n"; }
  }
}
EOF
  "${PIN_S[@]}" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" \
    > "$TMP/ngx.out" 2>&1 &
  local pid=$! i
  PIDS+=("$pid")
  for ((i = 0; i < 200; i++)); do
    curl -s -o /dev/null --max-time 1 --cacert "$CERT" "https://127.0.0.1:$port/" && break
    kill -0 "$pid" 2>/dev/null || { cat "$TMP/ngx.out" "$dir/logs/error.log" >&2; die "nginx exited"; }
    sleep 0.05
  done
  [ "$(curl -s --max-time 5 --cacert "$CERT" "https://127.0.0.1:$port/")" = "Hello, World!" ] ||
    die "nginx does not answer"
  SPIDS=("$pid" $(pgrep -P "$pid")); SPORT=$port
}

# ---- measurements -------------------------------------------------------------
# each appends "value ops ticks" to $TMP/res.KIND.SECTION.SERVER

LIMIT=$((${DURATION%.*} + 60))

run_wrk() {             # run_wrk KIND SERVER PORT PIDS...
  local kind=$1 srv=$2 port=$3; shift 3
  local t0 t1 out
  t0=$(cpu_ticks "$@")
  out=$("${PIN_C[@]}" timeout "$LIMIT" wrk -t1 -c"$CONNS" -d"${DURATION}s" "https://127.0.0.1:$port/")
  t1=$(cpu_ticks "$@")
  grep -q "Non-2xx\|Socket errors" <<<"$out" && { echo "tls.sh: $srv: wrk errors:" >&2; echo "$out" >&2; }
  echo "$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out") $(awk '/ requests in / { print $1 }' <<<"$out") $((t1 - t0))" \
    >> "$TMP/res.$kind.hello.$srv"
  printf '  %-4s hello  %-9s %10.0f req/s\n' "$kind" "$srv" "$(tail -n1 "$TMP/res.$kind.hello.$srv" | cut -d' ' -f1)" >&2
}

run_hs() {              # run_hs KIND SECTION(full|resume|echo) SERVER PORT PIDS...
  local kind=$1 sec=$2 srv=$3 port=$4; shift 4
  local t0 t1 out line
  t0=$(cpu_ticks "$@")
  out=$("${PIN_C[@]}" timeout "$LIMIT" "$B/tls_hs" -p "$port" -m "$sec" -c "$CONNS" -s 64 \
        -d "$DURATION" -w 1 -C "$SUITE" 2>>"$TMP/client.log") || true
  t1=$(cpu_ticks "$@")
  line=$(grep '^RESULT' <<<"$out" || echo "RESULT rate=0 ops=0")
  echo "$line" >> "$TMP/client.log"
  if [ "$(field errors "$line")" != 0 ] || [ "$(field bad "$line")" != 0 ]; then
    echo "tls.sh: $srv $sec: $line" >&2
  fi
  if [ "$sec" = resume ] && [ "$(field resumed "$line")" != "$(field ops "$line")" ]; then
    echo "tls.sh: $srv: only $(field resumed "$line") of $(field ops "$line") handshakes resumed" >&2
  fi
  echo "$(field rate "$line") $(field ops "$line") $((t1 - t0))" >> "$TMP/res.$kind.$sec.$srv"
  printf '  %-4s %-6s %-9s %10s /s  (client %s cores, %s)\n' "$kind" "$sec" "$srv" \
    "$(field rate "$line")" "$(field cli_cpu "$line")" "$(field cipher "$line")" >&2
}

# idle KIND SERVER: a fresh server, $IDLE_CONNS held connections; appends
# "KiB/conn open ok"
run_idle() {
  local kind=$1 srv=$2 before held out line cpid i
  case $srv in goluarun) start_glr_hello http_hello.lua ;; nginx) start_nginx ;; esac
  sleep 0.5
  before=$(rss_kib "${SPIDS[@]}")
  "${PIN_C[@]}" timeout 180 "$B/tls_hs" -p "$SPORT" -m idle -c "$IDLE_CONNS" -d 3 -C "$SUITE" \
    > "$TMP/idle.out" 2>>"$TMP/client.log" &
  cpid=$!
  PIDS+=("$cpid")
  for ((i = 0; i < 1200; i++)); do
    grep -q '^READY' "$TMP/idle.out" && break
    kill -0 "$cpid" 2>/dev/null || break
    sleep 0.05
  done
  sleep 1   # 1 s into the 3 s hold, as run.sh's idle section
  held=$(rss_kib "${SPIDS[@]}")
  wait "$cpid" || true
  forget_pid "$cpid"
  line=$(grep '^RESULT' "$TMP/idle.out" || echo "RESULT open=0 ok=0")
  echo "$line" >> "$TMP/client.log"
  stop_pid "${SPIDS[0]}"
  awk -v b="$before" -v h="$held" -v o="$(field open "$line")" -v k="$(field ok "$line")" \
    'BEGIN { printf "%.2f %d %d\n", (o > 0) ? (h - b) / o : 0, o, k }' >> "$TMP/res.$kind.idle.$srv"
  printf '  %-4s idle   %-9s %s KiB/conn (open ok: %s %s)\n' "$kind" "$srv" \
    "$(tail -n1 "$TMP/res.$kind.idle.$srv" | cut -d' ' -f1)" "$(field open "$line")" "$(field ok "$line")" >&2
}

# summary FILE -> "median us_per_op runs" (us_per_op: all ticks / all ops)
summary() {
  [ -s "$1" ] || { echo "NA NA -"; return; }
  sort -n -k1 "$1" | awk -v tck="$CLK_TCK" '
    { r[NR] = $1; runs = runs (runs == "" ? "" : ",") sprintf("%.0f", $1); n += $2; t += $3 }
    END {
      med = (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
      printf "%.0f %s %s\n", med, (n > 0) ? sprintf("%.1f", (t / tck) * 1e6 / n) : "NA", runs
    }'
}

# ---- the runs ------------------------------------------------------------------
make_cert() {           # make_cert KIND: sets CERT, KEYF
  CERT="$TMP/$1.pem"; KEYF="$TMP/$1.key"
  local alg=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
  [ "$1" = rsa ] && alg=(-newkey rsa:2048)
  openssl req -x509 "${alg[@]}" -nodes -keyout "$KEYF" -out "$CERT" -days 30 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null ||
    die "openssl req failed"
}

RESULTS="$B/tls-results/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$RESULTS"
{
  echo "date: $(date -Is)"; echo "kernel: $(uname -srm)"
  echo "cpus: $NCPU ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo))"
  echo "openssl: $(openssl version)"; echo "nginx: $(nginx -v 2>&1)"
  selected go && echo "go: $(go version)"
  selected goluarun && echo "goluarun: $("$GOLUARUN" -v 2>&1 | head -n1 || true)"
} > "$RESULTS/versions.txt"

for kind in $KEYS; do
  make_cert "$kind"
  echo "== $kind certificate" >&2
  if section hello || section full || section resume; then
    G_PIDS=(); N_PIDS=()
    if selected goluarun; then start_glr_hello; G_PIDS=("${SPIDS[@]}"); G_PORT=$SPORT; fi
    if selected nginx; then start_nginx; N_PIDS=("${SPIDS[@]}"); N_PORT=$SPORT; fi
    for sec in hello full resume; do
      section "$sec" || continue
      for ((i = 0; i < RUNS; i++)); do
        if [ "$sec" = hello ]; then
          ((i)) || { selected goluarun && "${PIN_C[@]}" timeout 30 wrk -t1 -c"$CONNS" -d1s "https://127.0.0.1:$G_PORT/" >/dev/null
                     selected nginx && "${PIN_C[@]}" timeout 30 wrk -t1 -c"$CONNS" -d1s "https://127.0.0.1:$N_PORT/" >/dev/null; }
          selected goluarun && run_wrk "$kind" goluarun "$G_PORT" "${G_PIDS[@]}"
          selected nginx && run_wrk "$kind" nginx "$N_PORT" "${N_PIDS[@]}"
        else
          selected goluarun && run_hs "$kind" "$sec" goluarun "$G_PORT" "${G_PIDS[@]}"
          selected nginx && run_hs "$kind" "$sec" nginx "$N_PORT" "${N_PIDS[@]}"
        fi
        true
      done
    done
    ((${#G_PIDS[@]})) && stop_pid "${G_PIDS[0]}"
    ((${#N_PIDS[@]})) && stop_pid "${N_PIDS[0]}"
  fi
  if section idle; then
    selected goluarun && run_idle "$kind" goluarun
    selected nginx && run_idle "$kind" nginx
  fi
  if section echo; then
    E_PIDS=(); O_PIDS=()
    if selected goluarun; then start_glr_echo; E_PIDS=("${SPIDS[@]}"); E_PORT=$SPORT; fi
    if selected go; then start_go_echo; O_PIDS=("${SPIDS[@]}"); O_PORT=$SPORT; fi
    for ((i = 0; i < RUNS; i++)); do
      selected goluarun && run_hs "$kind" echo goluarun "$E_PORT" "${E_PIDS[@]}"
      selected go && run_hs "$kind" echo go "$O_PORT" "${O_PIDS[@]}"
      true
    done
    ((${#E_PIDS[@]})) && stop_pid "${E_PIDS[0]}"
    ((${#O_PIDS[@]})) && stop_pid "${O_PIDS[0]}"
  fi
done

# ---- the table ------------------------------------------------------------------
row() {                 # row KIND SECTION OTHER LABEL UNIT TARGET(>=x or <=KiB)
  local kind=$1 sec=$2 other=$3 label=$4 unit=$5 target=$6 g n gu nu gr nr ratio verdict
  read -r g gu gr < <(summary "$TMP/res.$kind.$sec.goluarun")
  read -r n nu nr < <(summary "$TMP/res.$kind.$sec.$other")
  if [ "$sec" = idle ]; then
    g=$(awk '{ print $1 }' "$TMP/res.$kind.idle.goluarun" 2>/dev/null || echo NA); g=${g:-NA}
    n=$(awk '{ print $1 }' "$TMP/res.$kind.idle.$other" 2>/dev/null || echo NA); n=${n:-NA}
    gu=-; nu=-
  fi
  ratio=$(awk -v a="$g" -v b="$n" 'BEGIN { if (a == "NA" || b == "NA" || b == 0) print "-"; else printf "%.2fx", a / b }')
  verdict=$(awk -v a="$g" -v b="$n" -v t="$target" 'BEGIN {
    if (a == "NA") { print "-"; exit }
    if (substr(t, 1, 2) == "<=") { print (a <= substr(t, 3) + 0) ? "met" : "NOT met"; exit }
    if (b == "NA" || b == 0) { print "-"; exit }
    print (a / b >= substr(t, 3) + 0) ? "met" : "NOT met" }')
  printf '| %-44s | %-5s | %10s | %10s | %-6s | %9s | %9s | %-9s %-7s |\n' \
    "$label" "$other" "$g" "$n" "$ratio" "$gu" "$nu" "$target" "$verdict"
}

{
  echo "TLS 1.3 $SUITE, X25519; server on CPU $SERVER_CPU (goluarun -p 1, nginx 1 worker,"
  echo "GOMAXPROCS=1), client on CPU $CLIENT_CPU; median of $RUNS runs of ${DURATION} s, $CONNS connections"
  echo "($NCPU CPUs, $(uname -r), $(openssl version | cut -d' ' -f1-2))"
  for kind in $KEYS; do
    echo
    echo "### $([ "$kind" = ec ] && echo "ECDSA P-256" || echo "RSA 2048") certificate"
    echo
    printf '| %-44s | %-5s | %10s | %10s | %-6s | %9s | %9s | %-17s |\n' \
      "test" "vs" "goluarun" "other" "ratio" "glr us/op" "oth us/op" "target"
    echo "|----------------------------------------------|-------|-----------:|-----------:|--------|----------:|----------:|-------------------|"
    section hello && row "$kind" hello nginx "HTTPS keep-alive hello, req/s (wrk)" "req/s" ">=0.9"
    section full && row "$kind" full nginx "full handshakes/s (tls_hs -m full)" "/s" ">=0.9"
    section resume && row "$kind" resume nginx "resumed handshakes/s (tls_hs -m resume)" "/s" ">=0.9"
    section idle && row "$kind" idle nginx "idle KiB/conn at $IDLE_CONNS (tls_hs -m idle)" "KiB" "<=8"
    section echo && row "$kind" echo go "64 B echo msgs/s (tls_hs -m echo)" "/s" ">=1.0"
  done
  echo
  echo "us/op: server CPU (user+system, every process) per request, handshake or message."
} | tee "$RESULTS/summary.md"
cp "$TMP/client.log" "$RESULTS/client.log" 2>/dev/null || true
cat "$TMP"/res.* > /dev/null 2>&1 && for f in "$TMP"/res.*; do echo "${f##*/res.} $(tr '\n' ';' < "$f")"; done > "$RESULTS/raw.txt"
echo "(results in $RESULTS)" >&2
