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
  sg->linked = false;
}

static waitq *queue_of(chan *c, const sudog *sg) { return sg->isrecv ? &c->recvq : &c->sendq; }

void chan_enqueue(chan *c, sudog *sg) {
  waitq *q = queue_of(c, sg);
  if (sg->c) rt_throw("chan: sudog already queued");
  sg->c = c;
  sg->linked = true;
  sg->next = NULL;
  sg->prev = q->last;
  if (q->last) q->last->next = sg; else q->first = sg;
  q->last = sg;
}

void chan_dequeue(sudog *sg) {
  if (!sg->c) return;
  if (sg->linked) unlink_sg(queue_of(sg->c, sg), sg);
  sg->c = NULL;
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

static void buf_put(chan *c, uint64_t elem) { c->buf[(c->head + c->count++) % c->cap] = elem; }

static uint64_t buf_take(chan *c) {
  uint64_t elem = c->buf[c->head];
  c->head = (c->head + 1) % c->cap;
  c->count--;
  return elem;
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
  if (c->count == c->cap) return CHAN_WOULDBLOCK;
  buf_put(c, elem);
  return CHAN_OK;
}

/* take a parked sender's value: to *elem, or (elem NULL) into the buffer */
static sudog *take_sender(chan *c, uint64_t *elem) {
  sudog *s = claim(&c->sendq);
  if (!s) return NULL;
  if (elem) *elem = s->elem;
  else buf_put(c, s->elem);
  s->elem = 0;
  s->ok = true;
  return s;
}

int chan_tryrecv(chan *c, uint64_t *elem, bool *ok, sudog **woken) {
  if (c->count > 0) {
    *elem = buf_take(c);
    *ok = true;
    *woken = take_sender(c, NULL); /* the buffer was full: admit one */
    return CHAN_OK;
  }
  *ok = (*woken = take_sender(c, elem)) != NULL;
  if (*ok) return CHAN_OK;
  if (!c->closed) return CHAN_WOULDBLOCK;
  *elem = 0;
  return CHAN_OK;
}

/* claim every waiter of q (ok = false) onto the list ending at *tail */
static sudog **claim_all(waitq *q, sudog **tail, bool isrecv) {
  sudog *sg;
  while ((sg = claim(q)) != NULL) {
    if (isrecv) sg->elem = 0;
    sg->ok = false;
    *tail = sg;
    tail = &sg->next;
  }
  return tail;
}

int chan_close(chan *c, sudog **woken) {
  *woken = NULL;
  if (c->closed) return CHAN_CLOSED;
  c->closed = true;
  claim_all(&c->sendq, claim_all(&c->recvq, woken, true), false);
  return CHAN_OK;
}
