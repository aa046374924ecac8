/*
** schan.h — shared channel: a channel usable from every VM (Go:
** runtime/chan.go with its lock) = the core of chan.h + a mutex + refs +
** the `drop` function for the elements it still holds. Elements are
** pointers to encoded values (bindings/vcopy.c makes them) stored as
** words; the core never looks inside one.
**
** Threads: any thread may call any function here. The core `c` is guarded
** by `lock` (c.cap is const); `refs` is atomic, `drop` const. Sending,
** receiving and enqueueing are the core's chan_trysend / chan_tryrecv /
** schan_enqueue_locked called with the lock held (schan_lock, or
** schan_lock_many for a select); the waiter they return is woken by the
** caller after unlocking. A sudog's rules are chan.h's.
**
** Invariants (beyond chan.h's):
**  - A value given to a parked receiver is decoded by the receiver itself,
**    in its own VM, after it wakes; a parked sender's value not taken is
**    freed by the sender.
**  - refs: one per handle in a VM, one per encoded copy (buffered or in
**    flight) and one per queued sudog (taken at schan_enqueue_locked,
**    dropped by the sudog's owner at schan_dequeue, so a claimer that
**    unlinks a sudog never frees the channel under its owner). The last
**    release drops the buffered values (which may release other channels)
**    and frees the channel; queued sudogs cannot exist then.
**  - A channel whose buffer holds a handle to itself (directly or through
**    other channels) is a reference cycle and is never freed.
*/
#ifndef GLR_SCHAN_H
#define GLR_SCHAN_H

#include <pthread.h>

#include "chan.h"
#include "common.h"

typedef struct schan schan;

struct schan {
  chan c;                       /* first member; guarded by lock */
  pthread_mutex_t lock;
  _Atomic long refs;
  void (*drop)(uint64_t elem);  /* const: frees an element */
};

/* schan_new — a channel with one ref (the caller's). */
GLR_INTERNAL schan *schan_new(uint32_t cap, void (*drop)(uint64_t elem));
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

/* schan_enqueue_locked — with c locked: chan_enqueue, plus the sudog's ref. */
GLR_INTERNAL void schan_enqueue_locked(schan *c, sudog *sg);
/* schan_dequeue — by the sudog's owner once it runs again (or when its
** memory goes): locks, unlinks sg if still queued, drops sg's ref. A
** no-op if sg is not on a channel. */
GLR_INTERNAL void schan_dequeue(sudog *sg);
/* schan_close — chan_close under the lock: the caller wakes *woken. */
GLR_INTERNAL int schan_close(schan *c, sudog **woken);
GLR_INTERNAL uint32_t schan_len(schan *c);

#endif
