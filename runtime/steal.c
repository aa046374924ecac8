/* steal.c — see steal.h. */
#include "steal.h"

#include "netpoll.h"

#define PQ_LOCAL_MAX 256 /* portable records a P queues before the global queue */

/* steal_pending — work any P could take (re-checked after `sleeping` is
** set, so a spawner that missed our flag is seen here: no lost wake-up) */
bool steal_pending(rt *r) {
  if (!r->start_portable) return false;
  if (atomic_load(&r->global.n)) return true;
  for (int i = 0; i < r->nprocs; i++)
    if (atomic_load(&r->ps[i]->pq.n)) return true;
  return false;
}

void steal_spawn(P *p, portable *w) {
  rt *r = p->rt;
  atomic_fetch_add(&r->n_progress, 1);
  /* Go's runqputslow: past PQ_LOCAL_MAX the work goes to the global queue,
  ** which every P takes from without stealing */
  if (atomic_load(&p->pq.n) >= PQ_LOCAL_MAX) pgq_put(&r->global, w);
  else pgq_put(&p->pq, w);
  for (int i = 1; i < r->nprocs; i++) { /* wakep: one sleeping P steals */
    P *o = r->ps[(p->id + i) % r->nprocs];
    if (atomic_load(&o->sleeping)) {
      netpoll_break(o);
      return;
    }
  }
}

void steal_spawn_on(P *target, portable *w) {
  atomic_fetch_add(&target->rt->n_progress, 1);
  pgq_put(&target->pinq, w);
  if (atomic_load(&target->sleeping)) netpoll_break(target);
}

void steal_started(rt *r) { atomic_fetch_sub(&r->n_progress, 1); }

/* steal_half — Go: stealWork, over the portable queues, random victim order */
static portable *steal_half(P *p) {
  rt *r = p->rt;
  if (r->nprocs < 2) return NULL;
  p->rnd = p->rnd * 1103515245u + 12345u;
  int start = (int)((p->rnd >> 8) % (uint32_t)r->nprocs);
  for (int i = 0; i < r->nprocs; i++) {
    P *v = r->ps[(start + i) % r->nprocs];
    if (v != p && pgq_steal_half(&v->pq, &p->pq) > 0) {
      p->st.steals++;
      return pgq_get(&p->pq);
    }
  }
  return NULL;
}

/* steal_take — pinned, own queue, global queue, then stealing; the
** global queue first every 61st round so it never starves (Go: schedtick) */
bool steal_take(P *p) {
  rt *r = p->rt;
  if (!r->start_portable) return false;
  portable *w = pgq_get(&p->pinq);
  if (!w && p->schedtick % 61 == 0) w = pgq_get(&r->global);
  if (!w) w = pgq_get(&p->pq);
  if (!w) w = pgq_get(&r->global);
  if (!w) w = steal_half(p);
  if (!w) return false;
  r->start_portable(p, w);
  return true;
}
