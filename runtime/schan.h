/*
** schan.h — shared channel core: a channel usable from every VM (Go:
** runtime/chan.go with its lock). Elements are opaque pointers to encoded
** values (bindings/vcopy.c makes them); the core never looks inside one and
** frees the ones it still holds with the channel's `drop` function.
**
** Threads: any thread may call any function here. Everything in a schan
** except `refs` (atomic) and the constants `cap` and `drop` is guarded by
** its `lock`. An swaiter is written by its owner (the parked G's M) before
** it is queued and after it is woken; while it is queued, only the thread
** holding its channel's lock touches it, and only the one claimer writes
** `ok`, `val` and `sel->fired` (then wakes the owner, outside the lock).
**
** Invariants:
**  - count <= cap; receivers wait only while count == 0 and no sender
**    waits; senders wait only while count == cap and no receiver waits.
**    Buffered values are delivered FIFO; waiters are served FIFO.
**  - A waiter is claimed at most once: a plain operation by being unlinked
**    under the lock, a select case also by the selstate CAS shared with
**    its sibling cases (which may live on other channels, local or shared,
**    and a timer): the winner sets sel->fired; losers are unlinked lazily.
**  - A value given to a parked receiver is moved into its waiter (`val`)
**    and decoded by the receiver itself in its own VM after it wakes; a
**    parked sender's value stays in its waiter until a receiver moves it
**    out (then val == NULL) and is freed by the sender if never taken.
**  - refs: one per handle in a VM, one per encoded copy (buffered or in
**    flight) and one per queued waiter (taken at enqueue, dropped by the
**    waiter's owner at schan_dequeue). The last release drops the buffered
**    values (which may release other channels) and frees the channel;
**    queued waiters cannot exist then, as each holds a ref.
**  - After close: buffered values still drain; parked receivers get
**    ok = false, parked senders get ok = false and keep their value.
**  - A channel whose buffer holds a handle to itself (directly or through
**    other channels) is a reference cycle and is never freed.
*/
#ifndef GLR_SCHAN_H
#define GLR_SCHAN_H

#include <pthread.h>

#include "chan.h"
#include "common.h"

typedef struct schan schan;
typedef struct swaiter swaiter;

struct swaiter {
  void *g;          /* the parked goroutine (opaque here) */
  selstate *sel;    /* NULL for a plain send/recv */
  int caseidx;
  bool isrecv;
  bool ok;          /* claimer: value delivered / taken; false = closed */
  bool linked;      /* guarded by home->lock */
  bool token;       /* claimer: it counted a progress token (bindings) */
  void *val;        /* send: value offered; recv: value received */
  schan *home;      /* set (with a ref) at enqueue; owner clears */
  swaiter *next, *prev; /* guarded by home->lock */
};

typedef struct swaitq {
  swaiter *first, *last;
} swaitq;

struct schan {
  pthread_mutex_t lock;
  _Atomic long refs;
  uint32_t cap;           /* const */
  void (*drop)(void *v);  /* const: frees an element */
  uint32_t count, head;   /* guarded by lock */
  void **buf;             /* guarded by lock */
  bool closed;            /* guarded by lock */
  swaitq recvq, sendq;    /* guarded by lock */
};

/* schan_new — a channel with one ref (the caller's). */
GLR_INTERNAL schan *schan_new(uint32_t cap, void (*drop)(void *v));
GLR_INTERNAL void schan_retain(schan *c);
/* schan_release — drops a ref; the last one frees the channel. */
GLR_INTERNAL void schan_release(schan *c);
/* number of live channels (leak checks) */
GLR_INTERNAL long schan_live(void);

GLR_INTERNAL void schan_lock(schan *c);
GLR_INTERNAL void schan_unlock(schan *c);
/* schan_lock_many — lock n channels (duplicates allowed) in address order
** (Go: sellock); sorts cs in place. schan_unlock_many undoes it. */
GLR_INTERNAL void schan_lock_many(schan **cs, int n);
GLR_INTERNAL void schan_unlock_many(schan **cs, int n);

/* With c locked. The woken waiter (returned in *woken, or NULL) has been
** claimed and unlinked; the caller wakes its owner after unlocking.
** schan_send_locked — CHAN_OK: v was buffered or handed to *woken (the
** caller no longer owns it); CHAN_WOULDBLOCK / CHAN_CLOSED: v untouched. */
GLR_INTERNAL int schan_send_locked(schan *c, void *v, swaiter **woken);
/* schan_recv_locked — CHAN_OK with *v (the caller owns it) and *ok; on a
** closed, drained channel *v = NULL and *ok = false; else WOULDBLOCK. */
GLR_INTERNAL int schan_recv_locked(schan *c, void **v, bool *ok, swaiter **woken);
/* schan_enqueue_locked — queue w (isrecv decides the queue); retains c. */
GLR_INTERNAL void schan_enqueue_locked(schan *c, swaiter *w);
GLR_INTERNAL uint32_t schan_len(schan *c);
GLR_INTERNAL bool schan_closed(schan *c);

/* schan_dequeue — by the waiter's owner once it runs again (or when its
** memory goes): unlinks w if still queued, drops the waiter's ref. */
GLR_INTERNAL void schan_dequeue(swaiter *w);
/* schan_close — CHAN_CLOSED if already closed; else claims every waiter
** (ok = false) and returns them in *woken, linked through `next`: the
** caller wakes each (read `next` first) after the call. */
GLR_INTERNAL int schan_close(schan *c, swaiter **woken);

#endif
