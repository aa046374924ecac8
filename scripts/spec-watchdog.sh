#!/usr/bin/env bash
# spec-watchdog.sh SECONDS COMMAND [ARGS...] — run COMMAND (a spec run by
# CTest); if it is still running after SECONDS, say why before CTest's own
# timeout kills it without a word: the process tree (a stuck child shows up
# here), goluarun's goroutines (SIGQUIT makes every P print its own), every
# thread's backtrace (gdb, when installed), then SIGKILL to the command and
# every process under it. Exits with COMMAND's status, or 124 on a hang.
# CTest starts it under spec-subreaper (spec/support/subreaper.c), which a
# daemon the spec started (double fork) is re-parented to: such orphans are
# listed here too, and the subreaper stops them once this script exits.
set -uo pipefail
secs=$1; shift

"$@" <&0 & pid=$!  # keeps stdin (a background job would get /dev/null)
sleep "$secs" </dev/null >/dev/null 2>&1 & dog=$!
wait -n -p ended "$pid" "$dog"; rc=$?
if [ "${ended:-}" = "$pid" ]; then
  kill "$dog" 2>/dev/null; wait "$dog" 2>/dev/null
  exit "$rc"
fi

descendants() { # pid: every process under it, depth first
  local c
  for c in $(ps -o pid= --ppid "$1"); do echo "$c"; descendants "$c"; done
}

echo "spec-watchdog: $* still running after ${secs}s" >&2
kids=$(descendants "$pid")
orphans=
if [ "$(cat /proc/$PPID/comm 2>/dev/null)" = spec-subreaper ]; then
  # the subreaper's children other than this script: adopted orphans
  orphans=$(for c in $(ps -o pid= --ppid "$PPID"); do
    [ "$c" = $$ ] || { echo "$c"; descendants "$c"; }; done)
fi
ps -o pid,ppid,stat,wchan:24,etime,args -p "$(echo "$pid" $kids $orphans | tr ' ' ,)" >&2
echo "spec-watchdog: goroutines (SIGQUIT)" >&2
kill -QUIT "$pid" 2>/dev/null
sleep 2 # time for each P's M to print; a P whose M is stuck prints nothing
if [ -z "${SPEC_WATCHDOG_NOGDB:-}" ] && command -v gdb >/dev/null; then
  echo "spec-watchdog: threads" >&2
  timeout 40 gdb -batch -p "$pid" -ex "thread apply all bt 30" </dev/null 2>&1 | grep -v '^\[New LWP' >&2
fi
for p in "$pid" $kids; do kill -KILL "$p" 2>/dev/null; done
wait "$pid" 2>/dev/null
exit 124
