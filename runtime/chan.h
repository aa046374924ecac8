/*
** chan.h — the one channel core (Go: runtime/chan.go, select.go): a ring
** buffer of words, two FIFO wait queues of sudogs, one claim. Local
** channels use it bare; shared channels (schan.h) wrap it with a mutex,
** refs and a `drop` for the elements they still hold.
**
** Elements are uint64_t words the core never looks into: a local channel
** stores a key into its Lua table (bindings/lchan.c), a shared one a pointer
** to an encoded value (bindings/lschan.c). 0 is never a value: a sudog's
** elem == 0 means "holds nothing".
**
** Threads: a chan is guarded by its owner's rule — a local one is touched
** only by the M holding its VM's P (owner M only), a shared one only under
** its schan lock. "Under c's lock" below means whichever applies.
**
** Invariants:
**  - count <= cap; receivers wait only while count == 0 and no sender
**    waits; senders wait only while count == cap and no receiver waits.
**  - Buffered values are delivered FIFO; waiters are served FIFO.
**  - A sudog is written by its owner (the waiting G's M) before
**    chan_enqueue and after chan_dequeue. In between it is linked into at
**    most one queue (`linked`) and only code under c's lock touches its
**    queue fields; the one claimer writes `elem`, `ok` and `sel->fired`,
**    then the owner is woken (by the caller, after unlocking).
**  - A waiter is claimed at most once: a plain one by being unlinked, a
**    select case also by the selstate CAS shared with its sibling cases
**    (which may sit on other channels, local or shared, and a timer, so
**    the claimer may run on any thread): the winner writes `fired` before
**    it wakes the G; losers are skipped and unlinked lazily (Go:
**    selectDone).
**  - A value handed to a parked receiver is moved into its elem; a parked
**    sender's value is moved out of its elem (elem = 0) when taken, and
**    stays there if the channel closes (the sender frees it).
**  - After close: no value is lost (buffered values still drain), parked
**    receivers get ok = false (elem = 0), parked senders get ok = false
**    (the binding raises "send on closed channel").
*/
#ifndef GLR_CHAN_H
#define GLR_CHAN_H

#include "common.h"

typedef struct chan chan;
typedef struct sudog sudog;

typedef struct selstate {
  _Atomic bool done; /* claimed: set once, by compare-and-swap */
  int fired;         /* written by the claimer: caseidx that fired, -1 timeout */
} selstate;

/* selstate_claim — true for the one caller that marks sel done. */
static inline bool selstate_claim(selstate *sel) {
  bool expect = false;
  return atomic_compare_exchange_strong(&sel->done, &expect, true);
}

/* sudog — a G waiting on a channel (Go: sudog). Lives in the G's record or
** its select frame: waiting allocates nothing. */
struct sudog {
  void *g;            /* owner: the waiting G (opaque here) */
  selstate *sel;      /* owner: NULL for a plain send/recv */
  chan *c;            /* owner: queued on, set by chan_enqueue until chan_dequeue */
  sudog *next, *prev; /* under c's lock; chan_close's list reuses next */
  uint64_t elem;      /* send: value offered; recv: value received (claimer) */
  int caseidx;        /* owner */
  bool isrecv;        /* owner */
  bool linked;        /* under c's lock: in c's queue */
  bool ok;            /* claimer: delivered / taken; false = closed */
  bool token;         /* waker: bindings' progress token (shared channels) */
};

typedef struct waitq {
  sudog *first, *last;
} waitq;

struct chan {
  uint32_t cap;         /* const */
  uint32_t count, head; /* under c's lock */
  uint64_t *buf;        /* under c's lock */
  bool closed;          /* under c's lock */
  waitq recvq, sendq;   /* under c's lock */
};

enum chan_result { CHAN_OK = 0, CHAN_WOULDBLOCK = 1, CHAN_CLOSED = 2 };

GLR_INTERNAL void chan_init(chan *c, uint32_t cap);
GLR_INTERNAL void chan_free(chan *c);
/* All below under c's lock. The waiter returned in *woken (or NULL) has
** been claimed and unlinked; the caller wakes its owner (after unlocking).
** chan_trysend — CHAN_OK: elem was buffered or handed to *woken (the caller
** no longer owns it); CHAN_WOULDBLOCK / CHAN_CLOSED: elem untouched. */
GLR_INTERNAL int chan_trysend(chan *c, uint64_t elem, sudog **woken);
/* chan_tryrecv — CHAN_OK with *elem (the caller owns it) and *ok; on a
** closed, drained channel *elem = 0 and *ok = false; else WOULDBLOCK. */
GLR_INTERNAL int chan_tryrecv(chan *c, uint64_t *elem, bool *ok, sudog **woken);
/* chan_peek_plain_recv — the receiver chan_trysend would hand to next if
** it is a plain (not select) one, else NULL: a plain waiter is claimed by
** no one but the next sender, so the caller may prepare the hand-off
** before calling chan_trysend (which then returns it in *woken). */
static inline sudog *chan_peek_plain_recv(const chan *c) {
  sudog *r = c->closed ? NULL : c->recvq.first;
  return r && !r->sel ? r : NULL;
}
/* chan_enqueue — queue sg (isrecv decides the queue) and set sg->c. */
GLR_INTERNAL void chan_enqueue(chan *c, sudog *sg);
/* chan_dequeue — by the owner once it runs again: unlink sg if still
** queued and clear sg->c; a no-op if sg->c is NULL. */
GLR_INTERNAL void chan_dequeue(sudog *sg);
/* chan_close — CHAN_CLOSED if already closed; else claims every waiter
** (ok = false) and returns them in *woken, receivers then senders, each in
** queue order, linked through `next`: the caller wakes each (reading
** `next` first) after unlocking. */
GLR_INTERNAL int chan_close(chan *c, sudog **woken);

#endif
