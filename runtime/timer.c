/* timer.c — see timer.h. */
#include "timer.h"

#include <stdlib.h>

void timerheap_init(timerheap *h) {
  h->v = NULL;
  h->len = h->cap = 0;
  h->counter = 0;
}

void timerheap_free(timerheap *h) {
  for (int i = 0; i < h->len; i++) h->v[i]->idx = -1;
  free(h->v);
  timerheap_init(h);
}

void timer_init(timer *t, timer_fn fn, void *arg) {
  t->when = 0;
  t->seq = 0;
  t->idx = -1;
  t->fn = fn;
  t->arg = arg;
}

static bool before(const timer *a, const timer *b) {
  return a->when < b->when || (a->when == b->when && (int32_t)(a->seq - b->seq) < 0);
}

static void place(timerheap *h, int i, timer *t) {
  h->v[i] = t;
  t->idx = i;
}

static void sift_up(timerheap *h, int i) {
  timer *t = h->v[i];
  while (i > 0) {
    int parent = (i - 1) / 2;
    if (!before(t, h->v[parent])) break;
    place(h, i, h->v[parent]);
    i = parent;
  }
  place(h, i, t);
}

static void sift_down(timerheap *h, int i) {
  timer *t = h->v[i];
  for (;;) {
    int c = 2 * i + 1;
    if (c >= h->len) break;
    if (c + 1 < h->len && before(h->v[c + 1], h->v[c])) c++;
    if (!before(h->v[c], t)) break;
    place(h, i, h->v[c]);
    i = c;
  }
  place(h, i, t);
}

void timer_disarm(timerheap *h, timer *t) {
  int i = t->idx;
  if (i < 0) return;
  if (i >= h->len || h->v[i] != t) rt_throw("timer: corrupted heap index");
  t->idx = -1;
  h->len--;
  if (i == h->len) return;
  place(h, i, h->v[h->len]);
  if (i > 0 && before(h->v[i], h->v[(i - 1) / 2]))
    sift_up(h, i);
  else
    sift_down(h, i);
}

void timer_arm(timerheap *h, timer *t, int64_t when) {
  timer_disarm(h, t);
  if (h->len == h->cap) {
    h->cap = h->cap ? h->cap * 2 : 16;
    h->v = x_realloc(h->v, (size_t)h->cap * sizeof *h->v);
  }
  t->when = when;
  t->seq = ++h->counter;
  place(h, h->len++, t);
  sift_up(h, t->idx);
}

int64_t timer_next(const timerheap *h) {
  return h->len ? h->v[0]->when : DEADLINE_NONE;
}

int timer_run_due_slow(timerheap *h, int64_t now) {
  int n = 0;
  while (h->len && h->v[0]->when <= now) {
    timer *t = h->v[0];
    timer_disarm(h, t);
    t->fn(t, t->arg);
    n++;
  }
  return n;
}
