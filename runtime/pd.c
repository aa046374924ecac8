/* pd.c — see pd.h. */
#include "pd.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SLAB_SHIFT 8
#define SLAB_SIZE (1u << SLAB_SHIFT)
#define MAX_SLABS (1u << 16) /* 16M pollDescs */

static struct {
  pthread_mutex_t lock;
  pollDesc *_Atomic slabs[MAX_SLABS]; /* atomic: published once, read lock-free */
  uint32_t nslabs;                    /* guarded by lock */
  pollDesc *free;                     /* guarded by lock */
  size_t inuse;                       /* guarded by lock */
} cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void grow_locked(void) {
  if (cache.nslabs == MAX_SLABS) rt_throw("pollDesc cache exhausted");
  pollDesc *slab = x_calloc(SLAB_SIZE, sizeof *slab);
  uint32_t base = cache.nslabs << SLAB_SHIFT;
  for (uint32_t i = SLAB_SIZE; i-- > 0;) {
    slab[i].idx = base + i;
    slab[i].fd = -1;
    slab[i].next_free = cache.free;
    cache.free = &slab[i];
  }
  atomic_store(&cache.slabs[cache.nslabs], slab);
  cache.nslabs++;
}

pollDesc *pd_alloc(int fd) {
  pthread_mutex_lock(&cache.lock);
  if (!cache.free) grow_locked();
  pollDesc *pd = cache.free;
  cache.free = pd->next_free;
  cache.inuse++;
  pthread_mutex_unlock(&cache.lock);

  if (atomic_load(&pd->rg) != PD_NIL || atomic_load(&pd->wg) != PD_NIL)
    rt_throw("netpoll: blocked read on free polldesc");
  atomic_fetch_add(&pd->seq, 1);
  atomic_store(&pd->closing, false);
  pd->fd = fd;
  pd->owner = NULL;
  pd->registered = false;
  pd->rd_user = pd->wd_user = pd->rd_op = pd->wd_op = DEADLINE_NONE;
  timer_init(&pd->rt, NULL, pd);
  timer_init(&pd->wt, NULL, pd);
  pd->rseq = pd->wseq = 0;
  pd->mock_r = pd->mock_w = 0;
  pd->rdrained = pd->rdhup = pd->drain_ok = false;
  pd->watch = NULL;
  pd->watch_arg = NULL;
  pd->syncfd_r = pd->syncfd_w = -1;
  return pd;
}

void pd_free(pollDesc *pd) {
  if (atomic_load(&pd->rg) > PD_READY || atomic_load(&pd->wg) > PD_READY)
    rt_throw("netpoll: close polldesc w/o unblock");
  if (timer_armed(&pd->rt) || timer_armed(&pd->wt))
    rt_throw("netpoll: free polldesc with armed timer");
  atomic_fetch_add(&pd->seq, 1);
  atomic_store(&pd->rg, PD_NIL);
  atomic_store(&pd->wg, PD_NIL);
  pd->fd = -1;
  pthread_mutex_lock(&cache.lock);
  pd->next_free = cache.free;
  cache.free = pd;
  cache.inuse--;
  pthread_mutex_unlock(&cache.lock);
}

pollDesc *pd_lookup(uint32_t idx) {
  uint32_t s = idx >> SLAB_SHIFT;
  if (s >= MAX_SLABS) return NULL;
  pollDesc *slab = atomic_load(&cache.slabs[s]);
  return slab ? &slab[idx & (SLAB_SIZE - 1)] : NULL;
}

pollDesc *pd_from_tag(uint64_t tag) {
  pollDesc *pd = pd_lookup((uint32_t)(tag >> 32));
  if (!pd || atomic_load(&pd->seq) != (uint32_t)tag) return NULL;
  return pd;
}

void pd_cache_stats(size_t *allocated, size_t *inuse) {
  pthread_mutex_lock(&cache.lock);
  *allocated = (size_t)cache.nslabs * SLAB_SIZE;
  *inuse = cache.inuse;
  pthread_mutex_unlock(&cache.lock);
}

static _Atomic uintptr_t *slot(pollDesc *pd, int mode) {
  return mode == PD_MODE_R ? &pd->rg : &pd->wg;
}

int pd_block_prepare(pollDesc *pd, int mode) {
  _Atomic uintptr_t *gp = slot(pd, mode);
  for (;;) {
    uintptr_t old = atomic_load(gp);
    if (old == PD_READY) {
      if (atomic_compare_exchange_strong(gp, &old, PD_NIL)) return PD_PREP_READY;
      continue;
    }
    if (old != PD_NIL) rt_throw("netpoll: double wait");
    if (atomic_compare_exchange_strong(gp, &old, PD_WAIT)) return PD_PREP_WAIT;
  }
}

bool pd_block_commit(pollDesc *pd, int mode, void *g) {
  uintptr_t expect = PD_WAIT;
  return atomic_compare_exchange_strong(slot(pd, mode), &expect, (uintptr_t)g);
}

bool pd_block_finish(pollDesc *pd, int mode) {
  uintptr_t old = atomic_exchange(slot(pd, mode), PD_NIL);
  if (old > PD_WAIT) rt_throw("netpoll: corrupted polldesc");
  return old == PD_READY;
}

void *pd_unblock(pollDesc *pd, int mode, bool ioready) {
  _Atomic uintptr_t *gp = slot(pd, mode);
  for (;;) {
    uintptr_t old = atomic_load(gp);
    if (old == PD_READY) return NULL;
    if (old == PD_NIL && !ioready) return NULL;
    uintptr_t nw = ioready ? PD_READY : PD_NIL;
    if (atomic_compare_exchange_strong(gp, &old, nw))
      return old == PD_NIL || old == PD_WAIT ? NULL : (void *)old;
  }
}
