/*
** handoff.h — Ms without Ps: the blocking-call hand-off, the M pool and
** sysmon's retake (Go: entersyscall / exitsyscall, handoffp, retake,
** mget / mput, stoplockedm's "wait for that P").
**
** A P is held by exactly one M at a time (p->m). p->pstatus:
**   P_RUNNING  held; the holder runs the scheduler or a goroutine.
**   P_SYSCALL  the holder is inside handoff_enter..handoff_exit (a blocking
**              C call) and touches no Lua state of the VM.
**   P_FREE     nobody holds it (its holder left at stop).
** Transitions:
**   holder   RUNNING -> SYSCALL             handoff_enter
**   holder   SYSCALL -> RUNNING (CAS)       handoff_exit, fast path
**   sysmon   SYSCALL -> RUNNING (CAS)       handoff_retake: the P goes to an
**            idle or new pool M, after HANDOFF_NS and only if the P has work
**   holder   gives the P to the first M of p->hwaiters, under p->hlock, at a
**            scheduling point (between two goroutine slices: sched_loop)
**   holder   RUNNING -> FREE under p->hlock when it leaves at stop with no
**            waiter                       handoff_release
**   returner FREE -> RUNNING under p->hlock: the P it waits for was left
**                                         wait_for_p (handoff_exit)
**   sysmon   RUNNING -> SYSCALL under p->hlock: no thread for the retaken P
**            and no waiter, so it goes back to its blocked M  handoff_retake
** Every change goes through p_cas_status (the two racing CASes) or
** p_set_status (the moves only the caller can make), in handoff.c, which
** abort on a move not in this table.
** An M returning from a blocking call whose P was taken appends itself to
** p->hwaiters, breaks the P's netpoll, and sleeps on its own condition
** variable until a holder grants it THAT P: the goroutine's C frames live
** on this M's stack, so no other P will do. No M runs a nested scheduler.
**
** Ms: M0 (the process's main thread, which must return from rt_run) never
** joins the idle pool: when it gives P0 away between slices it waits to get
** P0 back. Every other M that gives its P away goes idle in r->midle until
** sysmon hands it a P. At most r->maxm Ms exist (cfg.maxthreads:
** GOLUA_MAXTHREADS, default 256); past the cap a blocking call keeps its P and the VM waits for it.
**
** Thread exhaustion (Go: "fatal error: thread exhaustion"): when no M can
** be had (the cap reached, none idle), every P is P_SYSCALL (so every M is
** inside a blocking call or waiting for a P whose M is), some P has work
** ready (run queue, inbox, a due timer, portable work, a waiting M) and no
** blocking call has a deadline of its own, nothing can run until a call
** returns by itself. When that has lasted cfg.mcapwait_ms (GOLUA_DEBUG=
** mcapwait=MS, default 10 s) sysmon (handoff_starved) takes every P by the
** SYSCALL -> RUNNING CAS, which gives it the VMs (their Ms touch no Lua
** state in a call, and one that returns waits for its P), prints
** "fatal error: all threads are blocked in C calls (GOLUA_MAXTHREADS=K)"
** and every goroutine, the blocked ones as [syscall: <what>], and exits
** with status 2. The stretch starts again whenever a goroutine ran or
** a call came back on some P (its exec_seq moved), so a run of short calls
** at the cap is never taken for one long one. An M's sys_state:
** M_SYS_NONE, M_SYS_IN_C (between handoff_enter and handoff_exit),
** M_SYS_BACK (returned, waiting for its P).
**
** Exit: rt_run waits until every M other than M0 has exited its scheduler
** or is inside a blocking call (r->nlive == 0); an M that returns from a
** blocking call after that sleeps for good (Go: goroutines still in a
** system call when main returns are abandoned), and rt_free then leaves
** the VMs alone.
**
** Thread-locals: the calling thread's M (handoff_current_m) and the P it
** holds (sched_current_p: NULL inside a blocking call, so a late SIGURG
** finds nothing to hook).
*/
#ifndef GLR_HANDOFF_H
#define GLR_HANDOFF_H

#include "sched.h"

/* pstatus — the values of p->pstatus (above). */
enum pstatus { P_RUNNING = 0, P_SYSCALL = 1, P_FREE = 2 };

#define HANDOFF_NS (20 * NS_PER_US) /* sysmon retakes after this long */

/* handoff_init — Ms of rt_new (M0..Mn-1 for P0..Pn-1) and the cap. */
GLR_INTERNAL void handoff_init(rt *r);
/* handoff_start — start M1..Mn-1 (M0 is the caller). */
GLR_INTERNAL void handoff_start(rt *r);
/* handoff_wait_ms — on M0 after its loop: wait for the other Ms (above). */
GLR_INTERNAL void handoff_wait_ms(rt *r);
/* handoff_stop — wake idle Ms so they exit (from rt_stop, any thread). */
GLR_INTERNAL void handoff_stop(rt *r);
/* handoff_blocked — some M is inside a blocking call (it may still touch
** its VM's memory and the runtime: rt_free must leave them alone). */
GLR_INTERNAL bool handoff_blocked(rt *r);
/* handoff_free — free every M (none blocked). */
GLR_INTERNAL void handoff_free(rt *r);

enum { M_SYS_NONE = 0, M_SYS_IN_C = 1, M_SYS_BACK = 2 };

/* handoff_enter / handoff_exit — bracket a blocking call on the M holding
** p, inside a goroutine. Nested pairs count; only the outer one acts. what
** names the call for reports (a static string); until is when it ends by
** itself (its deadline), DEADLINE_NONE if unknown. */
GLR_INTERNAL void handoff_enter(P *p, const char *what, int64_t until);
GLR_INTERNAL void handoff_exit(P *p);
/* handoff_give — the holder, between slices, grants p to the first waiter.
** true: this M holds p again (M0 waited for it); false: it must go idle. */
GLR_INTERNAL bool handoff_give(P *p);
/* handoff_release — the holder leaves p at stop (to a waiter, or FREE). */
GLR_INTERNAL void handoff_release(P *p);
/* handoff_retake — sysmon: retake Ps stuck in blocking calls; returns how
** many Ps in a blocking call have work (sysmon then keeps a short period;
** work that arrives for the others is seen at its next, longer round). */
GLR_INTERNAL int handoff_retake(rt *r, int64_t now);
/* handoff_starved — sysmon, each round: watch for thread exhaustion
** (above); past cfg.mcapwait_ms of it, report and exit 2 (no return). */
GLR_INTERNAL void handoff_starved(rt *r, int64_t now);

/* handoff_park — a G parked on this M (sched.c's park_on_m, where Lua
** cannot yield): as handoff_enter (what: the wait reason), then p goes to
** an idle or new M at once (no 20 us wait for sysmon: the wait has no end
** of its own); this M sleeps until handoff_wake_parked posts it
** (m->onm_woken, cleared by the caller before the G's commit), then takes
** p back (handoff_exit). At the M cap p stays P_SYSCALL and sysmon's
** retake gives it away once it has work. */
GLR_INTERNAL void handoff_park(P *p, const char *what);
/* handoff_wake_parked — the P's holder (sched_ready) readied the G parked
** on m: post m (the flag, then its wake eventfd) */
GLR_INTERNAL void handoff_wake_parked(M *m);

/* handoff_current_m — the calling thread's M (NULL on foreign threads). */
GLR_INTERNAL M *handoff_current_m(void);
/* handoff_wakefd — the calling M's eventfd for non-yieldable waits
** (created on first use), or -1. */
GLR_INTERNAL int handoff_wakefd(void);

#endif
