/* runq.c — see runq.h. */
#include "runq.h"

#include <stdlib.h>
#include <string.h>

void runq_init(runq *q) { memset(q, 0, sizeof *q); }

void runq_free(runq *q) {
  free(q->over);
  runq_init(q);
}

static void over_push(runq *q, void *g) {
  if (q->over_len == q->over_cap) {
    size_t ncap = q->over_cap ? q->over_cap * 2 : 64;
    void **nv = x_malloc(ncap * sizeof *nv);
    for (size_t i = 0; i < q->over_len; i++)
      nv[i] = q->over[(q->over_head + i) % q->over_cap];
    free(q->over);
    q->over = nv;
    q->over_cap = ncap;
    q->over_head = 0;
  }
  q->over[(q->over_head + q->over_len++) % q->over_cap] = g;
}

static void *over_pop(runq *q) {
  void *g = q->over[q->over_head];
  q->over_head = (q->over_head + 1) % q->over_cap;
  q->over_len--;
  return g;
}

static void tail_put(runq *q, void *g) {
  if (q->over_len == 0 && q->tail - q->head < RUNQ_SIZE)
    q->ring[q->tail++ % RUNQ_SIZE] = g;
  else
    over_push(q, g);
}

void runq_put(runq *q, void *g, bool next) {
  if (!g) rt_throw("runq: put of NULL");
  if (next) {
    void *old = q->runnext;
    q->runnext = g;
    if (!old) return;
    g = old;
  }
  tail_put(q, g);
}

void runq_put_timed(runq *q, void *g) {
  if (!g) rt_throw("runq: put of NULL");
  if (q->timed_len == RUNQ_TIMED) {
    tail_put(q, g);
    return;
  }
  q->timed[(q->timed_head + q->timed_len++) % RUNQ_TIMED] = g;
}

void *runq_get(runq *q) {
  if (q->timed_len) {
    void *t = q->timed[q->timed_head];
    q->timed_head = (q->timed_head + 1) % RUNQ_TIMED;
    q->timed_len--;
    return t;
  }
  void *g = q->runnext;
  if (g) {
    q->runnext = NULL;
    return g;
  }
  if (q->tail != q->head) {
    g = q->ring[q->head++ % RUNQ_SIZE];
    /* refill the ring from the overflow so order stays FIFO */
    if (q->over_len) q->ring[q->tail++ % RUNQ_SIZE] = over_pop(q);
    return g;
  }
  return q->over_len ? over_pop(q) : NULL;
}

size_t runq_len(const runq *q) {
  return (q->tail - q->head) + q->over_len + q->timed_len + (q->runnext ? 1 : 0);
}
