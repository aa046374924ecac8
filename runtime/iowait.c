/* iowait.c — see iowait.h. */
#include "iowait.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <unistd.h>

#include "group.h"
#include "handoff.h"
#include "netpoll.h"

static int64_t min_deadline(int64_t a, int64_t b) {
  if (a == DEADLINE_NONE) return b;
  if (b == DEADLINE_NONE) return a;
  return a < b ? a : b;
}

static int64_t effective(pollDesc *pd, int mode) {
  return mode == PD_MODE_R ? min_deadline(pd->rd_user, pd->rd_op)
                           : min_deadline(pd->wd_user, pd->wd_op);
}

int iowait_check(pollDesc *pd, int mode, int64_t opdl) {
  if (atomic_load(&pd->closing)) return WAKE_CLOSED;
  int64_t d = min_deadline(mode == PD_MODE_R ? pd->rd_user : pd->wd_user, opdl);
  if (d != DEADLINE_NONE && d <= mono_now()) return WAKE_TIMEOUT;
  return 0;
}

int iowait_wake(P *p, pollDesc *pd, int mode, bool ioready, int code) {
  G *g = pd_unblock(pd, mode, ioready);
  if (!g) return 0;
  /* the deadline timer stays armed (arm_wait): the next wait reuses it */
  atomic_fetch_sub(&p->npollwait, 1);
  g->wake = code;
  /* a forced poll's wake-up takes runnext only if it is free: it must not
  ** push a G already there (the one a channel send just readied) to the
  ** tail of the run queue, behind every other goroutine the same poll wakes */
  sched_ready(p, g, p->wake_next && p->q.runnext == NULL);
  return 1;
}

static void arm(P *p, pollDesc *pd, int mode, int64_t when);

/* watch_due — the read timer fired under a watch: it may be left from
** a wait or an earlier watch (arm_wait), so the watch's own deadline
** (rd_op) is looked at again */
static void watch_due(pollDesc *pd) {
  if (pd->rd_op == DEADLINE_NONE) return; /* a watch without timeout */
  if (pd->rd_op > mono_now()) arm(pd->owner, pd, PD_MODE_R, pd->rd_op);
  else iowait_fire_watch(pd->owner, pd, 0);
}

/* deadline_fire — the direction's timer is due: it may be left from a wait
** that ended, or armed before the deadline moved later (arm_wait), so the
** wait and its deadline are looked at again now */
static void deadline_fire(pollDesc *pd, int mode) {
  uint32_t armed = mode == PD_MODE_R ? pd->rseq : pd->wseq;
  if (armed != atomic_load(&pd->seq)) return; /* stale timer: pd reused */
  if (mode == PD_MODE_R && pd->watch) {
    watch_due(pd);
    return;
  }
  if (atomic_load(mode == PD_MODE_R ? &pd->rg : &pd->wg) <= PD_WAIT)
    return; /* nobody waits: the next wait arms it again */
  int64_t e = effective(pd, mode);
  if (e == DEADLINE_NONE) return;
  if (e > mono_now()) arm(pd->owner, pd, mode, e); /* moved later */
  else iowait_wake(pd->owner, pd, mode, false, WAKE_TIMEOUT);
}
static void rtimer_fire(timer *t, void *arg) { (void)t; deadline_fire(arg, PD_MODE_R); }
static void wtimer_fire(timer *t, void *arg) { (void)t; deadline_fire(arg, PD_MODE_W); }

/* arm — the direction's timer at exactly `when` (DEADLINE_NONE: off) */
static void arm(P *p, pollDesc *pd, int mode, int64_t when) {
  timer *t = mode == PD_MODE_R ? &pd->rt : &pd->wt;
  if (when == DEADLINE_NONE) {
    timer_disarm(&p->timers, t);
    return;
  }
  t->fn = mode == PD_MODE_R ? rtimer_fire : wtimer_fire;
  t->arg = pd;
  if (mode == PD_MODE_R) pd->rseq = atomic_load(&pd->seq);
  else pd->wseq = atomic_load(&pd->seq);
  timer_arm(&p->timers, t, when);
}

/* arm_wait — a wait's deadline (Go's poller keeps a timer that is due no
** later): a timer already armed at or before `when` stays, and
** deadline_fire re-arms it if the deadline is still ahead; so a keep-alive
** wait whose deadline only moves later touches the heap once per timeout,
** not twice per wait */
static void arm_wait(P *p, pollDesc *pd, int mode, int64_t when) {
  if (when == DEADLINE_NONE) return; /* a timer left armed finds no deadline */
  timer *t = mode == PD_MODE_R ? &pd->rt : &pd->wt;
  if (timer_armed(t) && t->when <= when) return;
  arm(p, pd, mode, when);
}

static bool commit(G *g, pollDesc *pd, int mode) {
  if (!pd_block_commit(pd, mode, g)) return false;
  atomic_fetch_add(&g->tag.p->npollwait, 1);
  return true;
}
static bool commit_r(G *g, void *pd) { return commit(g, pd, PD_MODE_R); }
static bool commit_w(G *g, void *pd) { return commit(g, pd, PD_MODE_W); }

int iowait_park(struct lua_State *L, pollDesc *pd, int mode, int64_t opdl,
                intptr_t ctx, iowait_k k) {
  P *p = vm_p(L);
  if (!pd->registered) {
    int e = netpoll_open(p, pd);
    if (e < 0) return e;
  }
  if (mode == PD_MODE_R) pd->rd_op = opdl;
  else pd->wd_op = opdl;
  G *g = p->curg;
  g->wake = WAKE_NONE;
  if (pd_block_prepare(pd, mode) == PD_PREP_READY) {
    g->wake = WAKE_READY;
    return k(L, 0, ctx);
  }
  arm_wait(p, pd, mode, effective(pd, mode));
  g->waitfd = pd->fd; /* for goroutine dumps */
  g->waitmode = mode;
  sched_park_on(L, mode == PD_MODE_R ? WK_IO_R : WK_IO_W, pd);
  return sched_park(L, mode == PD_MODE_R ? commit_r : commit_w, pd, "IO wait",
                    PARK_WORLD, ctx, k);
}

static struct timespec *poll_timeout(int64_t dl, struct timespec *ts) {
  if (dl == DEADLINE_NONE) return NULL;
  int64_t left = dl - mono_now();
  if (left < 0) left = 0;
  ts->tv_sec = (time_t)(left / NS_PER_SEC);
  ts->tv_nsec = (long)(left % NS_PER_SEC);
  return ts;
}

/* poll_once — one blocking ppoll without the P; 1 if the fd is ready */
static int poll_once(P *p, pollDesc *pd, int mode, int wakefd) {
  struct timespec ts;
  struct pollfd f[2] = {{pd->fd, mode == PD_MODE_R ? POLLIN : POLLOUT, 0},
                        {wakefd, POLLIN, 0}};
  int *slot = mode == PD_MODE_R ? &pd->syncfd_r : &pd->syncfd_w;
  struct timespec *tsp = poll_timeout(effective(pd, mode), &ts);
  *slot = wakefd;
  handoff_enter(p, "IO wait", effective(pd, mode));
  int n = ppoll(f, wakefd >= 0 ? 2 : 1, tsp, NULL);
  handoff_exit(p);
  *slot = -1;
  if (n > 0 && wakefd >= 0 && f[1].revents) {
    uint64_t v;
    if (read(wakefd, &v, sizeof v) < 0) { /* EAGAIN: nothing to drain */ }
  }
  return n > 0 && f[0].revents != 0;
}

int iowait_block(struct lua_State *L, pollDesc *pd, int mode, int64_t opdl) {
  P *p = vm_p(L);
  if (!pd->registered) { /* as iowait_park: refuse what epoll refuses */
    int e = netpoll_open(p, pd);
    if (e < 0) return e;
  }
  if (mode == PD_MODE_R) pd->rd_op = opdl;
  else pd->wd_op = opdl;
  int wakefd = handoff_wakefd();
  G *g = p->curg;
  atomic_store(&g->blockfd, wakefd); /* a group's cancel kicks it (group.c) */
  int code;
  while ((code = iowait_check(pd, mode, opdl)) == 0) {
    if (group_is_cancelled(g->grp)) {
      code = WAKE_CANCELLED;
      break;
    }
    if (poll_once(p, pd, mode, wakefd)) {
      code = WAKE_READY;
      break;
    }
  }
  atomic_store(&g->blockfd, -1);
  g->wake = code;
  return 0;
}

int iowait_result(struct lua_State *L, pollDesc *pd, int mode) {
  P *p = vm_p(L);
  G *g = p->curg;
  int code = g->wake;
  pd_block_finish(pd, mode); /* the code below tells ready from closed/timeout */
  if (mode == PD_MODE_R) pd->rdrained = false; /* the wait consumed the edge */
  int64_t opdl = mode == PD_MODE_R ? pd->rd_op : pd->wd_op;
  if (mode == PD_MODE_R) pd->rd_op = DEADLINE_NONE;
  else pd->wd_op = DEADLINE_NONE;
  if (code == WAKE_CANCELLED) return WAKE_CANCELLED;
  if (atomic_load(&pd->closing)) return WAKE_CLOSED;
  if (code == WAKE_TIMEOUT || iowait_check(pd, mode, opdl) == WAKE_TIMEOUT)
    return WAKE_TIMEOUT;
  return WAKE_READY;
}

/* kick — wake an M blocked in iowait_block on this direction */
static void kick(pollDesc *pd, int mode) {
  int fd = mode == PD_MODE_R ? pd->syncfd_r : pd->syncfd_w;
  uint64_t one = 1;
  if (fd >= 0 && write(fd, &one, sizeof one) < 0) { /* full: already kicked */ }
}

static void set_one(P *p, pollDesc *pd, int mode, int64_t d) {
  if (mode == PD_MODE_R) pd->rd_user = d;
  else pd->wd_user = d;
  kick(pd, mode);
  uintptr_t slotv = atomic_load(mode == PD_MODE_R ? &pd->rg : &pd->wg);
  if (slotv <= PD_WAIT) return; /* nobody parked: applies at the next wait */
  int64_t e = effective(pd, mode);
  if (e != DEADLINE_NONE && e <= mono_now())
    iowait_wake(p, pd, mode, false, WAKE_TIMEOUT);
  else
    arm_wait(p, pd, mode, e);
}

void iowait_setdeadline(P *p, pollDesc *pd, int mode, int64_t d) {
  if (mode & PD_MODE_R) set_one(p, pd, PD_MODE_R, d);
  if (mode & PD_MODE_W) set_one(p, pd, PD_MODE_W, d);
}

void iowait_close(P *p, pollDesc *pd) {
  atomic_store(&pd->closing, true);
  kick(pd, PD_MODE_R);
  kick(pd, PD_MODE_W);
  iowait_wake(p, pd, PD_MODE_R, false, WAKE_CLOSED);
  iowait_wake(p, pd, PD_MODE_W, false, WAKE_CLOSED);
  timer_disarm(&p->timers, &pd->rt);
  timer_disarm(&p->timers, &pd->wt);
  if (pd->registered) netpoll_close(pd->owner ? pd->owner : p, pd);
}

int iowait_watch(P *p, pollDesc *pd, int64_t when, pd_watch_fn fn, void *arg) {
  if (!pd->registered) {
    int e = netpoll_open(p, pd);
    if (e < 0) return e;
  }
  pd->watch = fn;
  pd->watch_arg = arg;
  pd->rd_op = when; /* no G waits in rg while watched */
  arm_wait(p, pd, PD_MODE_R, when);
  return 0;
}

/* iowait_unwatch — as a wake-up, leaves the read timer armed: a pooled
** conn taken for each request would otherwise disarm it at every take
** and arm it at every put (and at the request's read wait) */
void iowait_unwatch(P *p, pollDesc *pd) {
  (void)p;
  if (!pd->watch) return;
  pd->watch = NULL;
  pd->watch_arg = NULL;
  pd->rd_op = DEADLINE_NONE;
}

void iowait_fire_watch(P *p, pollDesc *pd, uint32_t events) {
  pd_watch_fn fn = pd->watch;
  void *arg = pd->watch_arg;
  iowait_unwatch(p, pd);
  fn(pd, arg, events);
}
