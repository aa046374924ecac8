#!/usr/bin/env bash
# oot_module.sh SRC BUILD — installs goluarun into a scratch prefix, builds the
# example C module out of tree with `pkg-config --cflags goluarun`, loads it.
set -euo pipefail
src=$1 build=$2
prefix=$build/oot-prefix out=$build/oot-mod
rm -rf "$prefix" "$out"
mkdir -p "$out"
cmake --install "$build" --prefix "$prefix" >/dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/share/pkgconfig"
cflags=$(pkg-config --cflags goluarun)
echo "cflags: $cflags"
cc -std=c11 -shared -fPIC -Wall -Wextra -Werror $cflags \
  "$src/modules/timerfd/timerfd.c" -o "$out/timerfd.so" -lpthread
LUA_CPATH="$out/?.so" "$prefix/bin/goluarun" -e '
  local timerfd = require "timerfd"
  local t <close> = timerfd.ticker(0.01)
  local n = assert(t:wait(2))
  assert(n >= 1)
  local r, w = timerfd.pipe()
  assert(w:write("through a pipe\n"))
  assert(r:read("l") == "through a pipe")
  print("out-of-tree timerfd module works with goluarun " .. timerfd.goluarun_version)'
