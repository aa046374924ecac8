/*
** pd.h — pollDesc: per-fd wait slots and the type-stable pollDesc cache
** (Go: runtime/netpoll.go, pollDesc / pollCache / netpollblock).
**
** Wait slots: rg (readers) and wg (writers) each hold one of
**   PD_NIL    nobody waits, no readiness pending
**   PD_READY  readiness arrived while nobody waited; the next wait consumes it
**   PD_WAIT   a G is about to park (it has not yet left its stack)
**   G*        a parked G; only the unblocker that swaps it out may ready it
** At most one G waits per direction ("double wait" is a bug and throws; the
** net layer serialises readers and writers). The G pointer is written only by
** pd_block_commit, after the G is off its stack (Go: netpollblockcommit), so
** a READY that races the park is never lost: the commit sees it and the G is
** rescheduled at once.
**
** Cache: pollDescs are allocated in slabs and never returned to malloc.
** `seq` is bumped on every reuse and close; events and timers carry the seq
** they were armed with and are dropped when it no longer matches (the ABA
** case of an fd number reused after close). rg/wg/seq/closing are atomics and
** may be touched by any thread; every other field belongs to the M that holds
** the owning P (owner M only).
**
** Idle watch (watch/watch_arg, iowait_watch): a pollDesc nobody waits on may
** be handed to a callback instead (an idle conn parked in a pool): the next
** read-side event (readable, RDHUP, HUP, ERR) or the read timer calls it
** once, with the watch already off. No G may wait in rg while it is set;
** its deadline is in rd_op, and, as a wait's, its timer is not taken down
** when it ends (the read timer fires, finds no watch due, and re-arms or
** drops itself).
*/
#ifndef GLR_PD_H
#define GLR_PD_H

#include "common.h"
#include "timer.h"

#define PD_NIL ((uintptr_t)0)
#define PD_READY ((uintptr_t)1)
#define PD_WAIT ((uintptr_t)2)

enum pd_mode { PD_MODE_R = 1, PD_MODE_W = 2 };

typedef struct pollDesc pollDesc;
/* pd_watch_fn — an idle watch fired: events are epoll's, 0 for the timer */
typedef void (*pd_watch_fn)(pollDesc *pd, void *arg, uint32_t events);
/* (laid out without holes: one per connection, 176 bytes) */
struct pollDesc {
  uint32_t idx;             /* const after first allocation: slot in cache */
  _Atomic uint32_t seq;     /* atomic: bumped on reuse and close */
  _Atomic uintptr_t rg, wg; /* atomic: wait slots, see above */
  union {
    void *owner;            /* in use, owner M only: the P whose epoll holds fd */
    pollDesc *next_free;    /* free, guarded by the cache lock */
  };
  /* deadlines, absolute ns, DEADLINE_NONE when unset (owner M only) */
  int64_t rd_user, wd_user; /* set by set*deadline, persistent */
  int64_t rd_op, wd_op;     /* per-operation (idle timeout), while waiting;
                            ** rd_op: an idle watch's deadline while set */
  timer rt, wt;             /* deadline timers on the owner's heap */
  pd_watch_fn watch;        /* owner M only: idle watch, or NULL */
  void *watch_arg;          /* owner M only: its argument */
  int fd;                   /* owner M only */
  uint32_t rseq, wseq;      /* seq captured when rt/wt were armed */
  int syncfd_r, syncfd_w;   /* owner M only: eventfd of an M blocked in poll()
                               on this fd (iowait_block), or -1 */
  unsigned char mock_r, mock_w; /* fault injection call counters (parity) */
  _Atomic bool closing;     /* atomic: set by close before waking waiters */
  bool registered;          /* owner M only: added to owner's epoll */
  bool rdrained;            /* owner M only: the last read found the socket
                               drained (short read or EAGAIN); see sockio.c */
  bool rdhup;               /* owner M only: RDHUP/HUP/ERR seen (sticky) */
  bool drain_ok;            /* owner M only: a TCP socket, where a short
                               read proves no data is pending */
};

/* pd_alloc — a clean pollDesc for fd with a fresh seq. Thread-safe. */
GLR_INTERNAL pollDesc *pd_alloc(int fd);
/* pd_free — back to the cache; the caller made sure no G waits on it and
** its timers are disarmed. Thread-safe. */
GLR_INTERNAL void pd_free(pollDesc *pd);
/* pd_lookup — the pollDesc in slot idx, or NULL if never allocated. */
GLR_INTERNAL pollDesc *pd_lookup(uint32_t idx);
/* pd_cache_stats — number of pollDescs ever allocated / now in use. */
GLR_INTERNAL void pd_cache_stats(size_t *allocated, size_t *inuse);

/* tagged epoll data: slot index and seq */
static inline uint64_t pd_tag(pollDesc *pd) {
  return ((uint64_t)pd->idx << 32) | atomic_load(&pd->seq);
}
/* pd_from_tag — the pollDesc named by an event, or NULL if stale. */
GLR_INTERNAL pollDesc *pd_from_tag(uint64_t tag);

enum pd_prepare_result { PD_PREP_READY = 0, PD_PREP_WAIT = 1 };
/* pd_block_prepare — Go: first half of netpollblock. Consumes a pending
** READY (returns PD_PREP_READY) or sets the slot to WAIT (PD_PREP_WAIT). */
GLR_INTERNAL int pd_block_prepare(pollDesc *pd, int mode);
/* pd_block_commit — Go: netpollblockcommit. WAIT -> g; false when a wake
** came first (the G must not park). */
GLR_INTERNAL bool pd_block_commit(pollDesc *pd, int mode, void *g);
/* pd_block_finish — after the G runs again: clears the slot; true if it
** was woken by readiness (READY), false by close/deadline. */
GLR_INTERNAL bool pd_block_finish(pollDesc *pd, int mode);
/* pd_unblock — Go: netpollunblock. Returns the parked G the caller must
** ready, or NULL. ioready=true leaves READY when nobody waits. */
GLR_INTERNAL void *pd_unblock(pollDesc *pd, int mode, bool ioready);

#endif
