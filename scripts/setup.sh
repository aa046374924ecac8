#!/usr/bin/env bash
# setup.sh — install the Debian packages goluarun needs (only the missing
# ones) and build it with CMake into ${BUILD:-build}.
#   scripts/setup.sh [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential cmake pkg-config liblua5.4-dev lua5.4 lua-lpeg lua-busted lua-socket
      procps coreutils openssl libssl-dev python3 wrk
      curl netcat-openbsd redis-tools    # real clients the specs drive
      gdb                                # spec-watchdog.sh: thread backtraces of a hung spec
      valgrind                           # net_spec: heap allocations per read
      haproxy systemd                    # restart_spec: the load balancer, systemd-socket-activate
      dpkg-dev file                      # package_test: CPack's DEB generator (dpkg-shlibdeps)
      redis-server                       # the real server redis_client_spec drives
      nodejs node-ws                     # the WebSocket peer (spec/node/ws_peer.js)
      nginx                              # a real HTTP server (client and gateway specs)
      prometheus chromium                # promtool, headless rendering (pprof_spec)
      clang-16 libclang-rt-16-dev)       # the TSan build and libFuzzer (test.sh, fuzz.sh)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

BUILD=${BUILD:-build}
cmake -S . -B "$BUILD" -DGLR_WERROR=ON "$@" >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
