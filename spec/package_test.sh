#!/usr/bin/env bash
# package_test.sh SRC BUILD — the Debian package, end to end (CTest
# package:deb, plain build only): configures a package build (prefix /usr,
# no source-tree paths baked in), runs `cpack -G DEB`, checks
# goluarun_<version>_amd64.deb's contents, installs it with dpkg -i into this
# machine, runs an example server from the installed paths, builds the
# out-of-tree C module against the installed goluarun.pc, then removes the
# package with dpkg -r and checks every file it installed is gone.
# Runs only as root (CI); exits 77 (CTest: skipped) with the reason otherwise,
# and when a goluarun package is already installed (it is not ours to remove).
set -euo pipefail
src=$(cd "$1" && pwd) build=$(cd "$2" && pwd)

skip() { echo "package:deb SKIPPED: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root (dpkg -i installs into this machine; CI runs as root)"
if dpkg-query -W -f='${Status}' goluarun 2>/dev/null | grep -q "install ok installed"; then
  skip "a goluarun package is already installed; not replacing or removing it"
fi
for t in cpack dpkg dpkg-deb dpkg-shlibdeps pkg-config cc curl; do
  command -v "$t" >/dev/null || { echo "missing $t: run scripts/setup.sh"; exit 1; }
done

pkgbuild=$build/deb-build work=$build/deb-work
rm -rf "$pkgbuild" "$work"
mkdir -p "$work"
server_pid=""
installed=0
cleanup() {
  [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null || true
  if [ "$installed" = 1 ]; then dpkg_retry -r goluarun >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

# dpkg_retry ARGS — dpkg, waiting (up to 120 s) while apt/dpkg elsewhere holds its lock
dpkg_retry() {
  local i out
  for i in $(seq 1 120); do
    if out=$(dpkg "$@" 2>&1); then echo "$out"; return 0; fi
    if ! grep -qi "lock" <<<"$out"; then echo "$out" >&2; return 1; fi
    sleep 1
  done
  echo "$out" >&2
  return 1
}

echo "== configure and build the package"
cmake -S "$src" -B "$pkgbuild" -DCMAKE_INSTALL_PREFIX=/usr -DGLR_DEV_PATHS=OFF \
  -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$pkgbuild" -j"$(nproc)" >/dev/null
(cd "$pkgbuild" && cpack -G DEB >/dev/null)
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$pkgbuild/CMakeCache.txt")
deb=$pkgbuild/goluarun_${version}_amd64.deb
[ -f "$deb" ] || { echo "no $deb; built: $(ls "$pkgbuild"/*.deb 2>/dev/null)"; exit 1; }
echo "built $(basename "$deb")"

echo "== contents"
dpkg-deb -I "$deb" | grep -E "Package|Version|Architecture|Depends"
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' > "$work/contents"
libdir=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:PATH=//p' "$pkgbuild/CMakeCache.txt")
for f in /usr/bin/goluarun /usr/share/lua/5.4/goluarun/http.lua /usr/share/lua/5.4/goluarun/json.lua \
         /usr/include/goluarun.h "/usr/$libdir/pkgconfig/goluarun.pc" /usr/share/man/man1/goluarun.1 \
         /usr/lib/systemd/system/goluarun@.service /usr/lib/systemd/system/goluarun@.socket \
         /usr/share/goluarun/examples/restart_server.lua; do
  grep -qx "$f" "$work/contents" || { echo "the package lacks $f"; cat "$work/contents"; exit 1; }
done
dpkg-deb -f "$deb" Depends | grep -q liblua5.4 || { echo "Depends lacks liblua5.4"; exit 1; }

echo "== dpkg -i"
dpkg_retry -i "$deb" >/dev/null
installed=1
dpkg-query -W -f='${Status} ${Version}\n' goluarun

echo "== the installed binary finds the installed library (no source tree)"
cd "$work"
found=$(env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 /usr/bin/goluarun \
  -e 'print(package.searchpath("goluarun.http", package.path))')
[ "$found" = /usr/share/lua/5.4/goluarun/http.lua ] || { echo "goluarun.http found at '$found'"; exit 1; }
man -w goluarun >/dev/null 2>&1 || [ -f /usr/share/man/man1/goluarun.1 ] || { echo "no man page"; exit 1; }

echo "== an installed example serves"
env -u LUA_PATH -u LUA_CPATH /usr/bin/goluarun /usr/share/goluarun/examples/restart_server.lua \
  127.0.0.1:0 >"$work/server.out" 2>"$work/server.err" </dev/null &
server_pid=$!
addr=""
for _ in $(seq 1 100); do
  addr=$(sed -n 's/^listening on //p' "$work/server.out")
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || { echo "the example did not start:"; cat "$work/server.err"; exit 1; }
body=$(curl -s --max-time 5 "http://$addr/")
[ "$body" = "hello from $server_pid" ] || { echo "unexpected answer '$body'"; exit 1; }
kill -TERM "$server_pid"
wait "$server_pid" || true
server_pid=""
echo "served: $body"

echo "== the out-of-tree C module against the installed goluarun.pc"
cflags=$(pkg-config --cflags goluarun)
cc -std=c11 -shared -fPIC -Wall -Wextra -Werror $cflags \
  "$src/modules/timerfd/timerfd.c" -o "$work/timerfd.so" -lpthread
LUA_CPATH="$work/?.so" /usr/bin/goluarun -e '
  local timerfd = require "timerfd"
  local t <close> = timerfd.ticker(0.01)
  assert(t:wait(2) >= 1)
  print("timerfd module loaded by the installed goluarun " .. timerfd.goluarun_version)'

echo "== dpkg -r"
dpkg_retry -r goluarun >/dev/null
installed=0
if dpkg-query -W -f='${Status}' goluarun 2>/dev/null | grep -q "install ok installed"; then
  echo "still installed after dpkg -r"; exit 1
fi
left=0
while read -r f; do
  [ -n "$f" ] && [ ! -d "$f" ] && [ -e "$f" ] && { echo "left behind: $f"; left=1; }
done < "$work/contents"
[ "$left" = 0 ] || exit 1
echo "package:deb OK: built, installed, used and removed cleanly"
