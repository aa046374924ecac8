/*
** sysmon.h — the monitor thread (Go: sysmon), the scheduler trace (Go:
** GODEBUG=schedtrace) and the statistics snapshot behind go.stats.
**
** Invariants and thread rules:
**  - sysmon is one thread per runtime, started by rt_run (sysmon_start) and
**    joined after the stop (sysmon_join). It blocks every signal. It reads
**    atomics and published figures only and never touches a VM (but for
**    the thread-exhaustion report, handoff.h, from Ps it took, before it
**    exits the process); what it acts on it hands to preempt.c
**    (preempt_check: SIGURG to a long slice) and handoff.c (handoff_retake:
**    Ps stuck in blocking calls; handoff_starved: thread exhaustion). It
**    also ends a shutdown whose grace period no P could end (signal.h).
**    It runs until rt_run's M0 is done (rt->run_done), not just until the
**    stop: while the runtime stops it asks every P still running Lua to
**    leave it (preempt_stop) every STOP_ROUND_NS, and SIGNAL_EXIT_SLACK_NS
**    after the stop, if rt_run has not returned, it _exits with the stop's
**    code (a stop is final). When
**    nothing counts as progress and every P is blocked in netpoll, it
**    breaks P0's netpoll so P0 runs the exit/deadlock check.
**  - Period: doubles from SYSMON_MIN_US to SYSMON_MAX_US (SYSMON_BUSY_MAX_US
**    while a goroutine runs or a P in a blocking call has work). After 20
**    rounds with every P blocked in netpoll it sleeps on rt->sysmon_cond
**    (rt->sysmon_deep set, guarded by rt->sysmon_lock) until sysmon_wake,
**    sysmon_kick, the next trace line, or 1 s.
**  - Statistics: each P publishes its owner-M counters into p->pub
**    (sched_publish: at each 61st scheduling round, before sleeping, before
**    a blocking call, on go.stats); sysmon_stats sums the published
**    figures from any thread. The figures of different Ps are not one
**    consistent instant.
*/
#ifndef GLR_SYSMON_H
#define GLR_SYSMON_H

#include "sched.h"

#define SYSMON_MIN_US 20
#define SYSMON_MAX_US 10000
#define SYSMON_BUSY_MAX_US 2000 /* while a goroutine runs: preemption checks */

/* proc_stats — one P's published figures. */
typedef struct proc_stats {
  int goroutines;   /* live goroutines */
  int runq;         /* runnable goroutines queued */
  int npollwait;    /* goroutines parked on a pollDesc */
  int portable;     /* portable goroutines queued on it (stealable) */
  int timers;       /* timers armed on its heap */
  int64_t lua_bytes; /* its VM's Lua memory (memlimit_vm_bytes, published by the P) */
  pstats st;        /* spawned, created, steals, preemptions, handoffs, conns, bytes */
} proc_stats;

/* rt_stats — the runtime's figures: every P's summed, plus its own. */
typedef struct rt_stats {
  proc_stats total; /* the sum over every P */
  int nprocs;
  int idleprocs;    /* Ps blocked in netpoll */
  int threads;      /* Ms, pool threads included */
  int64_t progress; /* rt->n_progress (sched.h) */
} rt_stats;

/* sysmon_init / sysmon_free — its lock and condition (rt_new / rt_free). */
GLR_INTERNAL void sysmon_init(rt *r);
GLR_INTERNAL void sysmon_free(rt *r);
/* sysmon_start — start the thread (rt_run; throws if it cannot). */
GLR_INTERNAL void sysmon_start(rt *r);
/* sysmon_join — wait for it to see the stop and exit (rt_run). */
GLR_INTERNAL void sysmon_join(rt *r);
/* sysmon_wake — end a deep sleep (a P became busy). Any thread. */
GLR_INTERNAL void sysmon_wake(rt *r);
/* sysmon_kick — wake it unconditionally (rt_stop). Any thread. */
GLR_INTERNAL void sysmon_kick(rt *r);
/* sysmon_stats — fill s (and per_p[0..nprocs-1] unless NULL) from the
** published figures. Any thread. */
GLR_INTERNAL void sysmon_stats(rt *r, rt_stats *s, proc_stats *per_p);

#endif
