#!/usr/bin/env bash
# watchdog_test.sh SUBREAPER: scripts/spec-watchdog.sh under spec-subreaper
# (as CTest runs every spec) stops a daemon the spec started (double fork,
# re-parented away from the spec) both when the watchdog fires on a hung
# spec and when the spec exits normally having leaked it; and nothing the
# spec did not start is touched. Without the subreaper the daemon survives
# the watchdog (the bug this guards against), checked first so the test is
# known to see it. Every wait is bounded; every process is stopped by PID.
set -u
subreaper=$1
here=$(cd "$(dirname "$0")" && pwd)
watchdog=$here/../../scripts/spec-watchdog.sh
fake=$here/fake_spec.sh
tmp=$(mktemp -d)
bystander=
cleanup() {
  for f in "$tmp"/pid.*; do [ -s "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null; done
  [ -n "$bystander" ] && kill -KILL "$bystander" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
export SPEC_WATCHDOG_NOGDB=1 # the backtraces are not what is tested here

alive() { # pid: a live process (not a zombie) whose command is our sleep
  local st
  st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ "$st" != Z ] && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q '^sleep 300'
}
gone_within() { # pid seconds
  local i
  for ((i = 0; i < $2 * 100; i++)); do alive "$1" || return 0; sleep 0.01; done
  return 1
}

# a process this test started outside any spec: must survive every case
sleep 300 & bystander=$!

# 0. baseline: the watchdog alone leaves the daemon running
bash "$watchdog" 2 "$fake" "$tmp/pid.0" hang 2>"$tmp/err.0"
rc=$?
[ $rc = 124 ] || fail "baseline: watchdog exit $rc, expected 124"
d=$(cat "$tmp/pid.0") || fail "baseline: the fake spec wrote no daemon PID"
alive "$d" || fail "baseline: the daemon $d is already gone without the subreaper"
kill -KILL "$d"
echo "ok 0 - without the subreaper the daemon $d outlives the watchdog"

# (a 2 s limit: the fake spec's daemon is up well before it, even loaded)
# 1. the watchdog fires: the daemon is gone by the time it returns (bounded)
t0=$SECONDS
"$subreaper" bash "$watchdog" 2 "$fake" "$tmp/pid.1" hang 2>"$tmp/err.1"
rc=$?
[ $rc = 124 ] || { cat "$tmp/err.1" >&2; fail "hang: exit $rc, expected 124"; }
d=$(cat "$tmp/pid.1") || fail "hang: the fake spec wrote no daemon PID"
gone_within "$d" 5 || { cat "$tmp/err.1" >&2; fail "hang: the daemon $d still runs"; }
grep -q "stopping leaked process $d " "$tmp/err.1" || { cat "$tmp/err.1" >&2; fail "hang: $d not named"; }
grep -q "^ *$d .*sleep 300" "$tmp/err.1" || { cat "$tmp/err.1" >&2; fail "hang: $d not in the watchdog's process list"; }
echo "ok 1 - a hung spec's daemon $d is stopped when the watchdog fires ($((SECONDS - t0)) s)"

# 2. the spec exits normally having leaked the daemon: stopped, status kept
"$subreaper" bash "$watchdog" 60 "$fake" "$tmp/pid.2" exit 2>"$tmp/err.2"
rc=$?
[ $rc = 0 ] || { cat "$tmp/err.2" >&2; fail "exit: status $rc, expected the spec's 0"; }
d=$(cat "$tmp/pid.2") || fail "exit: the fake spec wrote no daemon PID"
gone_within "$d" 5 || fail "exit: the daemon $d still runs"
echo "ok 2 - a finished spec's leaked daemon $d is stopped"

# 3. the spec's own status goes through
"$subreaper" bash -c 'exit 7'; rc=$?
[ $rc = 7 ] || fail "status: $rc, expected 7"
echo "ok 3 - the command's exit status is kept"

alive "$bystander" || fail "a process the specs did not start ($bystander) was stopped"
echo "ok 4 - a process outside the spec is untouched"
