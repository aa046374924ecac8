#!/usr/bin/env bash
# fake_spec.sh PIDFILE MODE: a stand-in for a spec that leaks a daemon.
# Starts a daemonizing child (double fork + setsid, as nginx or
# redis-server --daemonize do), so it is re-parented away from this
# process, writes the daemon's PID to PIDFILE, then either hangs (MODE
# hang: past the watchdog's limit, ignoring SIGQUIT like a stuck runtime)
# or exits 0 (MODE exit: the spec ended normally but leaked the daemon).
set -u
pidfile=$1 mode=$2
( setsid bash -c 'echo $$ > "$1.tmp" && mv "$1.tmp" "$1" && exec sleep 300' _ "$pidfile" \
    </dev/null >/dev/null 2>&1 & )
for _ in $(seq 500); do [ -s "$pidfile" ] && break; sleep 0.01; done
[ -s "$pidfile" ] || { echo "fake_spec: no daemon PID" >&2; exit 3; }
if [ "$mode" = hang ]; then
  trap '' QUIT
  sleep 300
fi
exit 0
