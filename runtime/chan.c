/* chan.c — see chan.h. */
#include "chan.h"

#include <stdlib.h>
#include <string.h>

void chan_init(chan *c, uint32_t cap) {
  memset(c, 0, sizeof *c);
  c->cap = cap;
  c->buf = cap ? x_malloc(cap * sizeof *c->buf) : NULL;
}

void chan_free(chan *c) {
  free(c->buf);
  c->buf = NULL;
}

static void unlink_sg(waitq *q, sudog *sg) {
  if (sg->prev) sg->prev->next = sg->next; else q->first = sg->next;
  if (sg->next) sg->next->prev = sg->prev; else q->last = sg->prev;
  sg->next = sg->prev = NULL;
  sg->c = NULL;
}

void chan_enqueue(chan *c, sudog *sg) {
  waitq *q = sg->isrecv ? &c->recvq : &c->sendq;
  if (sg->c) glr_throw("chan: sudog already queued");
  sg->c = c;
  sg->next = NULL;
  sg->prev = q->last;
  if (q->last) q->last->next = sg; else q->first = sg;
  q->last = sg;
}

void chan_dequeue(sudog *sg) {
  if (!sg->c) return;
  unlink_sg(sg->isrecv ? &sg->c->recvq : &sg->c->sendq, sg);
}

/* first live waiter of q, claimed (select siblings lose) and unlinked */
static sudog *claim(waitq *q) {
  sudog *sg;
  while ((sg = q->first) != NULL) {
    unlink_sg(q, sg);
    if (!sg->sel) return sg;
    if (!selstate_claim(sg->sel)) continue;
    sg->sel->fired = sg->caseidx;
    return sg;
  }
  return NULL;
}

int chan_trysend(chan *c, uint64_t elem, sudog **woken) {
  *woken = NULL;
  if (c->closed) return CHAN_CLOSED;
  sudog *r = claim(&c->recvq);
  if (r) {
    r->elem = elem;
    r->ok = true;
    *woken = r;
    return CHAN_OK;
  }
  if (c->count < c->cap) {
    c->buf[(c->head + c->count++) % c->cap] = elem;
    return CHAN_OK;
  }
  return CHAN_WOULDBLOCK;
}

int chan_tryrecv(chan *c, uint64_t *elem, bool *ok, sudog **woken) {
  *woken = NULL;
  if (c->count > 0) {
    *elem = c->buf[c->head];
    c->head = (c->head + 1) % c->cap;
    c->count--;
    *ok = true;
    sudog *s = claim(&c->sendq); /* buffer was full: admit one sender */
    if (s) {
      c->buf[(c->head + c->count++) % c->cap] = s->elem;
      s->ok = true;
      *woken = s;
    }
    return CHAN_OK;
  }
  sudog *s = claim(&c->sendq);
  if (s) {
    *elem = s->elem;
    *ok = true;
    s->ok = true;
    *woken = s;
    return CHAN_OK;
  }
  if (c->closed) {
    *elem = 0;
    *ok = false;
    return CHAN_OK;
  }
  return CHAN_WOULDBLOCK;
}

int chan_close(chan *c, void (*wake)(sudog *, void *), void *arg) {
  if (c->closed) return CHAN_CLOSED;
  c->closed = true;
  sudog *sg;
  while ((sg = claim(&c->recvq)) != NULL) {
    sg->elem = 0;
    sg->ok = false;
    wake(sg, arg);
  }
  while ((sg = claim(&c->sendq)) != NULL) {
    sg->ok = false;
    wake(sg, arg);
  }
  return CHAN_OK;
}

bool chan_has_waiters(const chan *c) {
  return c->recvq.first || c->sendq.first;
}
