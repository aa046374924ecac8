/*
** config.h — the runtime's settings, read from the environment once.
**
** Invariants:
**  - config_from_env is the only reader of GOLUA_* variables and of
**    systemd's LISTEN_PID/LISTEN_FDS (which it then unsets); it runs once,
**    before rt_new, on the main thread. The executable then overrides the
**    result with its command-line flags (main.c: -p) and hands it to rt_new,
**    which copies it into rt->cfg: const from then on, read by any thread.
**  - A malformed value is ignored: reported on stderr where it always was
**    (GOLUA_MAXPROCS) and for GOLUA_MEMLIMIT, otherwise read as C's
**    atoi/atof read it.
**  - RT_CONFIG_DEFAULTS is the configuration with no variable set (C tests
**    start from it, so the environment never changes what they test).
*/
#ifndef GLR_CONFIG_H
#define GLR_CONFIG_H

#include "common.h"

#define CONFIG_MAXPROCS 256         /* Ps: 1..CONFIG_MAXPROCS */
#define CONFIG_MAXTHREADS_DEFAULT 256
#define CONFIG_GRACE_DEFAULT 5.0    /* seconds */
#define CONFIG_MAXLISTENFDS 256   /* inherited listeners (LISTEN_FDS) at most */
#define CONFIG_MCAPWAIT_DEFAULT 10000 /* ms: thread-limit starvation before the fatal error */

typedef struct rt_config {
  const char *progname; /* prefix of the main goroutine's errors (lua's
                        ** progname: the executable's argv[0]); static */
  int nprocs;          /* GOLUA_MAXPROCS / -p N; 0 = one per online CPU */
  int maxthreads;      /* GOLUA_MAXTHREADS: cap on Ms (raised to nprocs) */
  bool preempt;        /* asynchronous preemption; GOLUA_NOPREEMPT=1 clears */
  double grace;        /* GOLUA_GRACE: seconds between SIGINT/SIGTERM and exit */
  int schedtrace_ms;   /* GOLUA_DEBUG=schedtrace=MS; 0 = off */
  int mcapwait_ms;     /* GOLUA_DEBUG=mcapwait=MS: how long every M may sit in
                       ** blocking calls with work waiting (handoff.h) */
  bool mock_eagain_r;  /* GOLUA_MOCKEAGAIN contains r: one-byte reads */
  bool mock_eagain_w;  /* GOLUA_MOCKEAGAIN contains w: one-byte writes */
  int64_t memlimit;    /* GOLUA_MEMLIMIT: bytes all VMs may hold; 0 = no limit */
  /* GOLUA_CHAOS=SEED[:RATE]: each socket call gets a random fault (sockio.c)
  ** with probability RATE (default CONFIG_CHAOS_RATE) */
  uint64_t chaos_seed;
  uint32_t chaos_ppm;  /* RATE in parts per million; 0 = off */
  /* GOLUA_ALLOCFAIL=N: a goroutine's Nth growing allocation (counted over the
  ** process) fails; GOLUA_ALLOCFAIL=SEED:RATE: each one fails with
  ** probability RATE. Each failure also fails the next growth of that VM,
  ** Lua's retry after its emergency collection (memlimit.c). */
  int64_t allocfail_nth;   /* 0 = not by count */
  uint64_t allocfail_seed;
  uint32_t allocfail_ppm;  /* 0 = not at random */
  /* LISTEN_FDS (systemd socket activation, go.exec's files) when LISTEN_PID
  ** is this process: fds 3 .. 3+listen_fds-1 are inherited listening
  ** sockets that net.listen adopts (bindings/lnet.c); 0 = none */
  int listen_fds;
  const char *debug_addr;  /* GOLUA_DEBUG_ADDR=host:port: the debug endpoint
                           ** (goluarun.pprof.serve) around the main script;
                           ** points into the environment, NULL = none */
} rt_config;

#define CONFIG_CHAOS_RATE 0.02

#define RT_CONFIG_DEFAULTS                                                 \
  ((rt_config){.nprocs = 0, .maxthreads = CONFIG_MAXTHREADS_DEFAULT,        \
               .preempt = true, .grace = CONFIG_GRACE_DEFAULT,                \
               .mcapwait_ms = CONFIG_MCAPWAIT_DEFAULT})

/* config_from_env — c = RT_CONFIG_DEFAULTS overridden by the GOLUA_*
** variables. skip_maxprocs: leave GOLUA_MAXPROCS unread (the command line
** chose the Ps, or -E said to ignore the environment). A bad GOLUA_MAXPROCS
** is reported as "<progname>: GOLUA_MAXPROCS must be 1..256; ignored", a
** bad GOLUA_MEMLIMIT as "<progname>: GOLUA_MEMLIMIT=<value>: must be a
** number of bytes with an optional KiB/MiB/GiB/TiB suffix, or off; ignored",
** a bad GOLUA_CHAOS or GOLUA_ALLOCFAIL as "<progname>: GOLUA_CHAOS=<value>:
** must be SEED[:RATE] ...; ignored" (the switch stays off). */
GLR_INTERNAL void config_from_env(rt_config *c, const char *progname, bool skip_maxprocs);
/* config_parse_bytes — "123", "64MiB", "1GiB" (B, KiB, MiB, GiB, TiB, as
** Go's GOMEMLIMIT) -> bytes > 0, or -1 if malformed or out of range. */
GLR_INTERNAL int64_t config_parse_bytes(const char *s);
/* config_nprocs — c->nprocs, or one per online CPU (1..CONFIG_MAXPROCS). */
GLR_INTERNAL int config_nprocs(const rt_config *c);

#endif
