/* schan.c — see schan.h. */
#include "schan.h"

#include <stdlib.h>

static _Atomic long nlive;

schan *schan_new(uint32_t cap, void (*drop)(void *v)) {
  schan *c = x_calloc(1, sizeof *c);
  pthread_mutex_init(&c->lock, NULL);
  atomic_init(&c->refs, 1);
  c->cap = cap;
  c->drop = drop;
  c->buf = cap ? x_malloc(cap * sizeof *c->buf) : NULL;
  atomic_fetch_add(&nlive, 1);
  return c;
}

long schan_live(void) { return atomic_load(&nlive); }

void schan_retain(schan *c) { atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed); }

void schan_release(schan *c) {
  if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1) return;
  /* no other thread can reach c now: no lock needed */
  if (c->recvq.first || c->sendq.first) glr_throw("schan: freed with waiters");
  for (uint32_t i = 0; i < c->count; i++) c->drop(c->buf[(c->head + i) % c->cap]);
  free(c->buf);
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

static void unlink_w(swaitq *q, swaiter *w) {
  if (w->prev) w->prev->next = w->next; else q->first = w->next;
  if (w->next) w->next->prev = w->prev; else q->last = w->prev;
  w->next = w->prev = NULL;
  w->linked = false;
}

void schan_enqueue_locked(schan *c, swaiter *w) {
  if (w->linked || w->home) glr_throw("schan: waiter already queued");
  swaitq *q = w->isrecv ? &c->recvq : &c->sendq;
  schan_retain(c);
  w->home = c;
  w->linked = true;
  w->next = NULL;
  w->prev = q->last;
  if (q->last) q->last->next = w; else q->first = w;
  q->last = w;
}

void schan_dequeue(swaiter *w) {
  schan *c = w->home;
  if (!c) return;
  schan_lock(c);
  if (w->linked) unlink_w(w->isrecv ? &c->recvq : &c->sendq, w);
  schan_unlock(c);
  w->home = NULL;
  schan_release(c);
}

/* first live waiter of q, claimed (select siblings lose) and unlinked */
static swaiter *claim(swaitq *q) {
  swaiter *w;
  while ((w = q->first) != NULL) {
    unlink_w(q, w);
    if (!w->sel) return w;
    if (!selstate_claim(w->sel)) continue;
    w->sel->fired = w->caseidx;
    return w;
  }
  return NULL;
}

static void buf_put(schan *c, void *v) { c->buf[(c->head + c->count++) % c->cap] = v; }

int schan_send_locked(schan *c, void *v, swaiter **woken) {
  *woken = NULL;
  if (c->closed) return CHAN_CLOSED;
  swaiter *r = claim(&c->recvq);
  if (r) {
    r->val = v;
    r->ok = true;
    *woken = r;
    return CHAN_OK;
  }
  if (c->count < c->cap) {
    buf_put(c, v);
    return CHAN_OK;
  }
  return CHAN_WOULDBLOCK;
}

/* take a parked sender's value: into the buffer's tail, or to *v */
static swaiter *take_sender(schan *c, void **v) {
  swaiter *s = claim(&c->sendq);
  if (!s) return NULL;
  if (v) *v = s->val;
  else buf_put(c, s->val);
  s->val = NULL;
  s->ok = true;
  return s;
}

int schan_recv_locked(schan *c, void **v, bool *ok, swaiter **woken) {
  *woken = NULL;
  if (c->count > 0) {
    *v = c->buf[c->head];
    c->head = (c->head + 1) % c->cap;
    c->count--;
    *ok = true;
    *woken = take_sender(c, NULL); /* the buffer was full: admit one */
    return CHAN_OK;
  }
  if ((*woken = take_sender(c, v)) != NULL) {
    *ok = true;
    return CHAN_OK;
  }
  if (c->closed) {
    *v = NULL;
    *ok = false;
    return CHAN_OK;
  }
  return CHAN_WOULDBLOCK;
}

uint32_t schan_len(schan *c) {
  schan_lock(c);
  uint32_t n = c->count;
  schan_unlock(c);
  return n;
}

bool schan_closed(schan *c) {
  schan_lock(c);
  bool b = c->closed;
  schan_unlock(c);
  return b;
}

/* claim every waiter of q onto *list (ok = false) */
static void claim_all(swaitq *q, swaiter **list) {
  swaiter *w;
  while ((w = claim(q)) != NULL) {
    w->ok = false;
    w->next = *list;
    *list = w;
  }
}

int schan_close(schan *c, swaiter **woken) {
  *woken = NULL;
  schan_lock(c);
  if (c->closed) {
    schan_unlock(c);
    return CHAN_CLOSED;
  }
  c->closed = true;
  claim_all(&c->recvq, woken);
  claim_all(&c->sendq, woken);
  schan_unlock(c);
  return CHAN_OK;
}
