/*
** group.h — cancellation groups (go.group): the runtime half. The Lua
** object is bindings/lgroup.c; runtime/HACKING.md "Cancellation groups"
** has the design.
**
** A group belongs to one P (one VM): its members are goroutines of that VM
** only. Every field is owner M only (the M holding that P), except
** `cancelled`, which a member blocked in a non-yieldable wait (hand-off,
** iowait_block) reads on its own M while another M holds the P (a G
** parked on its M, sched.c's park_on_m, is G_WAITING: woken as any).
**
** Invariants:
**  - members is exactly the list of live Gs with g->grp == this group, and
**    nlive its length; each member, each child group and the Lua object
**    hold one ref; the group is freed when refs drops to 0.
**  - a child stays in its parent's kids list until it is freed, and holds a
**    ref on its parent, so a parent outlives its children.
**  - cancelled moves false -> true once; when it does, every member parked
**    on something group_wake knows how to detach (sched.h's waitkind) is
**    woken with WAKE_CANCELLED, every member blocked on its M is kicked
**    through its blockfd, and every descendant group is cancelled too.
**  - waiters (grp:wait's sudogs) is closed, waking them, whenever nlive
**    drops to 0; a member joining after that re-opens it.
*/
#ifndef GLR_GROUP_H
#define GLR_GROUP_H

#include "chan.h"
#include "sched.h"
#include "timer.h"

/* select's fired value for a selstate the cancel claimed */
#define SEL_CANCELLED (-2)

typedef struct ggroup {
  P *p;                   /* const: the P whose VM the group lives in */
  int refs;
  _Atomic bool cancelled; /* atomic: see above */
  char *reason;           /* set with cancelled: malloc'd text, or NULL */
  struct ggroup *parent;  /* a ref, or NULL */
  struct ggroup *kids, *sibnext, *sibprev; /* children (not refs) */
  G *members;             /* via g->gnext / g->gprev */
  int nlive;
  bool haserr;            /* a member failed: errref holds its error */
  int errref;             /* registry ref of the first member error */
  chan waiters;           /* grp:wait: its recvq only; closed at nlive 0 */
  bool waiters_closed;
  timer deadline;         /* opts.timeout: cancels with reason "timeout" */
} ggroup;

/* group_new — a group of p (refs 1: the caller's); a child of parent
** (may be NULL), cancelled at once if the parent already is. */
GLR_INTERNAL ggroup *group_new(P *p, ggroup *parent);
GLR_INTERNAL void group_ref(ggroup *grp);
/* group_unref — drops a ref; the last frees the group (owner M). */
GLR_INTERNAL void group_unref(ggroup *grp);
/* group_join — g becomes a member (leaving the group it was in). */
GLR_INTERNAL void group_join(ggroup *grp, G *g);
/* group_leave — g (exiting) leaves its group, if any. */
GLR_INTERNAL void group_leave(G *g);
/* group_cancel — cancels grp and its descendants (no-op if it already
** is); reason may be NULL. */
GLR_INTERNAL void group_cancel(ggroup *grp, const char *reason);
/* group_fail — a member ended with an error (registry ref errref, which
** the group then owns): the first is kept and cancels the group, later
** ones are dropped. */
GLR_INTERNAL void group_fail(ggroup *grp, int errref);
/* group_set_timeout — cancel grp at `when` (monotonic ns) */
GLR_INTERNAL void group_set_timeout(ggroup *grp, int64_t when);
/* group_wake — g, a WAITING member of a cancelled group, is detached from
** what it waits on and made runnable with WAKE_CANCELLED, if its waitkind
** allows; otherwise it stays parked until its own wake-up. */
GLR_INTERNAL void group_wake(P *p, G *g);
/* group_is_cancelled — from any thread */
static inline bool group_is_cancelled(const ggroup *grp) {
  return grp && atomic_load(&((ggroup *)grp)->cancelled);
}

#endif
