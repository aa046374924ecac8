/*
** workpool.h — a small pool of worker threads for blocking calls that can
** wait elsewhere (getaddrinfo...): the goroutine parks, a worker runs the
** job, and the job's completion readies the goroutine (runtime/HACKING.md,
** "Worker pool").
**
** Invariants:
**  - Jobs are queued FIFO under pool.lock; at most WORKPOOL_MAX threads,
**    started lazily, detached, never touching a VM: a job's run() may only
**    use memory the job owns. done() runs on the worker after run() (for a
**    goroutine waiter: glr_ready, which is safe from any thread).
**  - A job is owned by its submitter until done() has been called; the
**    worker does not touch it afterwards.
**  - Process-wide (one pool for all runtimes); idle workers sleep on a
**    condition variable, never spin.
*/
#ifndef GLR_WORKPOOL_H
#define GLR_WORKPOOL_H

#include "common.h"

#define WORKPOOL_MAX 64 /* threads start lazily; a silent stdin holds one */

typedef struct workjob workjob;
struct workjob {
  void (*run)(workjob *j);  /* on a worker thread */
  void (*done)(workjob *j); /* on the same worker, after run */
  workjob *next;            /* guarded by the pool lock */
};

/* workpool_submit — queue j; 0, or -errno if no thread could be started */
GLR_INTERNAL int workpool_submit(workjob *j);

/* workpool_outstanding — jobs submitted whose done() has not returned yet
** (rt_free leaves the runtime's memory alone while any may still wake a
** goroutine) */
GLR_INTERNAL int workpool_outstanding(void);

#endif
