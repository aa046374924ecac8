/*
** runq.h — a P's local run queue (Go: runqput/runqget and p.runnext).
**
** A bounded ring of RUNQ_SIZE entries plus a `runnext` slot and an
** overflow FIFO used only when the ring is full. Local goroutines never leave
** their VM, so nothing steals from this queue: it is touched only by the M
** that holds the P (owner M only; no atomics needed). Cross-thread wake-ups go
** through the P's inbox instead (sched.h).
**
** Invariants: every entry is a distinct non-NULL pointer; FIFO order among
** the ring and the overflow (overflow entries are always younger than ring
** entries); `runnext`, when set, is taken before the ring, and a new
** runnext kicks the old one to the tail (Go's behaviour). Goroutines their
** own timer woke (go.sleep, a select's timeout) sit in a short `timed` FIFO
** taken before runnext: Go's timer goready takes runnext too, but there it
** would kick a G readied earlier to the tail, and a second timer due in the
** same round would kick the first; here both run next, in deadline order,
** and whatever sits in runnext runs after them (a ticker is never late by
** a whole run queue). Past RUNQ_TIMED entries, a timed G goes to the tail.
*/
#ifndef GLR_RUNQ_H
#define GLR_RUNQ_H

#include "common.h"

#define RUNQ_SIZE 256
#define RUNQ_TIMED 16

typedef struct runq {
  void *ring[RUNQ_SIZE];
  uint32_t head, tail; /* tail - head = number in ring */
  void *runnext;
  void *timed[RUNQ_TIMED]; /* FIFO ring, taken before runnext */
  uint32_t timed_head, timed_len;
  void **over; /* overflow FIFO */
  size_t over_head, over_len, over_cap;
} runq;

GLR_INTERNAL void runq_init(runq *q);
GLR_INTERNAL void runq_free(runq *q);
/* runq_put — Go: runqput. next=true puts it in runnext. */
GLR_INTERNAL void runq_put(runq *q, void *g, bool next);
/* runq_put_timed — a G its own timer woke: runs before runnext, after any
** timed G put before it (tail when RUNQ_TIMED are waiting). */
GLR_INTERNAL void runq_put_timed(runq *q, void *g);
/* runq_get — Go: runqget: the timed FIFO, runnext, the ring. NULL when empty. */
GLR_INTERNAL void *runq_get(runq *q);
GLR_INTERNAL size_t runq_len(const runq *q);

#endif
