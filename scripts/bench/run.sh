#!/usr/bin/env bash
# run.sh — goluarun's benchmark suite: goluarun vs a Go goroutine-per-
# connection server vs a hand-written C epoll server, on 127.0.0.1.
#
#   scripts/bench/run.sh [--quick] [--only NAME,...] [--sections LIST]
#                        [--reps N] [--duration S] [--idle-conns N]
#
# See scripts/bench/README.md for what each figure means. Everything runs on
# loopback, every step has a time limit, and only processes this script
# started are signalled, by PID.

set -euo pipefail

usage() {
  cat <<'EOF'
usage: scripts/bench/run.sh [options]
  --quick             1 repetition, 2 s echo runs, shorter idle hold
  --only LIST         servers to run, comma-separated: goluarun,go_echo,c_echo
                      (micro: go_micro runs with go_echo, micro.lua with goluarun)
  --sections LIST     parts to run: echo,idle,micro (default: all three)
  --reps N            repetitions for echo and micro (default 3; medians)
  --duration S        measured seconds per echo run (default 4)
  --idle-conns N      idle connections (default 5000)
  -h, --help          this text
environment: BUILD (default build; goluarun is $BUILD/goluarun, the tools go
to $BUILD/bench), SERVER_CPU (default 0), CLIENT_CPU (default 1)
EOF
}

# ---- options -----------------------------------------------------------------

REPS=3
DUR=4
WARM=1
IDLE_CONNS=5000
IDLE_HOLD=3
CONNS=50
SIZE=64
ONLY=goluarun,go_echo,c_echo
SECTIONS=echo,idle,micro
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}

die() { echo "run.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case $1 in
    --quick) REPS=1; DUR=2; WARM=0.5; IDLE_HOLD=2 ;;
    --only) ONLY=${2:?--only needs a list}; shift ;;
    --only=*) ONLY=${1#*=} ;;
    --sections) SECTIONS=${2:?--sections needs a list}; shift ;;
    --sections=*) SECTIONS=${1#*=} ;;
    --reps) REPS=${2:?}; shift ;;
    --duration) DUR=${2:?}; shift ;;
    --idle-conns) IDLE_CONNS=${2:?}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done

[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "--reps must be a positive integer"
[[ $DUR =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--duration must be a number of seconds"
[[ $IDLE_CONNS =~ ^[1-9][0-9]*$ ]] || die "--idle-conns must be a positive integer"

ALL_SERVERS=(goluarun go_echo c_echo)
SERVERS=()
for s in ${ONLY//,/ }; do
  case $s in
    goluarun|go_echo|c_echo) SERVERS+=("$s") ;;
    *) die "unknown server '$s' in --only (known: ${ALL_SERVERS[*]})" ;;
  esac
done
[ ${#SERVERS[@]} -gt 0 ] || die "--only selected no server"
for s in ${SECTIONS//,/ }; do
  case $s in echo|idle|micro) ;; *) die "unknown section '$s' (echo,idle,micro)" ;; esac
done

selected() { [[ ",$ONLY," == *",$1,"* ]]; }
section() { [[ ",$SECTIONS," == *",$1,"* ]]; }

# ---- paths and tools -----------------------------------------------------------

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
B="$BUILD/bench"
GOLUARUN="$BUILD/goluarun"

need() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' not found; $2"
}
need cc "install a C compiler (Debian: apt-get install -y build-essential)"
need taskset "install util-linux (Debian: apt-get install -y util-linux)"
need timeout "install coreutils"
need awk "install gawk or mawk"
if selected go_echo; then
  need go "install Go (Debian 12: apt-get install -y golang-go), or leave go_echo out with --only"
fi
if selected goluarun; then
  [ -x "$GOLUARUN" ] || die "$GOLUARUN not found or not executable: build it first
  (cmake -S . -B build && cmake --build build), set BUILD=dir, or run
  without it: --only go_echo,c_echo"
  [ -f "$ROOT/scripts/echo.lua" ] || die "scripts/echo.lua not found"
fi
NCPU=$(nproc)
if [ "$SERVER_CPU" -ge "$NCPU" ] || [ "$CLIENT_CPU" -ge "$NCPU" ]; then
  die "SERVER_CPU=$SERVER_CPU / CLIENT_CPU=$CLIENT_CPU: this machine has $NCPU CPUs"
fi
[ "$SERVER_CPU" != "$CLIENT_CPU" ] ||
  echo "run.sh: warning: server and client share CPU $SERVER_CPU" >&2

CLK_TCK=$(getconf CLK_TCK)
# The servers and loadgen need one fd per connection.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---- build -----------------------------------------------------------------------

build_tools() {
  mkdir -p "$B"
  local cflags=(-std=c11 -O2 -Wall -Wextra -Wshadow -Wmissing-prototypes
                -Wstrict-prototypes -Wundef)
  cc "${cflags[@]}" -o "$B/loadgen" "$HERE/loadgen.c"
  cc "${cflags[@]}" -o "$B/c_echo" "$HERE/c_echo.c"
  if selected go_echo; then
    # No module, own caches: works as root, offline, in CI.
    local goenv=(env GO111MODULE=off GOFLAGS= CGO_ENABLED=0
                 GOCACHE="$B/go-cache" GOPATH="$B/go-path")
    "${goenv[@]}" go build -o "$B/go_echo" "$HERE/go_echo.go"
    "${goenv[@]}" go build -o "$B/go_micro" "$HERE/go_micro.go"
  fi
}

echo "== building tools into $B"
build_tools || die "build failed"

STAMP=$(date +%Y%m%d-%H%M%S)
OUT="$B/results/$STAMP"
mkdir -p "$OUT"
RAW="$OUT/raw.txt"
LOG="$OUT/run.log"
: >"$RAW"
: >"$LOG"
{
  echo "date: $(date -Is)"
  echo "kernel: $(uname -srm)"
  echo "cpus: $NCPU ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo))"
  echo "cc: $(cc --version | head -n1)"
  if selected go_echo; then echo "go: $(go version)"; fi
  if selected goluarun; then echo "goluarun: $("$GOLUARUN" -v 2>&1 | head -n1 || true)"; fi
  echo "server cpu: $SERVER_CPU, client cpu: $CLIENT_CPU, reps: $REPS, echo: ${DUR}s"
} >"$OUT/versions.txt"

# ---- processes: only ours, by PID ------------------------------------------------

PIDS=()

forget_pid() {
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]+"${keep[@]}"}")
}

stop_pid() {          # stop_pid PID: TERM, then KILL after 5 s
  local pid=$1 i
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  forget_pid "$pid"
}

cleanup() {
  local p
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do
    kill -TERM "$p" 2>/dev/null || true
  done
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do
    sleep 0.2
    kill -KILL "$p" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'echo "run.sh: interrupted" >&2; exit 130' INT TERM

# ---- helpers ------------------------------------------------------------------------

NEXT_PORT=$((19000 + ($$ % 400) * 2))

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {          # sets PORT to a loopback port nobody listens on
  local tries
  for ((tries = 0; tries < 200; tries++)); do
    NEXT_PORT=$((NEXT_PORT + 1))
    [ "$NEXT_PORT" -lt 19999 ] || NEXT_PORT=19001
    if ! port_open "$NEXT_PORT"; then PORT=$NEXT_PORT; return 0; fi
  done
  die "no free port in 19001-19998"
}

server_cmd() {          # server_cmd NAME PORT: sets CMD
  case $1 in
    goluarun) CMD=("$GOLUARUN" -p 1 "$ROOT/scripts/echo.lua" "$2") ;;
    go_echo)  CMD=(env GOMAXPROCS=1 "$B/go_echo" "$2") ;;
    c_echo)   CMD=("$B/c_echo" "$2") ;;
  esac
}

# start_server NAME: picks a port, starts the server pinned on SERVER_CPU,
# waits (10 s at most) until the port accepts; sets SPID and PORT.
start_server() {
  local name=$1 i
  free_port
  server_cmd "$name" "$PORT"
  echo "## $(date +%T) start $name: taskset -c $SERVER_CPU ${CMD[*]}" >>"$LOG"
  taskset -c "$SERVER_CPU" "${CMD[@]}" >>"$LOG" 2>&1 &
  SPID=$!
  PIDS+=("$SPID")
  for ((i = 0; i < 200; i++)); do
    if ! kill -0 "$SPID" 2>/dev/null; then
      wait "$SPID" 2>/dev/null || true
      forget_pid "$SPID"
      tail -n 20 "$LOG" >&2
      die "$name exited before listening on port $PORT (log: $LOG)"
    fi
    port_open "$PORT" && return 0
    sleep 0.05
  done
  stop_pid "$SPID"
  die "$name did not accept on 127.0.0.1:$PORT within 10 s (log: $LOG)"
}

cpu_ticks() {           # utime + stime of PID (all threads), in clock ticks
  local stat rest
  stat=$(<"/proc/$1/stat")
  rest=${stat##*) }
  # shellcheck disable=SC2206
  local f=($rest)
  echo $((f[11] + f[12]))
}

# Ticks the two benchmark CPUs spent on anything but idle and iowait (user,
# nice, system, irq, softirq, steal). Minus the server's and the client's
# own CPU (which include the softirq work done in their context) this is the
# load of other processes, or of the hypervisor, that disturbed the run.
busy_ticks() {
  awk -v a="cpu$SERVER_CPU" -v b="cpu$CLIENT_CPU" \
    '$1 == a || $1 == b { s += $2 + $3 + $4 + $7 + $8 + $9 } END { print s + 0 }' /proc/stat
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

field() {               # field NAME LINE: value of NAME=value in LINE
  local kv
  for kv in $2; do
    [ "${kv%%=*}" = "$1" ] && { echo "${kv#*=}"; return 0; }
  done
  echo NA
}

now_ns() { date +%s%N; }

# ---- echo throughput ---------------------------------------------------------------

LOADGEN_LIMIT=$(awk -v d="$DUR" 'BEGIN { printf "%d", d + 60 }')

echo_run() {            # echo_run REP NAME: one measured run, one RUN line
  local rep=$1 name=$2 out t0 t1 n0 n1 b0 b1 line status=ok
  start_server "$name"
  # Warm-up: separate client run, not counted (page faults, JIT-free but
  # caches, Go's heap growth, goluarun's coroutine pool).
  taskset -c "$CLIENT_CPU" timeout "$LOADGEN_LIMIT" "$B/loadgen" -p "$PORT" \
    -c "$CONNS" -s "$SIZE" -d "$WARM" >>"$LOG" 2>&1 || status=warmup_failed
  t0=$(cpu_ticks "$SPID"); b0=$(busy_ticks); n0=$(now_ns)
  out=$(taskset -c "$CLIENT_CPU" timeout "$LOADGEN_LIMIT" "$B/loadgen" \
        -p "$PORT" -c "$CONNS" -s "$SIZE" -d "$DUR" 2>>"$LOG") || status=loadgen_failed
  if kill -0 "$SPID" 2>/dev/null; then
    t1=$(cpu_ticks "$SPID"); b1=$(busy_ticks); n1=$(now_ns)
  else
    status=server_died; t1=$t0; b1=$b0; n1=$n0
  fi
  stop_pid "$SPID"
  echo "$out" >>"$LOG"
  line=$(grep '^RESULT mode=echo' <<<"$out" || true)
  [ -n "$line" ] || { status=${status/ok/no_result}; line="RESULT reqs=0"; }
  local reqs rps errs bad cli p50 p99
  reqs=$(field reqs "$line"); rps=$(field rps "$line")
  errs=$(field errors "$line"); bad=$(field bad "$line")
  cli=$(field cli_cpu "$line"); p50=$(field p50_us "$line"); p99=$(field p99_us "$line")
  awk -v rep="$rep" -v name="$name" -v reqs="$reqs" -v rps="$rps" \
      -v ticks=$((t1 - t0)) -v busy=$((b1 - b0)) -v hz="$CLK_TCK" -v wall=$((n1 - n0)) \
      -v errs="$errs" -v bad="$bad" -v cli="$cli" -v p50="$p50" -v p99="$p99" \
      -v status="$status" 'BEGIN {
    cpu = ticks / hz
    usreq = (reqs > 0) ? cpu * 1e6 / reqs : "NA"
    cores = (wall > 0) ? cpu / (wall / 1e9) : "NA"
    other = (wall > 0 && cli != "NA") ? busy / hz / (wall / 1e9) - cores - cli : "NA"
    if (other != "NA" && other < 0) other = 0
    printf "RUN section=echo rep=%s server=%s rps=%s reqs=%s srv_us_per_req=%s " \
           "srv_cpu=%s cli_cpu=%s other_cpu=%s p50_us=%s p99_us=%s errors=%s bad=%s status=%s\n",
           rep, name, rps, reqs, usreq, cores, cli, other, p50, p99, errs, bad, status
  }' >>"$RAW"
  tail -n 1 "$RAW" | sed 's/^RUN /  /'
}

# A run during which other load took more than 0.15 of a core on the two
# benchmark CPUs is repeated (twice at most); the disturbed one stays in
# raw.txt as status=disturbed and is left out of the medians.
OTHER_LIMIT=0.15

echo_measured() {       # echo_measured REP NAME
  local attempt last
  for attempt in 1 2 3; do
    echo_run "$1" "$2"
    last=$(tail -n 1 "$RAW")
    awk -v o="$(field other_cpu "$last")" -v lim="$OTHER_LIMIT" \
      'BEGIN { exit !(o != "NA" && o + 0 > lim) }' || return 0
    [ "$attempt" -lt 3 ] || return 0
    sed -i '$ s/ status=ok$/ status=disturbed/' "$RAW"
    echo "  (disturbed by other load on the benchmark CPUs: repeating)"
  done
}

# Median (and min, max) of a field over RUN lines of one section and server.
stat_of() {             # stat_of SECTION SERVER FIELD -> "median min max n"
  awk -v sec="$1" -v srv="$2" -v fld="$3" '
    $1 == "RUN" {
      delete kv
      for (i = 2; i <= NF; i++) { split($i, p, "="); kv[p[1]] = p[2] }
      if (kv["section"] == sec && kv["server"] == srv && kv[fld] != "NA" &&
          kv[fld] != "" && (kv["status"] == "ok" || kv["status"] == ""))
        v[n++] = kv[fld] + 0
    }
    END {
      if (n == 0) { print "NA NA NA 0"; exit }
      for (i = 1; i < n; i++) { x = v[i]; for (j = i - 1; j >= 0 && v[j] > x; j--) v[j+1] = v[j]; v[j+1] = x }
      med = (n % 2) ? v[int(n/2)] : (v[n/2-1] + v[n/2]) / 2
      print med, v[0], v[n-1], n
    }' "$RAW"
}

sum_of() {              # sum of a field over every RUN line of a section/server
  awk -v sec="$1" -v srv="$2" -v fld="$3" '
    $1 == "RUN" {
      delete kv
      for (i = 2; i <= NF; i++) { split($i, p, "="); kv[p[1]] = p[2] }
      if (kv["section"] == sec && kv["server"] == srv) s += kv[fld]
    }
    END { print s + 0 }' "$RAW"
}

failed_runs() {
  awk -v sec="$1" -v srv="$2" '$1 == "RUN" && $0 ~ "section=" sec " " &&
      $0 ~ "server=" srv " " && $0 !~ / status=(ok|disturbed)$/ { n++ } END { print n + 0 }' "$RAW"
}

sep() {                 # sep W... : a markdown rule; -W: left-aligned column
  local w line="|"
  for w in "$@"; do
    if [ "$w" -lt 0 ]; then line+=$(printf '%*s' $((-w)) '' | tr ' ' -)
    else line+=$(printf '%*s' $((w - 1)) '' | tr ' ' -):; fi
    line+="|"
  done
  echo "$line"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "NA" || b == "NA" || b == 0) print "-"; else printf "%.2f", a / b }'; }

echo_table() {
  local s rps min max us cores cli other p50 p99 eb fails go_rps go_us
  read -r go_rps _ _ _ < <(stat_of echo go_echo rps)
  read -r go_us _ _ _ < <(stat_of echo go_echo srv_us_per_req)
  echo
  echo "### echo: ${SIZE} B messages, ${CONNS} connections, ${DUR} s runs, median of $REPS"
  echo "### server pinned to CPU $SERVER_CPU (1 thread / -p 1 / GOMAXPROCS=1), loadgen on CPU $CLIENT_CPU"
  echo
  local fmt="| %-8s | %9s | %17s | %10s | %7s | %7s | %7s | %7s | %7s | %7s | %8s | %11s |\n"
  # shellcheck disable=SC2059
  printf "$fmt" server "req/s" "[min-max]" "srv us/req" "srv CPU" "cli CPU" "other" \
    "p50 us" "p99 us" "err/bad" "rps/go" "us_req/go"
  sep -10 11 19 12 9 9 9 9 9 9 10 13
  for s in "${SERVERS[@]}"; do
    read -r rps min max _ < <(stat_of echo "$s" rps)
    read -r us _ _ _ < <(stat_of echo "$s" srv_us_per_req)
    read -r cores _ _ _ < <(stat_of echo "$s" srv_cpu)
    read -r cli _ _ _ < <(stat_of echo "$s" cli_cpu)
    read -r other _ _ _ < <(stat_of echo "$s" other_cpu)
    read -r p50 _ _ _ < <(stat_of echo "$s" p50_us)
    read -r p99 _ _ _ < <(stat_of echo "$s" p99_us)
    eb="$(sum_of echo "$s" errors)/$(sum_of echo "$s" bad)"
    fails=$(failed_runs echo "$s")
    [ "$fails" = 0 ] || eb="$eb !$fails"
    awk -v fmt="$fmt" -v s="$s" -v rps="$rps" -v min="$min" -v max="$max" -v us="$us" \
        -v cores="$cores" -v cli="$cli" -v other="$other" -v p50="$p50" -v p99="$p99" \
        -v eb="$eb" -v rr="$(ratio "$rps" "$go_rps")" -v ur="$(ratio "$us" "$go_us")" '
      function num(v, f) { return (v == "NA") ? "NA" : sprintf(f, v) }
      BEGIN {
        printf fmt, s, num(rps, "%.0f"),
          (rps == "NA") ? "" : sprintf("[%.0f-%.0f]", min, max),
          num(us, "%.2f"), num(cores, "%.2f"), num(cli, "%.2f"), num(other, "%.2f"),
          num(p50, "%.0f"), num(p99, "%.0f"), eb, rr, ur
      }'
  done
  awk -v lim="$OTHER_LIMIT" '$1 == "RUN" && $2 == "section=echo" {
      if ($0 ~ / status=disturbed/) { d++; next }
      for (i = 3; i <= NF; i++) if ($i ~ /^other_cpu=/) { split($i, p, "="); if (p[2] + 0 > lim) n++ }
    }
    END {
      if (d) printf "\nnote: %d run(s) disturbed by other load were repeated (status=disturbed in raw.txt)\n", d
      if (n) printf "\nwarning: %d counted run(s) had more than %s of a core of other load on the " \
                    "benchmark CPUs (column other): those figures are disturbed\n", n, lim
    }' "$RAW"
  if selected goluarun && selected go_echo; then
    local g_rps g_us c_us
    read -r g_rps _ _ _ < <(stat_of echo goluarun rps)
    read -r g_us _ _ _ < <(stat_of echo goluarun srv_us_per_req)
    read -r c_us _ _ _ < <(stat_of echo c_echo srv_us_per_req)
    echo
    awk -v r="$(ratio "$g_rps" "$go_rps")" -v u="$(ratio "$g_us" "$go_us")" \
        -v c="$(ratio "$g_us" "$c_us")" 'BEGIN {
      printf "target: goluarun throughput >= 1.00x go_echo: %sx  %s\n", r,
             (r != "-" && r + 0 >= 1.0) ? "PASS" : "FAIL"
      printf "target: goluarun CPU/request <= go_echo:      %sx  %s\n", u,
             (u != "-" && u + 0 <= 1.0) ? "PASS" : "FAIL"
      if (c != "-") printf "aim:    goluarun CPU/request vs c_echo:      %sx\n", c
    }'
  fi
}

# ---- idle memory ------------------------------------------------------------------------

idle_run() {            # idle_run NAME: one RUN line
  local name=$1 rss0 rss1 lout lpid i line open ok status=ok
  start_server "$name"
  rss0=$(rss_kib "$SPID")
  lout="$OUT/idle-$name.out"
  : >"$lout"
  taskset -c "$CLIENT_CPU" timeout 150 "$B/loadgen" -m idle -p "$PORT" \
    -c "$IDLE_CONNS" -s "$SIZE" -d "$IDLE_HOLD" >"$lout" 2>>"$LOG" &
  lpid=$!
  PIDS+=("$lpid")
  for ((i = 0; i < 1200; i++)); do       # READY within 60 s
    grep -q '^READY' "$lout" && break
    kill -0 "$lpid" 2>/dev/null || break
    sleep 0.05
  done
  if grep -q '^READY' "$lout" && kill -0 "$SPID" 2>/dev/null; then
    # Measured 1 s into the hold, after the servers' handlers have parked.
    sleep 1
    rss1=$(rss_kib "$SPID" 2>/dev/null || echo NA)
  else
    rss1=NA; status=not_ready
  fi
  wait "$lpid" 2>/dev/null || status=${status/ok/loadgen_failed}
  forget_pid "$lpid"
  kill -0 "$SPID" 2>/dev/null || status=server_died
  stop_pid "$SPID"
  cat "$lout" >>"$LOG"
  line=$(grep '^RESULT mode=idle' "$lout" || echo "RESULT open=0 ok=0")
  open=$(field open "$line"); ok=$(field ok "$line")
  awk -v name="$name" -v r0="$rss0" -v r1="$rss1" -v open="$open" -v ok="$ok" \
      -v conns="$IDLE_CONNS" -v status="$status" 'BEGIN {
    per = (r1 != "NA" && open > 0) ? sprintf("%.2f", (r1 - r0) / open) : "NA"
    if (ok + 0 != conns + 0 && status == "ok") status = "lost_connections"
    printf "RUN section=idle rep=1 server=%s conns=%s open=%s ok=%s rss_before_kib=%s " \
           "rss_held_kib=%s kib_per_conn=%s status=%s\n", name, conns, open, ok, r0, r1, per, status
  }' >>"$RAW"
  tail -n 1 "$RAW" | sed 's/^RUN /  /'
}

idle_table() {
  local s line
  echo
  echo "### idle: $IDLE_CONNS connections held open (one 64 B exchange each first), RSS from /proc/PID/status"
  echo
  printf "| %-8s | %11s | %11s | %9s | %11s | %-16s |\n" server "RSS before" "RSS held" "KiB/conn" "open/ok" status
  sep -10 13 13 11 13 -18
  for s in "${SERVERS[@]}"; do
    line=$(grep "^RUN section=idle .*server=$s " "$RAW" | tail -n 1 || true)
    [ -n "$line" ] || continue
    awk -v s="$s" -v r0="$(field rss_before_kib "$line")" -v r1="$(field rss_held_kib "$line")" \
        -v per="$(field kib_per_conn "$line")" -v o="$(field open "$line")/$(field ok "$line")" \
        -v st="$(field status "$line")" 'BEGIN {
      printf "| %-8s | %7.1f MiB | %7s MiB | %9s | %11s | %-16s |\n", s, r0 / 1024,
        (r1 == "NA") ? "NA" : sprintf("%.1f", r1 / 1024), per, o, st
    }'
  done
  if selected goluarun; then
    line=$(grep "^RUN section=idle .*server=goluarun " "$RAW" | tail -n 1 || true)
    local per; per=$(field kib_per_conn "$line")
    echo
    awk -v p="$per" 'BEGIN { printf "target: goluarun RSS per idle connection <= 1.75 KiB: %s KiB  %s\n", p,
      (p != "NA" && p + 0 <= 1.75) ? "PASS" : "FAIL" }'
  fi
}

# ---- scheduler micro-benchmarks ------------------------------------------------------------

micro_run() {           # micro_run REP IMPL
  local rep=$1 impl=$2 out status=ok
  if [ "$impl" = go ]; then
    out=$(env GOMAXPROCS=1 taskset -c "$SERVER_CPU" timeout 120 "$B/go_micro" 2>>"$LOG") || status=failed
  else
    out=$(taskset -c "$SERVER_CPU" timeout 120 "$GOLUARUN" -p 1 "$HERE/micro.lua" 2>>"$LOG") || status=failed
  fi
  echo "## micro $impl rep $rep" >>"$LOG"
  echo "$out" >>"$LOG"
  { grep '^RESULT bench=' <<<"$out" || true; } | while read -r line; do
    echo "RUN section=micro rep=$rep server=$impl bench=$(field bench "$line") n=$(field n "$line") ns_per_op=$(field ns_per_op "$line") cpu_ns_per_op=$(field cpu_ns_per_op "$line") status=$status"
  done >>"$RAW"
  [ "$status" = ok ] || echo "  micro $impl rep $rep: failed (see $LOG)"
}

micro_stat() {          # micro_stat IMPL BENCH -> median ns/op or NA
  awk -v impl="$1" -v b="$2" '
    $1 == "RUN" && $2 == "section=micro" {
      delete kv
      for (i = 2; i <= NF; i++) { split($i, p, "="); kv[p[1]] = p[2] }
      if (kv["server"] == impl && kv["bench"] == b && kv["ns_per_op"] != "NA") v[n++] = kv["ns_per_op"] + 0
    }
    END {
      if (n == 0) { print "NA"; exit }
      for (i = 1; i < n; i++) { x = v[i]; for (j = i - 1; j >= 0 && v[j] > x; j--) v[j+1] = v[j]; v[j+1] = x }
      print (n % 2) ? v[int(n/2)] : (v[n/2-1] + v[n/2]) / 2
    }' "$RAW"
}

micro_table() {
  local b g l
  echo
  echo "### micro: one P (GOMAXPROCS=1 / -p 1) on CPU $SERVER_CPU, ns per operation, median of $REPS"
  echo
  printf "| %-12s | %9s | %9s | %16s |\n" benchmark "go" "goluarun" "goluarun/go"
  sep -14 11 11 18
  for b in spawn pingpong coro_resume spawn_wait spawn_wg; do
    g=$(micro_stat go "$b"); l=$(micro_stat goluarun "$b")
    [ "$g" != NA ] || [ "$l" != NA ] || continue
    awk -v b="$b" -v g="$g" -v l="$l" -v r="$(ratio "$l" "$g")" 'BEGIN {
      printf "| %-12s | %9s | %9s | %16s |\n", b,
        (g == "NA") ? "-" : sprintf("%.1f", g), (l == "NA") ? "-" : sprintf("%.1f", l), r }'
  done
}

# ---- main ---------------------------------------------------------------------------

echo "== results in $OUT"
T_START=$(now_ns)

if section echo; then
  echo "== echo: ${SERVERS[*]} x $REPS reps (${WARM} s warm-up + ${DUR} s each)"
  for ((rep = 1; rep <= REPS; rep++)); do   # reps outside: drift hits all servers
    for s in "${SERVERS[@]}"; do echo_measured "$rep" "$s"; done
  done
fi

if section idle; then
  echo "== idle: $IDLE_CONNS connections per server, held ${IDLE_HOLD} s"
  for s in "${SERVERS[@]}"; do idle_run "$s"; done
fi

MICRO_IMPLS=()
selected go_echo && MICRO_IMPLS+=(go)
selected goluarun && MICRO_IMPLS+=(goluarun)
if section micro && [ ${#MICRO_IMPLS[@]} -gt 0 ]; then
  echo "== micro: ${MICRO_IMPLS[*]} x $REPS reps"
  for ((rep = 1; rep <= REPS; rep++)); do
    for m in "${MICRO_IMPLS[@]}"; do micro_run "$rep" "$m"; done
  done
fi

{
  echo "## goluarun benchmark suite — $(date -Is)"
  echo
  sed 's/^/    /' "$OUT/versions.txt"
  section echo && echo_table
  section idle && idle_table
  section micro && [ ${#MICRO_IMPLS[@]} -gt 0 ] && micro_table
  echo
  awk -v t="$(( ($(now_ns) - T_START) / 1000000 ))" 'BEGIN { printf "total %.0f s; raw figures: RAW\n", t / 1000 }' |
    sed "s|RAW|$RAW|"
} | tee "$OUT/summary.md"
