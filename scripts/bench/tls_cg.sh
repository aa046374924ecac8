#!/usr/bin/env bash
# tls_cg.sh — instructions per TLS operation, counted by callgrind: a figure
# that does not depend on the load of the machine (tls.sh's timings do).
#
#   scripts/bench/tls_cg.sh   (env: KIND=ec|rsa SECTIONS=echo,hello[,full,resume]
#                              ONLY=goluarun,nginx SHORT=5 LONG=12 CONNS=20
#                              BUILD=build GOLUARUN=$BUILD/goluarun
#                              KEEP=DIR: keep the callgrind files there)
#
# For each section, each server runs twice under valgrind --tool=callgrind
# (fresh process each time, the same CONNS connections and handshakes),
# loaded SHORT and then LONG seconds; the instructions per operation are
#   (Ir(long) - Ir(short)) / (ops(long) - ops(short))
# so start-up, handshakes and exit cancel out.
#   echo   goluarun -p 1 scripts/echo.lua --tls (and with ONLY=...,go
#          go_tls_echo.go, GOMAXPROCS=1: unsteady, Go's background work
#          under valgrind differs between the two runs by more than the
#          messages cost), 64-byte round trips (tls_hs -m echo -w 0);
#          ops = messages
#   hello  goluarun -p 1 scripts/http_server.lua --tls vs nginx (one
#          process, master_process off) `return 200`, wrk -t1 over https;
#          ops = requests
#   full   goluarun -p 1 scripts/http_server.lua --tls vs nginx as for hello,
#          full handshakes (tls_hs -m full -w 0: connect, handshake, one
#          GET, RST); ops = handshakes
#   resume the same with resumed handshakes (tls_hs -m resume: each
#          connection offers the ticket its slot got last; the first of
#          each slot is a full one: it cancels)
# TLS 1.3 TLS_AES_256_GCM_SHA384, X25519, a fresh self-signed certificate.
# Every process is started here and stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
KIND=${KIND:-ec}
SECTIONS=${SECTIONS:-echo,hello}
ONLY=${ONLY:-goluarun,nginx}
SHORT=${SHORT:-5}
LONG=${LONG:-12}
CONNS=${CONNS:-20}
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
GOLUARUN=${GOLUARUN:-$BUILD/goluarun}
B="$BUILD/bench"
SUITE=TLS_AES_256_GCM_SHA384

die() { echo "tls_cg.sh: $*" >&2; exit 1; }
section() { [[ ",$SECTIONS," == *",$1,"* ]]; }
selected() { [[ ",$ONLY," == *",$1,"* ]]; }
source "$ROOT/scripts/bench/lib.sh"
need_pkgs tls_cg.sh valgrind wrk nginx golang-go openssl libssl-dev curl build-essential
[ -x "$GOLUARUN" ] || die "$GOLUARUN not built"

TMP=$(mktemp -d /tmp/tls-cg.XXXXXX)
PIDS=()
stop_pid() {
  local pid=$1 i
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local p
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do stop_pid "$p"; done
  [ -n "${KEEP:-}" ] && { mkdir -p "$KEEP"; cp "$TMP"/cg.* "$KEEP"/ 2>/dev/null || true; }
  rm -rf "$TMP"
}
trap cleanup EXIT

mkdir -p "$B"
cc -std=c11 -O2 -Wall -Wextra -o "$B/tls_hs" "$ROOT/scripts/bench/tls_hs.c" -lssl -lcrypto ||
  die "tls_hs did not build"
if selected go; then
  env GO111MODULE=off GOFLAGS= CGO_ENABLED=0 GOCACHE="$B/go-cache" GOPATH="$B/go-path" \
    go build -o "$B/go_tls_echo" "$ROOT/scripts/bench/go_tls_echo.go" || die "go_tls_echo did not build"
fi
CERT="$TMP/c.pem"; KEYF="$TMP/c.key"
alg=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
[ "$KIND" = rsa ] && alg=(-newkey rsa:2048)
openssl req -x509 "${alg[@]}" -nodes -keyout "$KEYF" -out "$CERT" -days 30 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null ||
  die "openssl req failed"

# cg_start NAME CMD...: the command under callgrind; sets SPID
cg_start() {
  local name=$1; shift
  valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.$name" "$@" \
    > "$TMP/$name.out" 2> "$TMP/$name.err" &
  SPID=$!
  PIDS+=("$SPID")
}

# cg_wait NAME PORT: until NAME printed "listening on" (goluarun) or
# answers HTTPS (nginx); 60 s
cg_wait() {
  local i
  for ((i = 0; i < 600; i++)); do
    grep -q '^listening on' "$TMP/$1.out" && return 0
    [[ $1 == *nginx* ]] && curl -sk -o /dev/null --max-time 5 "https://127.0.0.1:$2/" && return 0
    kill -0 "$SPID" 2>/dev/null || break
    sleep 0.1
  done
  return 1
}

# ir FILE: the total instruction count of a callgrind output
ir() { awk '/^(summary|totals):/ { print $2; exit }' "$1"; }

start_glr() {           # start_glr NAME SCRIPT: sets SPID, SPORT
  local port; port=$(free_port_any)
  cg_start "$1" "$GOLUARUN" -p 1 "$ROOT/scripts/$2" "127.0.0.1:$port" --tls "$CERT" "$KEYF"
  SPORT=$port
  cg_wait "$1" "$port" || { cat "$TMP/$1.err" >&2; die "$1 did not start"; }
}

start_go() {            # start_go NAME: sets SPID, SPORT
  local port; port=$(free_port_any)
  GOMAXPROCS=1 cg_start "$1" "$B/go_tls_echo" "$port" "$CERT" "$KEYF"
  SPORT=$port
  cg_wait "$1" "$port" || { cat "$TMP/$1.err" >&2; die "$1 did not start"; }
}

start_ngx() {           # start_ngx NAME: sets SPID, SPORT
  local port dir="$TMP/ngx.$1"; port=$(free_port_any)
  mkdir -p "$dir/logs"
  cat > "$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $CERT;
    ssl_certificate_key $KEYF;
    ssl_protocols TLSv1.3;
    location / { default_type text/plain; return 200 "Hello, World!\n"; }
  }
}
EOF
  cg_start "$1" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log"
  SPORT=$port
  cg_wait "$1" "$port" || { cat "$TMP/$1.err" "$dir/logs/error.log" >&2; die "nginx did not start"; }
}

load() {                # load SECTION PORT SECONDS -> ops
  if [ "$1" != hello ]; then
    timeout 120 "$B/tls_hs" -p "$2" -m "$1" -c "$CONNS" -s 64 -d "$3" -w 0 -C "$SUITE" |
      sed -n 's/^RESULT.* ops=\([0-9]*\).*/\1/p'
  else
    timeout 120 wrk -t1 -c"$CONNS" -d"${3}s" "https://127.0.0.1:$2/" |
      awk '/ requests in / { print $1 }'
  fi
}

measure() {             # measure SECTION SERVER -> prints the row
  local sec=$1 srv=$2 d ops irs=() opss=() script
  script=$([ "$sec" = echo ] && echo echo.lua || echo http_server.lua)
  for d in "$SHORT" "$LONG"; do
    case $srv in
      goluarun) start_glr "$sec.$srv.$d" "$script" ;;
      go) start_go "$sec.$srv.$d" ;;
      *) start_ngx "$sec.$srv.$d" ;;
    esac
    ops=$(load "$sec" "$SPORT" "$d")
    stop_pid "$SPID"
    [ -n "$ops" ] && [ "$ops" -gt 0 ] || die "$srv $sec: no operations measured"
    irs+=("$(ir "$TMP/cg.$sec.$srv.$d")"); opss+=("$ops")
  done
  awk -v s="$sec" -v v="$srv" -v i1="${irs[0]}" -v i2="${irs[1]}" -v o1="${opss[0]}" -v o2="${opss[1]}" \
    'BEGIN { printf "| %-6s | %-9s | %8d | %8d | %10.0f |\n", s, v, o1, o2, (i2 - i1) / (o2 - o1) }'
}

echo "callgrind, $KIND certificate, $CONNS connections, ${SHORT}s vs ${LONG}s"
echo "| test   | server    | ops short | ops long | Ir/op      |"
echo "|--------|-----------|----------:|---------:|-----------:|"
if section echo; then
  selected goluarun && measure echo goluarun
  selected go && measure echo go
fi
for sec in hello full resume; do
  section $sec || continue
  selected goluarun && measure $sec goluarun
  selected nginx && measure $sec nginx
done
true
