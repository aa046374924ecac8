/*
** test_timer.c — the per-P timer heap (runtime/timer.h).
**
** A reference model (armed flag, deadline and arm order per timer) predicts
** exactly which timers timer_run_due fires and in which order: every timer
** with when <= now, ordered by (when, arm order), each exactly once, none
** early. Deadlines are drawn from a coarse grid so equal deadlines are common.
** Separate tests cover ties, callbacks that arm/disarm others and re-arm
** themselves, timer_next, and disarm of an unarmed timer.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../runtime/timer.h"
#include "check.h"

static uint64_t rng = 0x243F6A8885A308D3ull;
static uint64_t rnd(void) { return check_xorshift(&rng); }

/* ------------------------------------------------------------------ */
/* heap structure check                                                */

static void check_heap(const timerheap *h) {
  for (int i = 0; i < h->len; i++) {
    const timer *t = h->v[i];
    CHECK_EQ(t->idx, i);
    if (i > 0) {
      const timer *p = h->v[(i - 1) / 2];
      CHECK(p->when < t->when || (p->when == t->when && p->seq < t->seq));
    }
  }
}

/* ------------------------------------------------------------------ */
/* random model test                                                   */

enum { NT = 10000 };
static timer T[NT];
static struct {
  bool armed;
  int64_t when;
  uint64_t order; /* model arm counter at the last arm */
  unsigned fired;
} M[NT];
static uint64_t m_order;
static int m_narmed;

static int64_t cur_now;
static int *fire_log;
static int nlog, caplog;

static void log_fire(timer *t, void *arg) {
  int i = (int)(intptr_t)arg;
  CHECK(t == &T[i]);
  CHECK(!timer_armed(t));    /* removed before its callback runs */
  CHECK(t->when <= cur_now); /* never early */
  if (nlog == caplog) {
    caplog = caplog ? caplog * 2 : 1024;
    fire_log = realloc(fire_log, (size_t)caplog * sizeof *fire_log);
    CHECK(fire_log != NULL);
  }
  fire_log[nlog++] = i;
}

static void m_arm(timerheap *h, int i, int64_t when) {
  timer_arm(h, &T[i], when);
  if (!M[i].armed) m_narmed++;
  M[i].armed = true;
  M[i].when = when;
  M[i].order = ++m_order;
  CHECK(timer_armed(&T[i]));
  CHECK_EQ(T[i].when, when);
}

static void m_disarm(timerheap *h, int i) {
  timer_disarm(h, &T[i]);
  if (M[i].armed) m_narmed--;
  M[i].armed = false;
  CHECK(!timer_armed(&T[i]));
}

static int64_t m_next(void) {
  int64_t best = DEADLINE_NONE;
  for (int i = 0; i < NT; i++)
    if (M[i].armed && (best == DEADLINE_NONE || M[i].when < best)) best = M[i].when;
  return best;
}

static int cmp_due(const void *a, const void *b) {
  int i = *(const int *)a, j = *(const int *)b;
  if (M[i].when != M[j].when) return M[i].when < M[j].when ? -1 : 1;
  return M[i].order < M[j].order ? -1 : M[i].order > M[j].order;
}

static int due[NT];

static void m_run(timerheap *h, int64_t now) {
  int n = 0;
  for (int i = 0; i < NT; i++)
    if (M[i].armed && M[i].when <= now) due[n++] = i;
  qsort(due, (size_t)n, sizeof *due, cmp_due);
  cur_now = now;
  nlog = 0;
  int fired = timer_run_due(h, now);
  CHECK_EQ(fired, n);
  CHECK_EQ(nlog, n);
  for (int k = 0; k < n; k++) {
    CHECK_EQ(fire_log[k], due[k]);
    M[due[k]].armed = false;
    M[due[k]].fired++;
    m_narmed--;
  }
  CHECK_EQ(h->len, m_narmed);
  CHECK(timer_next(h) == m_next());
  CHECK(timer_next(h) == DEADLINE_NONE || timer_next(h) > now);
}

/* a deadline on a coarse grid around `base`; sometimes already passed */
static int64_t rand_when(int64_t base) {
  int64_t w = base + (int64_t)(rnd() % 3000) * 1000 - 20000;
  return w < 1 ? 1 : w; /* 0 is DEADLINE_NONE */
}

static void test_random_model(void) {
  timerheap h;
  timerheap_init(&h);
  memset(M, 0, sizeof M);
  m_order = 0;
  m_narmed = 0;
  for (int i = 0; i < NT; i++) timer_init(&T[i], log_fire, (void *)(intptr_t)i);

  int64_t now = 1000000;
  /* arm all 10,000 in a random order first */
  for (int i = 0; i < NT; i++) m_arm(&h, (int)(rnd() % NT), rand_when(now));
  check_heap(&h);

  unsigned long n_arm = 0, n_earlier = 0, n_later = 0, n_disarm = 0,
                n_disarm_noop = 0, n_run = 0;
  for (int step = 0; step < 200000; step++) {
    int i = (int)(rnd() % NT);
    unsigned op = (unsigned)(rnd() % 100);
    if (op < 30) {
      m_arm(&h, i, rand_when(now));
      n_arm++;
    } else if (op < 45) {
      if (M[i].armed) { /* modify earlier (may become due) */
        int64_t w = M[i].when - 1 - (int64_t)(rnd() % 50) * 1000;
        m_arm(&h, i, w < 1 ? 1 : w);
        n_earlier++;
      }
    } else if (op < 60) {
      if (M[i].armed) { /* modify later */
        m_arm(&h, i, M[i].when + 1 + (int64_t)(rnd() % 50) * 1000);
        n_later++;
      }
    } else if (op < 80) {
      if (!M[i].armed) n_disarm_noop++;
      else n_disarm++;
      m_disarm(&h, i); /* disarm of an unarmed timer is a no-op */
    } else if (op < 81) {
      now += (int64_t)(rnd() % 30) * 1000; /* may stay equal */
      m_run(&h, now);
      n_run++;
    }
    CHECK_EQ(h.len, m_narmed);
    if (step % 997 == 0) {
      check_heap(&h);
      CHECK(timer_next(&h) == m_next());
    }
  }
  /* everything left fires exactly once when time runs out */
  m_run(&h, INT64_MAX - 1);
  CHECK_EQ(h.len, 0);
  CHECK(timer_next(&h) == DEADLINE_NONE);
  unsigned long total = 0;
  for (int i = 0; i < NT; i++) total += M[i].fired;
  printf("random: %lu arms, %lu earlier, %lu later, %lu disarms (+%lu no-op), "
         "%lu runs, %lu fired\n",
         n_arm, n_earlier, n_later, n_disarm, n_disarm_noop, n_run, total);
  /* running again fires nothing */
  CHECK_EQ(timer_run_due(&h, INT64_MAX), 0);
  timerheap_free(&h);
  free(fire_log);
  fire_log = NULL;
  nlog = caplog = 0;
}

/* ------------------------------------------------------------------ */
/* ties                                                                */

static int order_log[64], norder;
static void note(timer *t, void *arg) {
  (void)t;
  order_log[norder++] = (int)(intptr_t)arg;
}

static void test_equal_deadlines(void) {
  timerheap h;
  timerheap_init(&h);
  timer t[10];
  static const int arm_order[10] = {7, 2, 9, 0, 5, 3, 8, 1, 6, 4};
  for (int i = 0; i < 10; i++) timer_init(&t[i], note, (void *)(intptr_t)i);
  for (int k = 0; k < 10; k++) timer_arm(&h, &t[arm_order[k]], 500);
  /* re-arming (even to the same deadline) moves a timer to the back */
  timer_arm(&h, &t[2], 500);
  /* disarm + arm does too */
  timer_disarm(&h, &t[5]);
  timer_arm(&h, &t[5], 500);
  /* an earlier deadline beats arm order; a later one loses to it */
  timer_arm(&h, &t[4], 499);
  timer_arm(&h, &t[7], 501);
  check_heap(&h);
  CHECK(timer_next(&h) == 499);
  norder = 0;
  CHECK_EQ(timer_run_due(&h, 498), 0); /* never early */
  CHECK_EQ(norder, 0);
  CHECK_EQ(timer_run_due(&h, 500), 9);
  static const int want[9] = {4, 9, 0, 3, 8, 1, 6, 2, 5};
  for (int k = 0; k < 9; k++) CHECK_EQ(order_log[k], want[k]);
  CHECK(timer_next(&h) == 501);
  CHECK_EQ(timer_run_due(&h, 501), 1);
  CHECK_EQ(order_log[9], 7);
  CHECK(timer_next(&h) == DEADLINE_NONE);
  timerheap_free(&h);
}

/* ------------------------------------------------------------------ */
/* callbacks that touch the heap                                       */

static timerheap ch;
static timer ca, cb, cc, cd, ce, self;
static int self_left;
static char cblog[64];
static int ncb;

static void cb_a(timer *t, void *arg) {
  (void)t;
  (void)arg;
  cblog[ncb++] = 'a';
  timer_disarm(&ch, &cb);  /* due at the same time, armed later: must not fire */
  timer_arm(&ch, &cc, 5);  /* already due: fires in this same run */
  timer_arm(&ch, &cd, 50); /* later: stays armed */
  timer_disarm(&ch, &ca);  /* disarming itself (already removed): no-op */
  timer_arm(&ch, &ce, 10); /* same deadline as now: after those armed before */
}
static void cb_b(timer *t, void *arg) {
  (void)t;
  (void)arg;
  cblog[ncb++] = 'b';
}
static void cb_c(timer *t, void *arg) {
  (void)t;
  (void)arg;
  cblog[ncb++] = 'c';
}
static void cb_d(timer *t, void *arg) {
  (void)t;
  (void)arg;
  cblog[ncb++] = 'd';
}
static void cb_e(timer *t, void *arg) {
  (void)t;
  (void)arg;
  cblog[ncb++] = 'e';
}
static void cb_self(timer *t, void *arg) {
  (void)arg;
  CHECK(!timer_armed(t));
  cblog[ncb++] = 's';
  /* re-arm itself: twice more at the same (due) time, then later */
  if (--self_left > 0) timer_arm(&ch, t, t->when);
  else if (self_left == 0) timer_arm(&ch, t, 100);
}

static void test_callbacks(void) {
  timerheap_init(&ch);
  timer_init(&ca, cb_a, NULL);
  timer_init(&cb, cb_b, NULL);
  timer_init(&cc, cb_c, NULL);
  timer_init(&cd, cb_d, NULL);
  timer_init(&ce, cb_e, NULL);
  timer_init(&self, cb_self, NULL);
  self_left = 3;
  timer_arm(&ch, &ca, 10);
  timer_arm(&ch, &cb, 10);
  timer_arm(&ch, &self, 10);
  ncb = 0;
  /* a (10,#1) disarms b, arms c (5: due now), d (50) and e (10,#4); then c
  ** fires (earliest), self (10,#3), e (10,#4), and self twice more: each
  ** re-arm at the same deadline is newer than everything else */
  int n = timer_run_due(&ch, 10);
  cblog[ncb] = 0;
  CHECK(strcmp(cblog, "acsess") == 0);
  CHECK_EQ(n, 6);
  CHECK(!timer_armed(&cb));
  CHECK(timer_armed(&cd));
  CHECK(timer_armed(&self));
  CHECK(timer_next(&ch) == 50);
  ncb = 0;
  CHECK_EQ(timer_run_due(&ch, 99), 1);
  CHECK_EQ(timer_run_due(&ch, 100), 1);
  cblog[ncb] = 0;
  CHECK(strcmp(cblog, "ds") == 0);
  CHECK(!timer_armed(&self)); /* self_left < 0: no more re-arms */
  CHECK(timer_next(&ch) == DEADLINE_NONE);
  timerheap_free(&ch);
}

/* a callback that disarms every other timer stops the run */
static timer many[100];
static timerheap mh;
static int nmany;
static void cb_clear(timer *t, void *arg) {
  (void)arg;
  nmany++;
  for (int i = 0; i < 100; i++)
    if (&many[i] != t) timer_disarm(&mh, &many[i]);
}
static void test_callback_clears(void) {
  timerheap_init(&mh);
  for (int i = 0; i < 100; i++) {
    timer_init(&many[i], cb_clear, NULL);
    timer_arm(&mh, &many[i], 1 + i % 7);
  }
  nmany = 0;
  CHECK_EQ(timer_run_due(&mh, 1000), 1);
  CHECK_EQ(nmany, 1);
  CHECK_EQ(mh.len, 0);
  for (int i = 0; i < 100; i++) CHECK(!timer_armed(&many[i]));
  timerheap_free(&mh);
}

/* ------------------------------------------------------------------ */

static void nop(timer *t, void *arg) {
  (void)t;
  (void)arg;
}

static void test_basics(void) {
  timerheap h;
  timerheap_init(&h);
  CHECK(timer_next(&h) == DEADLINE_NONE);
  CHECK_EQ(timer_run_due(&h, INT64_MAX), 0);

  timer t, u;
  timer_init(&t, nop, NULL);
  timer_init(&u, nop, NULL);
  CHECK(!timer_armed(&t));
  CHECK_EQ(t.idx, -1);
  /* disarm of an unarmed timer is a no-op, also repeatedly */
  timer_disarm(&h, &t);
  timer_disarm(&h, &t);
  CHECK(!timer_armed(&t));
  CHECK_EQ(h.len, 0);

  timer_arm(&h, &t, 100);
  timer_arm(&h, &u, 50);
  CHECK(timer_next(&h) == 50);
  timer_arm(&h, &u, 150); /* modify later */
  CHECK(timer_next(&h) == 100);
  CHECK_EQ(h.len, 2);     /* re-arm moved it, did not duplicate it */
  timer_arm(&h, &t, 200);
  CHECK(timer_next(&h) == 150);
  timer_disarm(&h, &u);
  timer_disarm(&h, &u);
  CHECK_EQ(h.len, 1);
  CHECK(timer_next(&h) == 200);
  CHECK_EQ(timer_run_due(&h, 199), 0);
  CHECK(timer_armed(&t));
  CHECK_EQ(timer_run_due(&h, 200), 1);
  CHECK(!timer_armed(&t));
  CHECK(timer_next(&h) == DEADLINE_NONE);

  /* DEADLINE_MAX never fires before the end of time */
  timer_arm(&h, &t, DEADLINE_MAX);
  CHECK_EQ(timer_run_due(&h, DEADLINE_MAX - 1), 0);
  CHECK_EQ(timer_run_due(&h, DEADLINE_MAX), 1);

  /* timerheap_free forgets armed timers */
  timer_arm(&h, &t, 10);
  timer_arm(&h, &u, 20);
  timerheap_free(&h);
  CHECK(!timer_armed(&t));
  CHECK(!timer_armed(&u));
  CHECK_EQ(h.len, 0);
  CHECK(timer_next(&h) == DEADLINE_NONE);
  /* and the heap is reusable */
  timer_arm(&h, &t, 10);
  CHECK_EQ(timer_run_due(&h, 10), 1);
  timerheap_free(&h);
}

/* a timer moved between heaps after disarm */
static void test_two_heaps(void) {
  timerheap a, b;
  timerheap_init(&a);
  timerheap_init(&b);
  timer t;
  timer_init(&t, nop, NULL);
  timer_arm(&a, &t, 5);
  timer_disarm(&a, &t);
  timer_arm(&b, &t, 6);
  CHECK_EQ(a.len, 0);
  CHECK_EQ(b.len, 1);
  CHECK_EQ(timer_run_due(&a, 100), 0);
  CHECK_EQ(timer_run_due(&b, 100), 1);
  timerheap_free(&a);
  timerheap_free(&b);
}

int main(void) {
  test_basics();
  test_equal_deadlines();
  test_callbacks();
  test_callback_clears();
  test_two_heaps();
  test_random_model();
  CHECK_DONE();
}
