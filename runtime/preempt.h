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
**    innermost running coroutine (p->curL), saving the user's own hook.
**  - The hook restores the user's hook at once and, where the goroutine can
**    park (sched_can_park: not inside a C call that cannot yield), yields with
**    Y_PREEMPT; the replacement coroutine library forwards that yield like
**    any runtime yield and the G goes to the back of its run queue.
**  - The same hook raises "interrupted!" (lua's Ctrl-C) when the P's
**    interrupt_req is set (signal.h), wherever the code runs, and yields
**    for good once the runtime stops (preempt_stop).
**  - No hook is installed while nothing needs preempting; a hook left on a
**    thread that stopped running is removed when execute returns.
*/
#ifndef GLR_PREEMPT_H
#define GLR_PREEMPT_H

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
/* preempt_fix_inherited — a coroutine created while our hook was on its
** creator inherited it: give it the user's hook instead. */
GLR_INTERNAL void preempt_fix_inherited(P *p, struct lua_State *NL);

#endif
