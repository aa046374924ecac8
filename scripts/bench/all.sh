#!/usr/bin/env bash
# all.sh — every figure of the performance table in one run, each against
# its peer, and one markdown table with the machine's load noted.
#
#   scripts/bench/all.sh [--reps N] [--quick] [--sections LIST]
#
# sections (default all, in this order):
#   micro    spawn + finish, channel ping-pong: micro.lua (-p 1) vs go_micro
#            (GOMAXPROCS=1), through run.sh --sections micro
#   xchan    shared-channel round trip across two Ps: xchan.lua (-p 2) vs
#            go_micro -bench xpingpong (GOMAXPROCS=2), alternating
#   echo     64 B echo, 50 conns: goluarun vs go_echo vs c_echo (run.sh)
#   idle     RSS per idle connection (run.sh, 5000 conns)
#   resp16   redis_lite vs redis-server, redis-benchmark -P 16 (redis.sh)
#   resp1    the same with -P 1
#   http     goluarun.http hello vs nginx + lua, wrk -c50 (http.sh)
#   sched    no-regression figures: scale.lua -p 2 vs -p 1, preempt.lua p99
#
# Every peer pair runs interleaved inside its section (the scripts alternate
# the servers run by run); sections run one after another. The table goes
# to stdout and to $BUILD/bench/all-results/<stamp>/table.md, each section's
# own output next to it. The load average before and after each section is
# in the table: figures taken with a load above the CPU count are noisy.
# CI does not run this (it times things).
#
# environment: BUILD (default build), SERVER_CPU (0), CLIENT_CPU (1).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
GOLUARUN=$BUILD/goluarun
B=$BUILD/bench
REPS=3
QUICK=0
SECTIONS=micro,xchan,echo,idle,resp16,resp1,http,sched

usage() { sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "all.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case $1 in
    --reps) REPS=${2:?}; shift ;;
    --quick) QUICK=1; REPS=1 ;;
    --sections) SECTIONS=${2:?}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "--reps must be a positive integer"
for s in ${SECTIONS//,/ }; do
  case $s in micro|xchan|echo|idle|resp16|resp1|http|sched) ;;
    *) die "unknown section '$s'" ;; esac
done
[ -x "$GOLUARUN" ] || die "$GOLUARUN not built (scripts/setup.sh)"
command -v go >/dev/null || die "go not found (apt-get install -y golang-go)"
section() { [[ ",$SECTIONS," == *",$1,"* ]]; }

OUT=$B/all-results/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
ROWS=$OUT/rows.md
: >"$ROWS"
load() { cut -d' ' -f1 /proc/loadavg; }
row() { # row FIGURE GOLUARUN PEER RATIO TARGET LOAD
  printf '| %s | %s | %s | %s | %s | %s |\n' "$@" >>"$ROWS"
  printf '  %s: %s vs %s (%s; %s)\n' "$1" "$2" "$3" "$4" "$5" >&2
}
median() { sort -g | awk '{ a[NR] = $1 } END { if (!NR) print "NA"; else if (NR % 2) print a[(NR + 1) / 2];
  else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "NA" || b == "NA" || b == 0) print "NA"; else printf "%.2fx", a / b }'; }
field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p"; } # one value per line

# run.sh's raw.txt: the newest results folder after a run
runsh() { # runsh LOGNAME ARGS... -> path of raw.txt
  BUILD=$BUILD scripts/bench/run.sh "${@:2}" >"$OUT/$1.txt" 2>&1 || true
  local d
  d=$(ls -td "$B"/results/*/ 2>/dev/null | head -n 1)
  echo "${d}raw.txt"
}
rawmed() { # rawmed RAW SECTION SERVER KEY [BENCH]
  local bench=${5:-}
  awk -v s="section=$2" -v srv="server=$3" -v b="bench=$bench" -v k="$4" '
    $2 == s && $4 == srv && (b == "bench=" || index($0, " " b " ")) && $0 !~ /status=(failed|disturbed)/ {
      for (i = 1; i <= NF; i++) if (index($i, k "=") == 1) print substr($i, length(k) + 2) }' "$1" | median
}

GO_MICRO=$B/go_micro_all
build_go_micro() {
  mkdir -p "$B"
  env GO111MODULE=off GOFLAGS= CGO_ENABLED=0 GOCACHE="$B/go-cache" GOPATH="$B/go-path" \
    go build -o "$GO_MICRO" scripts/bench/go_micro.go
}

echo "all.sh: results in $OUT (load $(load), $(nproc) CPUs)" >&2
LOAD0=$(load)

if section micro; then
  l0=$(load)
  raw=$(runsh micro --sections micro --reps "$REPS")
  l="$l0→$(load)"
  for b in spawn pingpong; do
    g=$(rawmed "$raw" micro goluarun ns_per_op "$b"); o=$(rawmed "$raw" micro go ns_per_op "$b")
    t="≤ 250 ns"; [ $b = pingpong ] && t="≤ 300 ns"
    row "$b (ns/op, -p 1)" "$g" "Go $o" "$(ratio "$g" "$o")" "$t" "$l"
    g=$(rawmed "$raw" micro goluarun cpu_ns_per_op "$b"); o=$(rawmed "$raw" micro go cpu_ns_per_op "$b")
    row "$b (CPU ns/op, -p 1)" "$g" "Go $o" "$(ratio "$g" "$o")" "$t" "$l"
  done
  # go.start makes no handle, as Go's `go f()`: the like-for-like spawn
  g=$(rawmed "$raw" micro goluarun ns_per_op spawn_start); o=$(rawmed "$raw" micro go ns_per_op spawn)
  row "spawn with go.start (ns/op, -p 1)" "$g" "Go $o" "$(ratio "$g" "$o")" "≤ 250 ns" "$l"
fi

if section xchan; then
  l0=$(load)
  build_go_micro
  n=20000; [ $QUICK = 1 ] && n=5000
  : >"$OUT/xchan.runs"
  for r in $(seq "$REPS"); do
    timeout 120 taskset -c "${SERVER_CPU:-0},${CLIENT_CPU:-1}" "$GOLUARUN" -p 2 scripts/bench/xchan.lua $n \
      | sed 's/^/goluarun /' >>"$OUT/xchan.runs" || echo "goluarun failed" >>"$OUT/xchan.runs"
    env GOMAXPROCS=2 timeout 120 taskset -c "${SERVER_CPU:-0},${CLIENT_CPU:-1}" "$GO_MICRO" -bench xpingpong \
      | sed 's/^/go /' >>"$OUT/xchan.runs" || echo "go failed" >>"$OUT/xchan.runs"
  done
  g=$(grep '^goluarun RESULT' "$OUT/xchan.runs" | field ns_per_op | median)
  o=$(grep '^go RESULT' "$OUT/xchan.runs" | field ns_per_op | median)
  row "shared channel round trip, 2 Ps (ns)" "$g" "Go $o" "$(ratio "$g" "$o")" "≤ 5000 ns" "$l0→$(load)"
fi

if section echo || section idle; then
  l0=$(load)
  secs=""; section echo && secs=echo
  section idle && secs=${secs:+$secs,}idle
  quick=(); [ $QUICK = 1 ] && quick=(--quick)
  raw=$(runsh echo --sections "$secs" --reps "$REPS" "${quick[@]}")
  l="$l0→$(load)"
  if section echo; then
    g=$(rawmed "$raw" echo goluarun srv_us_per_req); c=$(rawmed "$raw" echo c_echo srv_us_per_req)
    row "echo server CPU (µs/req)" "$g" "c_echo $c" "$(ratio "$g" "$c")" "≤ 1.02x c_echo" "$l"
    g=$(rawmed "$raw" echo goluarun rps); o=$(rawmed "$raw" echo go_echo rps)
    row "echo req/s" "$g" "go_echo $o" "$(ratio "$g" "$o")" "≥ 1.0x Go" "$l"
  fi
  if section idle; then
    g=$(rawmed "$raw" idle goluarun kib_per_conn); o=$(rawmed "$raw" idle go_echo kib_per_conn)
    row "idle memory (KiB/conn)" "$g" "Go $o" "$(ratio "$g" "$o")" "≤ 1.75 KiB" "$l"
  fi
fi

resp() { # resp PIPE TARGET
  local l0 g o T
  l0=$(load)
  BUILD=$BUILD scripts/bench/redis.sh --reps "$REPS" -P "$1" >"$OUT/resp$1.txt" 2>&1 || true
  for T in SET GET; do
    read -r g o < <(awk -v t="$T" '$1 == t && NF == 4 { print $2, $3 }' "$OUT/resp$1.txt" | tail -n 1) || true
    row "RESP $T -P $1 (req/s)" "${g:-NA}" "redis-server ${o:-NA}" "$(ratio "${g:-NA}" "${o:-NA}")" "$2" "$l0→$(load)"
  done
}
section resp16 && resp 16 "≥ 0.6x"
section resp1 && resp 1 "≥ 1.0x"

if section http; then
  l0=$(load)
  d=5; [ $QUICK = 1 ] && d=2
  GOLUARUN=$GOLUARUN RUNS=$REPS DURATION=$d scripts/bench/http.sh >"$OUT/http.txt" 2>&1 || true
  read -r g gc < <(sed -n 's/^goluarun -p 1 http.lua *\([0-9.]*\) *\([0-9.]*\).*/\1 \2/p' "$OUT/http.txt") || true
  read -r o oc < <(sed -n 's/^nginx 1 worker + lua *\([0-9.]*\) *\([0-9.]*\).*/\1 \2/p' "$OUT/http.txt") || true
  row "HTTP hello -p 1 (req/s)" "${g:-NA}" "nginx ${o:-NA}" "$(ratio "${g:-NA}" "${o:-NA}")" "≥ 1.0x" "$l0→$(load)"
  row "HTTP hello server CPU (µs/req)" "${gc:-NA}" "nginx ${oc:-NA}" "$(ratio "${gc:-NA}" "${oc:-NA}")" "≤ 1.0x" "$l0→$(load)"
fi

if section sched; then
  l0=$(load)
  : >"$OUT/sched.runs"
  for r in $(seq "$REPS"); do
    for p in 1 2; do
      timeout 300 taskset -c "${SERVER_CPU:-0},${CLIENT_CPU:-1}" "$GOLUARUN" -p $p scripts/bench/scale.lua \
        | sed "s/^/p$p /" >>"$OUT/sched.runs" || true
    done
    timeout 60 taskset -c "${SERVER_CPU:-0}" "$GOLUARUN" -p 1 scripts/bench/preempt.lua 3 \
      | sed 's/^/preempt /' >>"$OUT/sched.runs" || true
  done
  s1=$(grep '^p1 RESULT' "$OUT/sched.runs" | field secs | median)
  s2=$(grep '^p2 RESULT' "$OUT/sched.runs" | field secs | median)
  row "scaling: scale.lua -p 2 vs -p 1 (s)" "$s2" "-p 1 $s1" "$(ratio "$s1" "$s2") faster" "≥ 1.9x" "$l0→$(load)"
  p99=$(grep '^preempt' "$OUT/sched.runs" | field p99 | median)
  row "preemption latency p99 (ms)" "$p99" "—" "—" "≤ 5 ms" "$l0→$(load)"
fi

{
  echo "## goluarun performance table ($(date -u '+%Y-%m-%d %H:%M UTC'))"
  echo
  echo "$(nproc) CPUs, $(uname -r); load average $LOAD0 at the start, $(load) at the end;"
  echo "medians of $REPS runs; goluarun at $(git rev-parse --short HEAD 2>/dev/null || echo '?')."
  echo
  echo "| figure | goluarun | peer | goluarun/peer | target | load (1 min) |"
  echo "|---|---|---|---|---|---|"
  cat "$ROWS"
  echo
  echo "Commands and raw runs: $OUT (one file per section)."
} | tee "$OUT/table.md"
