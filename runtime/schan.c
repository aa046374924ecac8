/* schan.c — see schan.h. */
#include "schan.h"

#include <stdlib.h>

static _Atomic long nlive;

schan *schan_new(uint32_t cap, void (*drop)(uint64_t elem)) {
  schan *c = x_calloc(1, sizeof *c);
  chan_init(&c->c, cap);
  pthread_mutex_init(&c->lock, NULL);
  atomic_init(&c->refs, 1);
  c->drop = drop;
  atomic_fetch_add(&nlive, 1);
  return c;
}

long schan_live(void) { return atomic_load(&nlive); }

void schan_retain(schan *c) { atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed); }

void schan_release(schan *c) {
  if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1) return;
  /* no other thread can reach c now: no lock needed */
  chan *ch = &c->c;
  if (ch->recvq.first || ch->sendq.first) rt_throw("schan: freed with waiters");
  for (uint32_t i = 0; i < ch->count; i++) c->drop(ch->buf[(ch->head + i) % ch->cap]);
  chan_free(ch);
  pthread_mutex_destroy(&c->lock);
  free(c);
  atomic_fetch_sub(&nlive, 1);
}

void schan_lock(schan *c) { pthread_mutex_lock(&c->lock); }

void schan_unlock(schan *c) { pthread_mutex_unlock(&c->lock); }

static void sort_chans(schan **cs, int n) { /* insertion sort: n is small */
  for (int i = 1; i < n; i++) {
    schan *x = cs[i];
    int j = i - 1;
    for (; j >= 0 && (uintptr_t)cs[j] > (uintptr_t)x; j--) cs[j + 1] = cs[j];
    cs[j + 1] = x;
  }
}

void schan_lock_many(schan **cs, int n) {
  sort_chans(cs, n);
  for (int i = 0; i < n; i++)
    if (i == 0 || cs[i] != cs[i - 1]) schan_lock(cs[i]);
}

void schan_unlock_many(schan **cs, int n) {
  for (int i = n - 1; i >= 0; i--)
    if (i == 0 || cs[i] != cs[i - 1]) schan_unlock(cs[i]);
}

void schan_enqueue_locked(schan *c, sudog *sg) {
  chan_enqueue(&c->c, sg);
  schan_retain(c);
}

void schan_dequeue(sudog *sg) {
  if (!sg->c) return;
  schan *c = (schan *)(void *)sg->c; /* c is schan's first member */
  schan_lock(c);
  chan_dequeue(sg);
  schan_unlock(c);
  schan_release(c);
}

int schan_close(schan *c, sudog **woken) {
  schan_lock(c);
  int r = chan_close(&c->c, woken);
  schan_unlock(c);
  return r;
}

uint32_t schan_len(schan *c) {
  schan_lock(c);
  uint32_t n = c->c.count;
  schan_unlock(c);
  return n;
}
