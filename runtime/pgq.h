/*
** pgq.h — queues of portable goroutines (go.spawn records): one per P and
** one global (Go: the global run queue and runqsteal). A portable
** goroutine is a C record until some P starts it in its own VM, so any P may
** take it: this is the unit of work stealing.
**
** Invariants: every queue has its own mutex (portable work is rare next to
** local scheduling, so a lock is simpler than Go's lock-free ring); a record
** is in at most one queue; pgq_steal_half moves ceil(n/2) records from the
** victim's head, never from the thief's own queue. Any thread.
*/
#ifndef GLR_PGQ_H
#define GLR_PGQ_H

#include <pthread.h>

#include "common.h"

typedef struct portable portable;
struct portable {
  portable *next; /* guarded by the lock of the queue it is in */
};

typedef struct pgq {
  pthread_mutex_t lock;
  portable *head, *tail; /* guarded by lock */
  _Atomic int n;         /* atomic: length, read without the lock */
} pgq;

GLR_INTERNAL void pgq_init(pgq *q);
GLR_INTERNAL void pgq_free(pgq *q);
GLR_INTERNAL void pgq_put(pgq *q, portable *w);
GLR_INTERNAL portable *pgq_get(pgq *q);
/* pgq_steal_half — moves half of victim (rounded up) to dst; returns how
** many moved */
GLR_INTERNAL int pgq_steal_half(pgq *victim, pgq *dst);

#endif
