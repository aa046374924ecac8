#!/usr/bin/env bash
# exec.sh — starting and waiting for child processes: goluarun's go.exec
# (vfork + execve, p:wait parked on a pidfd in the netpoller) against Go's
# os/exec (Debian golang-go), both starting N children of /bin/true with C
# concurrent goroutines.
#
#   scripts/bench/exec.sh [--reps N] [-n CHILDREN] [-c CONCURRENCY]
#
# goluarun runs `goluarun -p 1 scripts/bench/exec_bench.lua N C`, Go runs
# `GOMAXPROCS=1 go_exec N C`, each pinned to SERVER_CPU (default 0) with
# taskset, alternating, REPS times (default 3). The table gives the medians
# of children per second, the parent's CPU µs per child (user+system of the
# spawning process, children excluded) and the peak thread count (goluarun:
# no thread waits for a child; Go: one thread blocked in wait4 per waiting
# child), and the goluarun / Go ratios.
#
# environment: BUILD (default build; goluarun is $BUILD/goluarun), SERVER_CPU.
set -euo pipefail
cd "$(dirname "$0")/../.."

REPS=3 N=2000 C=50
SERVER_CPU=${SERVER_CPU:-0}
BUILD=${BUILD:-build}
GOLUARUN=$BUILD/goluarun
die() { echo "exec.sh: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
  case $1 in
    --reps) REPS=${2:?}; shift ;;
    -n) N=${2:?}; shift ;;
    -c) C=${2:?}; shift ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
  shift
done
for v in "$REPS" "$N" "$C"; do [[ $v =~ ^[1-9][0-9]*$ ]] || die "'$v' is not a positive integer"; done

source scripts/bench/lib.sh
need_pkgs exec.sh golang-go util-linux
[ -x "$GOLUARUN" ] || die "$GOLUARUN not found (build first: scripts/setup.sh)"
B=$BUILD/bench
mkdir -p "$B"
env GO111MODULE=off GOFLAGS= CGO_ENABLED=0 GOCACHE="$PWD/$B/go-cache" GOPATH="$PWD/$B/go-path" \
  go build -o "$B/go_exec" scripts/bench/go_exec.go

raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
for rep in $(seq "$REPS"); do
  timeout 300 taskset -c "$SERVER_CPU" "$GOLUARUN" -p 1 scripts/bench/exec_bench.lua "$N" "$C" | grep '^RESULT' >> "$raw"
  GOMAXPROCS=1 timeout 300 taskset -c "$SERVER_CPU" "$B/go_exec" "$N" "$C" | grep '^RESULT' >> "$raw"
  echo "rep $rep done" >&2
done
echo "exec.sh: $N children of /bin/true, $C at a time, $REPS reps (medians); $(nproc) CPUs"
awk '
  function median(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
                                     return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
  { for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    k = f["impl"]; n[k]++
    rate[k, n[k]] = f["children"] / f["secs"]; us[k, n[k]] = f["cpu"] * 1e6 / f["children"]; th[k, n[k]] = f["peak_threads"] }
  END {
    printf "| impl | children/s | parent CPU µs/child | peak threads |\n|---|---|---|---|\n"
    for (k in n) {
      for (i = 1; i <= n[k]; i++) { r[i] = rate[k, i]; u[i] = us[k, i]; t[i] = th[k, i] }
      R[k] = median(r, n[k]); U[k] = median(u, n[k]); T[k] = median(t, n[k])
      printf "| %s | %.0f | %.0f | %d |\n", k, R[k], U[k], T[k]
    }
    if (("goluarun" in R) && ("go" in R))
      printf "\ngoluarun / go: children/s %.2fx, CPU per child %.2fx\n", R["goluarun"] / R["go"], U["goluarun"] / U["go"]
  }' "$raw"
