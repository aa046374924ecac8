/*
** chan.h — channel core (Go: runtime/chan.go, select.go), element type
** uint64_t (the Lua binding stores values under these keys).
**
** Invariants:
**  - A local channel belongs to one VM and is touched only by the M holding
**    that VM's P (owner M only): no locks. (Shared channels: schan.h.)
**  - count <= cap; receivers wait only while count == 0 and no sender
**    waits; senders wait only while count == cap and no receiver waits.
**  - Buffered values are delivered FIFO; waiters are served FIFO.
**  - A sudog lives in the waiting G's record (or its select frame) and is
**    linked into at most one wait queue; select sudogs share a selstate, and
**    the first counterpart that fires one marks it done: siblings are then
**    skipped and unlinked lazily (Go: selectDone). The mark is an atomic
**    compare-and-swap because a select may also wait on shared channels
**    (schan.h), whose counterparts run on other threads and claim the same
**    selstate; the winner writes `fired` before it wakes the G.
**  - After close: no value is lost (buffered values still drain), blocked
**    receivers get ok=false, blocked senders get ok=false (the binding
**    raises "send on closed channel").
*/
#ifndef GLR_CHAN_H
#define GLR_CHAN_H

#include "common.h"

typedef struct chan chan;
typedef struct sudog sudog;

typedef struct selstate {
  _Atomic bool done; /* claimed: set once, by compare-and-swap */
  int fired;         /* caseidx of the sudog that fired (-1: timeout) */
} selstate;

/* selstate_claim — true for the one caller that marks sel done. */
static inline bool selstate_claim(selstate *sel) {
  bool expect = false;
  return atomic_compare_exchange_strong(&sel->done, &expect, true);
}

struct sudog {
  void *g;        /* waiting G */
  uint64_t elem;  /* send: value to deliver; recv: value received */
  bool ok;        /* recv: a value arrived; send: delivered (false = closed) */
  bool isrecv;
  int caseidx;
  selstate *sel;  /* NULL for a plain send/recv */
  sudog *next, *prev;
  chan *c;        /* queue it is linked into, NULL if none */
};

typedef struct waitq {
  sudog *first, *last;
} waitq;

struct chan {
  uint32_t cap, count, head;
  uint64_t *buf;
  bool closed;
  waitq recvq, sendq;
};

enum chan_result { CHAN_OK = 0, CHAN_WOULDBLOCK = 1, CHAN_CLOSED = 2 };

GLR_INTERNAL void chan_init(chan *c, uint32_t cap);
GLR_INTERNAL void chan_free(chan *c);
/* chan_trysend — deliver to a waiting receiver (returned in *woken: the
** caller readies woken->g) or buffer; CHAN_WOULDBLOCK if neither. */
GLR_INTERNAL int chan_trysend(chan *c, uint64_t elem, sudog **woken);
/* chan_tryrecv — take a buffered value or a waiting sender's; on a closed,
** drained channel returns CHAN_OK with *ok = false. */
GLR_INTERNAL int chan_tryrecv(chan *c, uint64_t *elem, bool *ok, sudog **woken);
/* chan_enqueue — link a sudog (isrecv decides the queue). */
GLR_INTERNAL void chan_enqueue(chan *c, sudog *sg);
/* chan_dequeue — unlink a sudog if still linked. */
GLR_INTERNAL void chan_dequeue(sudog *sg);
/* chan_close — CHAN_CLOSED if already closed; else wakes every waiter
** through wake(sg, arg) with sg->ok = false. */
GLR_INTERNAL int chan_close(chan *c, void (*wake)(sudog *, void *), void *arg);
GLR_INTERNAL bool chan_has_waiters(const chan *c);

#endif
