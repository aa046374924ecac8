/* pgq.c — see pgq.h. */
#include "pgq.h"

void pgq_init(pgq *q) {
  pthread_mutex_init(&q->lock, NULL);
  q->head = q->tail = NULL;
  atomic_store(&q->n, 0);
}

void pgq_free(pgq *q) { pthread_mutex_destroy(&q->lock); }

static void put_locked(pgq *q, portable *w) {
  w->next = NULL;
  if (q->tail) q->tail->next = w;
  else q->head = w;
  q->tail = w;
  atomic_fetch_add(&q->n, 1);
}

static portable *get_locked(pgq *q) {
  portable *w = q->head;
  if (!w) return NULL;
  q->head = w->next;
  if (!q->head) q->tail = NULL;
  w->next = NULL;
  atomic_fetch_sub(&q->n, 1);
  return w;
}

void pgq_put(pgq *q, portable *w) {
  pthread_mutex_lock(&q->lock);
  put_locked(q, w);
  pthread_mutex_unlock(&q->lock);
}

portable *pgq_get(pgq *q) {
  if (atomic_load(&q->n) == 0) return NULL;
  pthread_mutex_lock(&q->lock);
  portable *w = get_locked(q);
  pthread_mutex_unlock(&q->lock);
  return w;
}

int pgq_steal_half(pgq *victim, pgq *dst) {
  if (victim == dst || atomic_load(&victim->n) == 0) return 0;
  portable *taken = NULL, *last = NULL;
  int k = 0;
  pthread_mutex_lock(&victim->lock);
  int want = (atomic_load(&victim->n) + 1) / 2;
  while (k < want) {
    portable *w = get_locked(victim);
    if (!w) break;
    if (last) last->next = w;
    else taken = w;
    last = w;
    k++;
  }
  pthread_mutex_unlock(&victim->lock);
  if (!k) return 0;
  pthread_mutex_lock(&dst->lock);
  for (portable *w = taken, *next; w; w = next) {
    next = w->next;
    put_locked(dst, w);
  }
  pthread_mutex_unlock(&dst->lock);
  return k;
}
