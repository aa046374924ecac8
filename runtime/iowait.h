/*
** iowait.h — parking goroutines on pollDescs, with deadlines (Go:
** poll_runtime_pollWait, pollSetDeadline, pollUnblock, netpolldeadlineimpl).
**
** Invariants:
**  - Everything here runs on the M holding the pollDesc's owner P.
**  - The effective deadline of a wait is the earlier of the persistent user
**    deadline (rd_user / wd_user) and the operation's own (rd_op / wd_op);
**    DEADLINE_NONE means none. A deadline in the past fails the operation
**    before any system call (iowait_check), even when data is ready.
**  - While a G waits with a deadline, the pollDesc's timer for that mode is
**    armed; changing the deadline re-arms it, or wakes the G with a timeout
**    if the new deadline has passed. Waking disarms it.
**  - iowait_close marks the pollDesc closing and wakes both waiters with
**    WAKE_CLOSED; the owner frees the pollDesc only after every operation
**    that could touch it has left (the conn's op count, see bindings/conn.h).
*/
#ifndef GLR_IOWAIT_H
#define GLR_IOWAIT_H

#include "pd.h"
#include "sched.h"

typedef int (*iowait_k)(struct lua_State *L, int status, intptr_t ctx);

/* iowait_check — WAKE_CLOSED, WAKE_TIMEOUT (deadline passed) or 0. */
GLR_INTERNAL int iowait_check(pollDesc *pd, int mode, int64_t opdl);
/* iowait_park — park the running G until pd is ready for mode, closed, or
** the deadline passes; then k runs (also directly, without parking, when a
** readiness was pending). Returns -errno without yielding if the fd cannot
** be registered (e.g. a regular file). */
GLR_INTERNAL int iowait_park(struct lua_State *L, pollDesc *pd, int mode,
                             int64_t opdl, intptr_t ctx, iowait_k k);
/* iowait_block — the same wait where L cannot yield (a table.sort
** comparator, a metamethod called from C): the P is handed off (handoff.h)
** while this M blocks in ppoll(2) on the fd and its wake eventfd, which
** iowait_close and deadline changes kick; then k's iowait_result reports
** as usual. Returns 0, or -errno if the fd cannot be polled. */
GLR_INTERNAL int iowait_block(struct lua_State *L, pollDesc *pd, int mode, int64_t opdl);
/* iowait_result — in k: WAKE_READY, WAKE_TIMEOUT, WAKE_CLOSED or
** WAKE_CANCELLED (the G's group was cancelled: group.h). Clears the
** wait slot and the operation deadline. */
GLR_INTERNAL int iowait_result(struct lua_State *L, pollDesc *pd, int mode);
/* iowait_setdeadline — set the persistent deadline of a mode (or both). */
GLR_INTERNAL void iowait_setdeadline(P *p, pollDesc *pd, int mode, int64_t d);
/* iowait_close — closing + wake all waiters with WAKE_CLOSED + deregister. */
GLR_INTERNAL void iowait_close(P *p, pollDesc *pd);
/* iowait_wake — unblock one direction (netpoll, timers, close): readies the
** parked G with `code`; returns 1 if a G was readied. */
GLR_INTERNAL int iowait_wake(P *p, pollDesc *pd, int mode, bool ioready, int code);

/* iowait_watch — hand an idle pollDesc (no G waits on it) to fn: the next
** read-side event, or the deadline `when` (DEADLINE_NONE: none), calls
** fn(pd, arg, events) once from the scheduler loop (events 0 for the
** deadline), with the watch already off; fn may free the pollDesc. Registers
** the fd with epoll first: -errno if it cannot be. */
GLR_INTERNAL int iowait_watch(P *p, pollDesc *pd, int64_t when, pd_watch_fn fn, void *arg);
/* iowait_unwatch — turn a watch off (no-op if none); its timer stays in
** the heap, for the next wait or watch (arm_wait), and drops itself. */
GLR_INTERNAL void iowait_unwatch(P *p, pollDesc *pd);
/* iowait_fire_watch — netpoll's and the read timer's way to a watch. */
GLR_INTERNAL void iowait_fire_watch(P *p, pollDesc *pd, uint32_t events);

#endif
