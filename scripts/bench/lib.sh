# lib.sh — shared by the HTTP and Redis benchmarks (sourced, not run).
#   need_pkgs NAME PKG...    apt-get install the missing Debian packages
#   wait_http NAME URL       until URL answers (5 s), else exit 1
#   nginx_lua_modules        load_module lines for ndk + lua, as Debian has them
#   free_port GOLUARUN       a free 127.0.0.1 port
#   free_port_any            one below the ephemeral range, without goluarun

need_pkgs() {
  local name=$1 p missing=()
  shift
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  echo "$name: installing ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

wait_http() {
  for _ in $(seq 100); do
    curl -s -o /dev/null --max-time 1 "$2" && return 0
    sleep 0.05
  done
  echo "$1: $2 does not answer" >&2
  exit 1
}

nginx_lua_modules() {
  local mods="" conf so
  for conf in /etc/nginx/modules-enabled/*http-ndk*.conf /etc/nginx/modules-enabled/*http-lua*.conf \
              /usr/share/nginx/modules-available/mod-http-ndk.conf /usr/share/nginx/modules-available/mod-http-lua.conf; do
    [ -f "$conf" ] || continue
    so=$(sed -n 's/^[[:space:]]*load_module[[:space:]]*\([^;]*\);.*/\1/p' "$conf")
    case "$so" in /*) ;; *) so="/usr/share/nginx/$so" ;; esac
    case "$mods" in *"$so"*) ;; *) mods+="load_module $so;"$'\n' ;; esac
  done
  case "$mods" in *lua*) ;; *) echo "ngx_http_lua_module not found" >&2; return 1 ;; esac
  printf '%s' "$mods"
}

# free_port_any — a free 127.0.0.1 port below the ephemeral range (nobody
# accepts on it), for servers that are not goluarun
free_port_any() {
  local p
  for ((p = 20000 + RANDOM % 12000; p < 32700; p++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
  done
}

# free_port GOLUARUN — a free 127.0.0.1 port (bound to :0, then released)
free_port() {
  "$1" -e 'local l = require("net").listen("127.0.0.1:0"); print((l:addr():match(":(%d+)$"))); l:close()'
}
