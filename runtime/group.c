/* group.c — see group.h. */
#include "group.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iowait.h"

static char *copy_text(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = x_malloc(n);
  memcpy(d, s, n);
  return d;
}

static void timeout_fire(timer *t, void *arg) {
  (void)t;
  group_cancel(arg, "timeout");
}

ggroup *group_new(P *p, ggroup *parent) {
  ggroup *grp = x_calloc(1, sizeof *grp);
  grp->p = p;
  grp->refs = 1;
  chan_init(&grp->waiters, 0);
  timer_init(&grp->deadline, timeout_fire, grp);
  if (!parent) return grp;
  grp->parent = parent;
  group_ref(parent);
  grp->sibnext = parent->kids;
  if (parent->kids) parent->kids->sibprev = grp;
  parent->kids = grp;
  if (group_is_cancelled(parent)) group_cancel(grp, parent->reason);
  return grp;
}

void group_ref(ggroup *grp) { grp->refs++; }

static void group_free(ggroup *grp) {
  timer_disarm(&grp->p->timers, &grp->deadline);
  ggroup *parent = grp->parent;
  if (parent) {
    if (grp->sibprev) grp->sibprev->sibnext = grp->sibnext;
    else parent->kids = grp->sibnext;
    if (grp->sibnext) grp->sibnext->sibprev = grp->sibprev;
  }
  if (grp->haserr) sched_unref(grp->p, grp->errref);
  chan_free(&grp->waiters);
  free(grp->reason);
  free(grp);
  if (parent) group_unref(parent);
}

void group_unref(ggroup *grp) {
  if (--grp->refs == 0) group_free(grp);
}

static void reopen_waiters(ggroup *grp) {
  if (!grp->waiters_closed) return;
  chan_free(&grp->waiters);
  chan_init(&grp->waiters, 0);
  grp->waiters_closed = false;
}

void group_join(ggroup *grp, G *g) {
  group_ref(grp);
  group_leave(g);
  reopen_waiters(grp);
  g->grp = grp;
  gcold *c = gcold_of(g);
  c->gprev = NULL;
  c->gnext = grp->members;
  if (grp->members) grp->members->cold->gprev = g;
  grp->members = g;
  grp->nlive++;
}

/* all_done — nlive reached 0: wake every grp:wait */
static void all_done(ggroup *grp) {
  sudog *w;
  if (chan_close(&grp->waiters, &w) == CHAN_CLOSED) return;
  grp->waiters_closed = true;
  while (w) {
    sudog *next = w->next;
    sched_ready(grp->p, w->g, false);
    w = next;
  }
}

void group_leave(G *g) {
  ggroup *grp = g->grp;
  if (!grp) return;
  gcold *c = g->cold;
  if (c->gprev) c->gprev->cold->gnext = c->gnext;
  else grp->members = c->gnext;
  if (c->gnext) c->gnext->cold->gprev = c->gprev;
  c->gnext = c->gprev = NULL;
  g->grp = NULL;
  if (--grp->nlive == 0) all_done(grp);
  group_unref(grp);
}

/* detach — take g off what it waits on; false if the wake-up is not ours */
static bool detach(P *p, G *g) {
  switch (g->waitkind) {
    case WK_SLEEP: return true; /* sched_ready disarms the G's timer */
    case WK_CHAN: chan_dequeue(&g->cold->sg); return true;
    case WK_SEL: {
      selstate *s = g->waitobj;
      if (!selstate_claim(s)) return false; /* a value or timeout won */
      s->fired = SEL_CANCELLED;
      return true;
    }
    case WK_IO_R:
    case WK_IO_W: {
      int mode = g->waitkind == WK_IO_R ? PD_MODE_R : PD_MODE_W;
      g->waitkind = WK_NONE;
      iowait_wake(p, g->waitobj, mode, false, WAKE_CANCELLED);
      return false; /* iowait_wake readied it (if it was parked there) */
    }
    case WK_CALL: {
      wcancel *wc = g->waitobj;
      if (!wc->detach(wc)) return false;
      atomic_store(&g->parktoken, PT_NONE); /* nobody will glr_ready it now */
      return true;
    }
    default: return false;
  }
}

void group_wake(P *p, G *g) {
  if (g->status != G_WAITING || !detach(p, g)) return;
  g->waitkind = WK_NONE;
  g->wake = WAKE_CANCELLED;
  sched_ready(p, g, false);
}

/* kick — a member blocked on its own M (non-yieldable wait) */
static void kick(G *g) {
  int fd = atomic_load(&g->blockfd);
  uint64_t one = 1;
  if (fd >= 0 && write(fd, &one, sizeof one) < 0) { /* full: already kicked */ }
}

void group_cancel(ggroup *grp, const char *reason) {
  if (group_is_cancelled(grp)) return;
  if (reason) grp->reason = copy_text(reason);
  atomic_store(&grp->cancelled, true);
  timer_disarm(&grp->p->timers, &grp->deadline);
  for (G *g = grp->members; g; g = g->cold->gnext) {
    if (g->status == G_WAITING) group_wake(grp->p, g);
    else kick(g);
  }
  for (ggroup *k = grp->kids; k; k = k->sibnext) group_cancel(k, reason);
}

void group_fail(ggroup *grp, int errref) {
  if (grp->haserr) {
    sched_unref(grp->p, errref);
    return;
  }
  grp->haserr = true;
  grp->errref = errref;
  group_cancel(grp, NULL);
}

void group_set_timeout(ggroup *grp, int64_t when) {
  timer_arm(&grp->p->timers, &grp->deadline, when);
}
