/*
** signal.h — process signals, graceful shutdown, closers and goroutine
** dumps (Go: os/signal's default handling, SIGQUIT's traceback dump).
**
** Invariants and thread rules:
**  - Handlers (any thread, async-signal context) only set atomics, break
**    a netpoll or send SIGURG: a signal some VM subscribed to (go.signal;
**    rt->sig_nsub counts the VMs) sets the bit in each subscribing P's
**    sig_pend and breaks it, and that P's M sends the name to the channels
**    (rt->sig_deliver) at its next round. An unsubscribed SIGINT with no
**    closer anywhere (no listener) sets interrupt_req on every P running
**    Lua and sends it SIGURG: preempt.c's hook raises "interrupted!"
**    (if no P runs Lua it is a shutdown signal). Otherwise SIGINT/SIGTERM set rt->signal_pending and rt->signal_when
**    and break every P; SIGQUIT
**    sets every P's dump_req and breaks it; a second SIGINT/SIGTERM exits at
**    once with 128+signo. SIGPIPE has an empty handler (writes fail with
**    EPIPE; exec'd children get the default back). SIGURG is preempt.c's.
**  - They find the runtime through the one process-wide pointer of this
**    file (signal.c: signal_rt), set by signal_install and cleared by
**    signal_forget before the runtime is freed.
**  - The work happens later on Ps' own Ms, from find_runnable: the first
**    P in its loop takes rt->signal_pending (atomic exchange) and runs
**    signal_handle (asks every P to run its closers, arms rt->grace_timer
**    on its own heap: rt->cfg.grace seconds, then exit 1); each P runs
**    signal_run_closers and signal_dump_on_request itself, the only thread
**    that may walk its VM.
**  - The grace period ends the process even when no P can run its timer
**    (every M stuck in blocking calls): sysmon calls signal_grace_expired
**    itself past signal_grace_end + SIGNAL_GRACE_SLACK_NS, and, as after
**    any stop, if rt_run has not returned SIGNAL_EXIT_SLACK_NS after the
**    stop, it _exits with the exit code (sysmon.c). signal_grace_expired
**    acts once (rt->grace_done).
**  - The graceful shutdown's closers drain: a listener drops new SYNs and
**    closes at its first empty accept queue (bindings/lnet.c), a conn
**    marked idle closes if it has nothing to read (bindings/conn.c).
**  - signal_dump_taken is the one dump from a thread that is not the P's
**    M: sysmon, holding the P it took from a blocked M (handoff.h, thread
**    exhaustion). It stops the VM's collector first, so no finalizer runs
**    there.
**  - closer lists: a P's own (p->closers, owner M only). A closer is
**    unlinked before it runs, so it may free itself.
**  - Dumps are printed under rt->dump_lock, so two Ps never interleave.
*/
#ifndef GLR_SIGNAL_H
#define GLR_SIGNAL_H

#include "sched.h"

/* closer — something to close on graceful shutdown (listeners). Linked in
** its P's list; owner M only. Layout-compatible with glr_shutdown_hook. */
struct closer {
  void (*fn)(struct lua_State *L, closer *c);
  closer *next, *prev;
};

/* signal_install — route SIGINT/SIGTERM/SIGQUIT/SIGPIPE (and SIGURG, via
** preempt_init) to r. Main thread, before rt_run. */
GLR_INTERNAL void signal_install(rt *r);
/* signal_set_handler — install handler for sig, SA_RESTART, nothing
** masked (every runtime signal is installed this way) */
GLR_INTERNAL void signal_set_handler(int sig, void (*handler)(int));
/* signal_forget — r is going away: its signals are no longer routed. */
GLR_INTERNAL void signal_forget(rt *r);
#define SIGNAL_GRACE_SLACK_NS (100 * NS_PER_MS) /* the P's timer goes first */
#define SIGNAL_EXIT_SLACK_NS (250 * NS_PER_MS)  /* after a stop, for rt_run to return */

/* signal_handle — p's M: act on a pending SIGINT/SIGTERM (shutdown), if
** no other P took it first. */
GLR_INTERNAL void signal_handle(P *p);
/* signal_grace_end — when the grace period of the first SIGINT/SIGTERM
** ends, DEADLINE_NONE before any. Any thread. */
GLR_INTERNAL int64_t signal_grace_end(rt *r);
/* signal_grace_expired — say so and stop with status 1, once. Any thread. */
GLR_INTERNAL void signal_grace_expired(rt *r);
/* signal_run_closers — p's M: run and unlink every closer of p. */
GLR_INTERNAL void signal_run_closers(P *p);
/* signal_dump_on_request — p's M: SIGQUIT asked for p's goroutines. */
GLR_INTERNAL void signal_dump_on_request(P *p);
/* signal_dump_goroutines — p's M: print p's goroutines with tracebacks
** (the caller holds rt->dump_lock). */
GLR_INTERNAL void signal_dump_goroutines(P *p);
/* signal_dump_taken — the same from a thread holding p it took from a
** blocked M (above); why(g, ud) names a goroutine's state, NULL: the
** usual one. The VM's collector stays stopped: the process is ending. */
GLR_INTERNAL void signal_dump_taken(P *p, const char *(*why)(G *g, void *ud), void *ud);
/* signal_by_name / signal_name — "SIGHUP" <-> SIGHUP for the signals
** go.signal may subscribe to (0 / NULL for any other). */
GLR_INTERNAL int signal_by_name(const char *name);
GLR_INTERNAL const char *signal_name(int sig);
/* signal_subscribe — p's M: its VM now subscribes to mask (bit signo): the
** first subscriber of a signal anywhere installs its handler, the last
** restores its default (SIGINT/SIGTERM: the graceful shutdown). */
GLR_INTERNAL void signal_subscribe(P *p, uint64_t mask);
/* signal_deliver — p's M, between slices: hand the subscribed signals
** that arrived to rt->sig_deliver. */
GLR_INTERNAL void signal_deliver(P *p);
/* closers of p (owner M only); they are counted in rt->nclosers (a
** process with none takes SIGINT as an interrupt) */
GLR_INTERNAL void signal_closer_add(P *p, closer *c);
GLR_INTERNAL void signal_closer_del(P *p, closer *c);

#endif
