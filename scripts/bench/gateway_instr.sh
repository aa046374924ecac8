#!/usr/bin/env bash
# gateway_instr.sh — instructions per proxied request of scripts/gateway.lua
# (goluarun -p 1) under valgrind's callgrind: a load-independent figure to
# iterate on while the box is busy (req/s on a shared box is noise).
#
#   scripts/bench/gateway_instr.sh     (env: N=2000 CONNS=4 GOLUARUN=... GATEWAY=script)
#
# The upstream is nginx (1 worker) serving a static 100-byte file, as in
# gateway.sh. A goluarun client (not under callgrind) sends keep-alive GETs
# over $CONNS connections; the gateway runs twice under callgrind, once for
# N/10 requests and once for N + N/10, and the difference of the two totals
# divided by N is the figure (start-up and shutdown cancel out).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
N=${N:-2000}
CONNS=${CONNS:-4}
GOLUARUN=${GOLUARUN:-$ROOT/build/goluarun}
GATEWAY=${GATEWAY:-$ROOT/scripts/gateway.lua} # (another script: an experiment)
source "$ROOT/scripts/bench/lib.sh"
need_pkgs gateway_instr.sh valgrind nginx curl
[ -x "$GOLUARUN" ] || { echo "gateway_instr.sh: $GOLUARUN not built" >&2; exit 1; }

TMP=$(mktemp -d /tmp/gateway-instr.XXXXXX)
chmod 755 "$TMP"
export LUA_PATH="$ROOT/lua/?.lua;;"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "${KEEP:-}" ]; then cp "$TMP/cg.$((N + N / 10))" "$KEEP"; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

UP_PORT=$(free_port "$GOLUARUN")
mkdir -p "$TMP/up/logs" "$TMP/up/www"
printf '%099d\n' 0 > "$TMP/up/www/body.txt"
cat > "$TMP/up/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $TMP/up/nginx.pid;
error_log $TMP/up/logs/error.log warn;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 1000000;
  client_body_temp_path $TMP/up/tmp;
  server { listen 127.0.0.1:$UP_PORT; root $TMP/up/www; } }
NGX
nginx -p "$TMP/up" -c "$TMP/up/nginx.conf" -e "$TMP/up/logs/error.log" > "$TMP/up.out" 2>&1 &
PIDS+=($!)
wait_http gateway_instr.sh "http://127.0.0.1:$UP_PORT/body.txt"

cat > "$TMP/gw.lua" <<CFG
return { routes = { { prefix = "/", upstream = "up" } },
  upstreams = { up = { "127.0.0.1:$UP_PORT" } }, pool = { max_idle = 64 } }
CFG
# the client: COUNT keep-alive GETs over CONNS conns, each answer read whole
cat > "$TMP/client.lua" <<'LUA'
local go, net = require "go", require "net"
local addr, count, conns = arg[1], tonumber(arg[2]), tonumber(arg[3])
local req = "GET /body.txt HTTP/1.1\r\nHost: gw\r\nUser-Agent: instr\r\nAccept: */*\r\n\r\n"
local done = go.chan(conns)
for c = 1, conns do
  go(function()
    local conn = assert(net.dial(addr, 5))
    local n = count // conns + (c <= count % conns and 1 or 0)
    for _ = 1, n do
      assert(conn:write(req))
      local len
      repeat
        local line = assert(conn:read("l"))
        len = len or tonumber(line:match("^[Cc]ontent%-[Ll]ength: (%d+)"))
      until line == "" or line == "\r"
      assert(len == 100, "no Content-Length: 100")
      assert(conn:read(len))
    end
    conn:close()
    done:send(true)
  end)
end
for _ = 1, conns do done:recv() end
LUA

run_one() { # count -> instructions
  local count=$1 out="$TMP/cg.$1"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$GOLUARUN" -p 1 \
    "$GATEWAY" "$TMP/gw.lua" 127.0.0.1:0 > "$TMP/gw.out" 2> "$TMP/gw.err" &
  local pid=$! addr=""
  for _ in $(seq 400); do
    addr=$(sed -n 's/^listening on //p' "$TMP/gw.out" || true)
    [ -n "$addr" ] && break
    sleep 0.05
  done
  [ -n "$addr" ] || { echo "gateway_instr.sh: gateway did not start" >&2; cat "$TMP/gw.err" >&2; exit 1; }
  "$GOLUARUN" "$TMP/client.lua" "$addr" "$count" "$CONNS" >&2 || { kill "$pid"; exit 1; }
  kill -INT "$pid"; wait "$pid" 2>/dev/null || true
  sed -n 's/^summary: *//p;s/^totals: *//p' "$out" | head -1
}
small=$((N / 10))
a=$(run_one "$small") || exit 1
b=$(run_one $((N + small))) || exit 1
echo "gateway.lua: $(( (b - a) / N )) instructions per proxied request (callgrind, N=$N, $CONNS conns)"
