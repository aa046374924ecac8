/*
** preempt.h — asynchronous preemption of goroutines that run too long
** (Go: sysmon's retake + preemptM, with Lua's count hook instead of
** async safe points).
**
** Invariants:
**  - A P's exec_seq changes at every execute; sysmon (the only caller of
**    preempt_check) remembers per P the seq it saw and since when, and when
**    one execution has lasted PREEMPT_NS (PREEMPT_TIMER_NS when one of the
**    P's timers is already due, so tickers keep their schedule) it sends
**    SIGURG to the P's M.
**  - The SIGURG handler runs on that M. It only reads the P's atomics and
**    calls lua_sethook (which Lua allows from signal handlers) on the
**    innermost running coroutine (p->curL): a hookless thread gets
**    bare_hook (count 1; p->hooked_L); a thread with the user's hook (set
**    through debug.sethook: preempt_user_hook) keeps it and gets the
**    request p->req_L, delivered after its next line event if it traces
**    lines, else its next count event; one tracing only calls/returns gets
**    user_tmp, the user's hook plus our count bit (p->tmpcount_L). Never
**    at a function's first instruction (right after a call event: Lua would
**    report the call again on resuming). A thread with a C module's own
**    hook is not preempted. The user's call, return and line events are
**    exactly lua's (and count events with a count of 1); a count > 1
**    restarts where the thread was preempted. debug.gethook never shows
**    ours.
**  - A thread that yielded from one of our hooks keeps a count hook
**    (bare_after, user_after) until it has run two instructions again:
**    Lua clears its "hook yielded" frame mark only when it traces the frame.
**  - Every lua_sethook of ours outside the handler runs with p->hook_busy
**    set, which the handler respects (it returns; sysmon asks again).
**  - A request carries what was asked, in flags of the P: a profiler
**    sample (sample_want), SIGINT's interrupt (interrupt_req, signal.h:
**    raises "interrupted!" there, as lua's Ctrl-C) and a preemption or a
**    stop (preempt_want: sysmon's slice check, preempt_stop). The hook that
**    delivers it takes the sample, raises the interrupt, then yields if a
**    preemption is wanted; the handler ignores a SIGURG nobody asked for.
**  - The yield happens where the goroutine can park (sched_can_park: not
**    inside a C call that cannot yield), with Y_PREEMPT; the replacement
**    coroutine library forwards that yield like any runtime yield and the G
**    goes to the back of its run queue.
**  - No hook or request of ours outlives the thread's run: preempt_unhook
**    (a coroutine stopped) and preempt_clear (execute returned) remove them.
*/
#ifndef GLR_PREEMPT_H
#define GLR_PREEMPT_H

#include <lua.h>

#include "sched.h"

#define PREEMPT_NS (10 * NS_PER_MS)     /* longest slice */
#define PREEMPT_TIMER_NS (1 * NS_PER_MS) /* slice when a timer of the P is due */

/* preempt_init — install the SIGURG handler (always: with GOLUA_NOPREEMPT=1
** sysmon just sends no slice preemptions). */
GLR_INTERNAL void preempt_init(rt *r);
/* preempt_check — sysmon: signal the Ms whose goroutine ran too long;
** returns whether some P is running a goroutine. */
GLR_INTERNAL bool preempt_check(rt *r, int64_t now);
/* preempt_stop — sysmon, once the runtime stops: SIGURG to every M running
** Lua; the hook yields wherever the goroutine can park (a stop is final:
** the scheduler then runs nothing more), and sysmon asks again each round
** while it cannot. */
GLR_INTERNAL void preempt_stop(rt *r);
/* preempt_clear — after lua_resume returns on p's M: drop a stale hook. */
GLR_INTERNAL void preempt_clear(P *p);
/* preempt_unhook — L stopped running (a user coroutine returned or yielded):
** drop our hook from it so the enclosing code can be preempted again. */
GLR_INTERNAL void preempt_unhook(P *p, struct lua_State *L);
/* preempt_fix_inherited — NL, just created, inherited its creator's hook:
** drop what of it is ours (a request's hook, the added count bit). */
GLR_INTERNAL void preempt_fix_inherited(P *p, struct lua_State *NL);
/* preempt_user_hook — the C hook behind debug.sethook (bindings/ldbhook.c):
** calls registry._HOOKKEY[thread] as the standard library's hook does, and
** delivers a pending preemption after a line or count event. */
GLR_INTERNAL void preempt_user_hook(struct lua_State *L, struct lua_Debug *ar);
/* preempt_sethook — L1's user hook (mask 0: none), safe against SIGURG;
** owner M. */
GLR_INTERNAL void preempt_sethook(struct lua_State *L1, int mask, int count);
/* preempt_gethook — L1's hook as the user set it: NULL, preempt_user_hook
** or a C module's; *mask / *count without any bit of ours. */
GLR_INTERNAL lua_Hook preempt_gethook(struct lua_State *L1, int *mask, int *count);

#endif
