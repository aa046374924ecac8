/*
** timer.h — a per-P binary min-heap of intrusive timers (Go: timers in
** runtime/time.go, one heap per P).
**
** Invariants:
**  - A heap and every timer in it are touched only by the M that holds the
**    owning P (owner M only); no locks.
**  - A timer is in at most one heap; t->idx is its slot, or -1 when it is
**    not armed. Timers are embedded in their owners (pollDesc, G, ...), so
**    arming allocates nothing but heap growth.
**  - Order is (when, seq): equal deadlines fire in the order they were armed;
**    seq is taken from the heap's counter at every add/modify.
**  - A timer never fires early: timer_run_due fires only when <= now.
**  - Callbacks may add, delete or modify any timer, including themselves.
*/
#ifndef GLR_TIMER_H
#define GLR_TIMER_H

#include "common.h"

typedef struct timer timer;
typedef void (*timer_fn)(timer *t, void *arg);

struct timer {
  int64_t when; /* absolute ns */
  timer_fn fn;  /* called by timer_run_due */
  void *arg;
  uint32_t seq; /* tie-break, from the heap counter; compared modulo 2^32
                ** (timers of one `when` armed 2^31 arms apart are not) */
  int idx;      /* slot in heap, -1 if not armed */
};

typedef struct timerheap {
  timer **v;
  int len, cap;
  uint32_t counter;
} timerheap;

GLR_INTERNAL void timerheap_init(timerheap *h);
GLR_INTERNAL void timerheap_free(timerheap *h);
GLR_INTERNAL void timer_init(timer *t, timer_fn fn, void *arg);
/* timer_arm — add, or move if already armed. */
GLR_INTERNAL void timer_arm(timerheap *h, timer *t, int64_t when);
/* timer_disarm — remove if armed; no-op otherwise. */
GLR_INTERNAL void timer_disarm(timerheap *h, timer *t);
static inline bool timer_armed(const timer *t) { return t->idx >= 0; }
/* timer_next — earliest deadline, or DEADLINE_NONE when empty. */
GLR_INTERNAL int64_t timer_next(const timerheap *h);
GLR_INTERNAL int timer_run_due_slow(timerheap *h, int64_t now);
/* timer_run_due — fires every timer with when <= now; returns how many.
** Inline: the scheduler asks at every round while any timer is armed
** (a connection's deadline timer stays armed between its waits). */
static inline int timer_run_due(timerheap *h, int64_t now) {
  if (h->len == 0 || h->v[0]->when > now) return 0;
  return timer_run_due_slow(h, now);
}

#endif
