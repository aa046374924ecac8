/*
** prof.h — the sampling CPU profiler of every VM (Go: runtime/pprof's
** SIGPROF profile, with Lua's count hook instead of a signal-time unwind).
**
** Invariants and thread rules:
**  - One profile at a time per runtime: prof_start (or rt_run, when
**    rt->prof_run_hz asks for a profile of the whole run) takes it (rt->prof_on,
**    guarded by rt->prof_lock), prof_stop gives it back with the folded
**    stacks. Any thread may call them (a goroutine on any P).
**  - While a profile runs, the sampler thread (started by prof_start,
**    joined by prof_stop or prof_halt; it blocks every signal) wakes hz
**    times a second and looks at each P's atomics: a P running a goroutine
**    gets p->sample_want set and a SIGURG to its M; the preemption handler
**    (preempt.c) arms its count hook, and at the next Lua instruction the
**    hook calls prof_sample on that M, which walks the running coroutine's
**    stack with lua_getstack/lua_getinfo. No stack is ever walked from a
**    signal handler or from another thread. A P that is idle (blocked in
**    netpoll), in a blocking C call (P_SYSCALL) or in the scheduler's own
**    work gets a pseudo-frame counted by the sampler itself.
**  - p->sample_want is "" for a plain sample or a label ("OpenSSL") the P
**    published in p->cwhat (prof_c_enter/prof_c_leave, owner M) when the
**    sample was asked: the hook then adds "[C: label]" as the leaf frame.
**  - Each P's samples live in its table (p->prof_*), guarded by
**    p->prof_lock: the P's M inserts, prof_stop reads and empties. Samples
**    arriving after the stop (a hook armed just before) are dropped
**    (rt->prof_hz, 0 from the stop on, is checked under the table's lock);
**    rt->prof_on stays set until the tables are drained.
**  - Nothing runs while no profile runs: no thread, no signal, no hook; the
**    cost on the hot path is the relaxed stores of prof_c_enter/leave.
*/
#ifndef GLR_PROF_H
#define GLR_PROF_H

#include "sched.h"

#define PROF_HZ_DEFAULT 99
#define PROF_HZ_MAX 1000
#define PROF_MAX_FRAMES 64

/* prof_init / prof_free — the runtime's profiler state (rt_new / rt_free). */
GLR_INTERNAL void prof_init(rt *r);
GLR_INTERNAL void prof_free(rt *r);
/* prof_p_init / prof_p_free — a P's sample table (p_new / p_free). */
GLR_INTERNAL void prof_p_init(P *p);
GLR_INTERNAL void prof_p_free(P *p);
/* prof_start — begin sampling every P at hz (1..PROF_HZ_MAX). Returns 0, or
** -1 if a profile is already running, -2 if the thread cannot start. */
GLR_INTERNAL int prof_start(rt *r, int hz);
/* prof_stop — end the profile: the folded stacks ("p0;f (src:line);g
** (src:line) COUNT\n" per distinct stack), malloc'd (the caller frees),
** length in *len; NULL if no profile runs. */
GLR_INTERNAL char *prof_stop(rt *r, size_t *len);
/* prof_halt — stop the sampler thread (rt_run, before the Ms end); the
** samples stay for prof_stop. */
GLR_INTERNAL void prof_halt(rt *r);
/* prof_sample — p's M, from the count hook: record L's stack. */
GLR_INTERNAL void prof_sample(P *p, struct lua_State *L, const char *cwhat);

/* prof_late — p's M, after lua_resume returned: a sample asked while the
** goroutine ran that its hook did not take (it parked, yielded or ended
** first) is taken from its suspended thread L (where it stopped). */
static inline void prof_late(P *p, struct lua_State *L) {
  if (GLR_LIKELY(!atomic_load_explicit(&p->sample_want, memory_order_relaxed))) return;
  const char *c = atomic_exchange(&p->sample_want, NULL);
  if (c) prof_sample(p, L, c);
}

/* prof_c_enter / prof_c_leave — p's M: C work labelled `what` (a string
** literal) runs now, outside Lua; a sample asked meanwhile names it. */
static inline void prof_c_enter(P *p, const char *what) {
  atomic_store_explicit(&p->cwhat, what, memory_order_relaxed);
}
static inline void prof_c_leave(P *p) {
  atomic_store_explicit(&p->cwhat, NULL, memory_order_relaxed);
}

#endif
