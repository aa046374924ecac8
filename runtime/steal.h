/*
** steal.h — portable goroutines between Ps: queueing a go.spawn record,
** taking one to run, and stealing (Go: runqput/runqputslow, globrunqget,
** stealWork, over the locked queues of pgq.h).
**
** Where a record waits (each a pgq, locked, so any thread may put):
**  - p->pinq: records for P p only (go.spawn_on); only p takes, nobody
**    steals.
**  - p->pq: the spawner's P; p takes from it, and an idle P steals half.
**  - rt->global: records past PQ_LOCAL_MAX on the spawner's queue; every
**    P takes from it, first on every 61st round so it never starves.
**
** Invariants:
**  - A queued record counts 1 in rt->n_progress from steal_spawn* until
**    steal_started, so a process with queued work is never quiescent.
**  - No lost wake-up: a spawner breaks one sleeping P's netpoll, and a P
**    about to sleep re-checks steal_pending after publishing `sleeping`.
**  - A taken record is started on the taking P's M, in its VM
**    (rt->start_portable, set by the bindings); records never run twice.
*/
#ifndef GLR_STEAL_H
#define GLR_STEAL_H

#include "sched.h"

/* steal_spawn — queue w on p (the spawner's P) or, past PQ_LOCAL_MAX, on
** the global queue, and wake a sleeping P to steal it. Any thread. */
GLR_INTERNAL void steal_spawn(P *p, portable *w);
/* steal_spawn_on — queue w for target only (go.spawn_on). Any thread. */
GLR_INTERNAL void steal_spawn_on(P *target, portable *w);
/* steal_started — the record became a G: undo its progress count. */
GLR_INTERNAL void steal_started(rt *r);
/* steal_pending — whether any P's queue or the global one holds work
** (atomics only). Any thread. */
GLR_INTERNAL bool steal_pending(rt *r);
/* steal_take — pinned work, own queue, global queue, then stealing; starts
** what it found on p. False if there was nothing. Owner M of p only. */
GLR_INTERNAL bool steal_take(P *p);

#endif
