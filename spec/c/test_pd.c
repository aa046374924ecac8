/*
** test_pd.c — the pollDesc wait-slot state machine and the pollDesc cache
** (runtime/pd.h; Go: netpollblock / netpollblockcommit / netpollunblock).
**
** Slot states: NIL, READY, WAIT, G (a parked G). Fake Gs are addresses of
** static ints: non-NULL, aligned, never equal to NIL/READY/WAIT.
**
** Sections:
**  - every single-threaded transition, both directions independently;
**  - broken-invariant throws (double wait, corrupted slot, free with a
**    parked G) in forked children that must die by SIGABRT;
**  - cache: stale tags, slot reuse with a new seq, pd_lookup, stats;
**  - two-thread stresses (meant for TSan): readiness racing the park, and
**    close racing the park (Go's closing protocol). Rounds are lock-stepped
**    with a spin barrier, so each round has exactly one waiter and exactly
**    one waker and must end with exactly one wake-up consumed.
*/
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>

#include "../../runtime/pd.h"
#include "check.h"

static int fake_g1, fake_g2;
#define G1 ((void *)&fake_g1)
#define G2 ((void *)&fake_g2)

static uintptr_t rg(pollDesc *pd) { return atomic_load(&pd->rg); }
static uintptr_t wg(pollDesc *pd) { return atomic_load(&pd->wg); }
static uintptr_t slotv(pollDesc *pd, int mode) {
  return mode == PD_MODE_R ? rg(pd) : wg(pd);
}

/* ------------------------------------------------------------------ */
/* single-threaded transitions                                         */

static void test_fresh(void) {
  pollDesc *pd = pd_alloc(42);
  CHECK(pd != NULL);
  CHECK_EQ(pd->fd, 42);
  CHECK(rg(pd) == PD_NIL);
  CHECK(wg(pd) == PD_NIL);
  CHECK(!atomic_load(&pd->closing));
  CHECK(!timer_armed(&pd->rt));
  CHECK(!timer_armed(&pd->wt));
  CHECK(pd->rd_user == DEADLINE_NONE && pd->wd_user == DEADLINE_NONE);
  CHECK(pd->rd_op == DEADLINE_NONE && pd->wd_op == DEADLINE_NONE);
  pd_free(pd);
}

/* run the per-direction transitions on `mode` and check the other direction
** is never touched */
static void transitions(int mode) {
  int other = mode == PD_MODE_R ? PD_MODE_W : PD_MODE_R;
  pollDesc *pd = pd_alloc(3);

  /* nil -> WAIT -> G -> READY (unblock ioready returns the G) -> nil */
  CHECK_EQ(pd_block_prepare(pd, mode), PD_PREP_WAIT);
  CHECK(slotv(pd, mode) == PD_WAIT);
  CHECK(pd_block_commit(pd, mode, G1));
  CHECK(slotv(pd, mode) == (uintptr_t)G1);
  CHECK(pd_unblock(pd, mode, true) == G1);
  CHECK(slotv(pd, mode) == PD_READY);
  /* unblock on READY is a no-op, either kind */
  CHECK(pd_unblock(pd, mode, true) == NULL);
  CHECK(slotv(pd, mode) == PD_READY);
  CHECK(pd_unblock(pd, mode, false) == NULL);
  CHECK(slotv(pd, mode) == PD_READY);
  CHECK(pd_block_finish(pd, mode) == true);
  CHECK(slotv(pd, mode) == PD_NIL);
  CHECK(slotv(pd, other) == PD_NIL);

  /* G -> nil via unblock(ioready=false) returns the G; finish says false */
  CHECK_EQ(pd_block_prepare(pd, mode), PD_PREP_WAIT);
  CHECK(pd_block_commit(pd, mode, G2));
  CHECK(slotv(pd, mode) == (uintptr_t)G2);
  CHECK(pd_unblock(pd, mode, false) == G2);
  CHECK(slotv(pd, mode) == PD_NIL);
  /* a second close finds nobody */
  CHECK(pd_unblock(pd, mode, false) == NULL);
  CHECK(pd_block_finish(pd, mode) == false);
  CHECK(slotv(pd, mode) == PD_NIL);

  /* unblock(ioready=false) on nil is a no-op */
  CHECK(pd_unblock(pd, mode, false) == NULL);
  CHECK(slotv(pd, mode) == PD_NIL);

  /* READY before any wait: left pending, consumed by the next prepare */
  CHECK(pd_unblock(pd, mode, true) == NULL);
  CHECK(slotv(pd, mode) == PD_READY);
  CHECK(pd_unblock(pd, mode, true) == NULL); /* coalesces */
  CHECK(slotv(pd, mode) == PD_READY);
  CHECK_EQ(pd_block_prepare(pd, mode), PD_PREP_READY);
  CHECK(slotv(pd, mode) == PD_NIL);
  /* consumed exactly once: the next prepare waits */
  CHECK_EQ(pd_block_prepare(pd, mode), PD_PREP_WAIT);
  CHECK(pd_unblock(pd, mode, false) == NULL); /* clean up: WAIT -> nil */
  CHECK(slotv(pd, mode) == PD_NIL);

  /* READY racing the park: prepare, unblock(true) while WAIT (nobody to
  ** return yet), commit fails, finish reports readiness */
  CHECK_EQ(pd_block_prepare(pd, mode), PD_PREP_WAIT);
  CHECK(pd_unblock(pd, mode, true) == NULL);
  CHECK(slotv(pd, mode) == PD_READY);
  CHECK(!pd_block_commit(pd, mode, G1));
  CHECK(slotv(pd, mode) == PD_READY); /* the failed commit changed nothing */
  CHECK(pd_block_finish(pd, mode) == true);
  CHECK(slotv(pd, mode) == PD_NIL);

  /* close racing the park: prepare, unblock(false) while WAIT, commit
  ** fails, finish reports no readiness */
  CHECK_EQ(pd_block_prepare(pd, mode), PD_PREP_WAIT);
  CHECK(pd_unblock(pd, mode, false) == NULL);
  CHECK(slotv(pd, mode) == PD_NIL);
  CHECK(!pd_block_commit(pd, mode, G1));
  CHECK(slotv(pd, mode) == PD_NIL);
  CHECK(pd_block_finish(pd, mode) == false);
  CHECK(slotv(pd, mode) == PD_NIL);

  /* finish straight after WAIT (the G gave up without parking, e.g. Go's
  ** netpollcheckerr path) clears the slot */
  CHECK_EQ(pd_block_prepare(pd, mode), PD_PREP_WAIT);
  CHECK(pd_block_finish(pd, mode) == false);
  CHECK(slotv(pd, mode) == PD_NIL);

  /* commit on nil (nobody prepared) fails and leaves nil */
  CHECK(!pd_block_commit(pd, mode, G1));
  CHECK(slotv(pd, mode) == PD_NIL);

  CHECK(slotv(pd, other) == PD_NIL);
  pd_free(pd);
}

static void test_directions_independent(void) {
  pollDesc *pd = pd_alloc(4);
  /* reader parks */
  CHECK_EQ(pd_block_prepare(pd, PD_MODE_R), PD_PREP_WAIT);
  CHECK(pd_block_commit(pd, PD_MODE_R, G1));
  /* writer readiness does not touch the reader */
  CHECK(pd_unblock(pd, PD_MODE_W, true) == NULL);
  CHECK(rg(pd) == (uintptr_t)G1);
  CHECK(wg(pd) == PD_READY);
  /* writer consumes its own readiness */
  CHECK_EQ(pd_block_prepare(pd, PD_MODE_W), PD_PREP_READY);
  CHECK(wg(pd) == PD_NIL);
  CHECK(rg(pd) == (uintptr_t)G1);
  /* writer parks as a different G */
  CHECK_EQ(pd_block_prepare(pd, PD_MODE_W), PD_PREP_WAIT);
  CHECK(pd_block_commit(pd, PD_MODE_W, G2));
  CHECK(rg(pd) == (uintptr_t)G1);
  CHECK(wg(pd) == (uintptr_t)G2);
  /* reader readiness wakes only the reader */
  CHECK(pd_unblock(pd, PD_MODE_R, true) == G1);
  CHECK(rg(pd) == PD_READY);
  CHECK(wg(pd) == (uintptr_t)G2);
  /* close of the writer only */
  CHECK(pd_unblock(pd, PD_MODE_W, false) == G2);
  CHECK(wg(pd) == PD_NIL);
  CHECK(rg(pd) == PD_READY);
  CHECK(pd_block_finish(pd, PD_MODE_R) == true);
  CHECK(pd_block_finish(pd, PD_MODE_W) == false);
  CHECK(rg(pd) == PD_NIL && wg(pd) == PD_NIL);
  pd_free(pd);
}

/* ------------------------------------------------------------------ */
/* throws: run in a forked child, which must die by SIGABRT             */

static void expect_abort(const char *what, void (*fn)(void)) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    /* keep the expected "fatal error" message out of the test log */
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) dup2(devnull, 2);
    fn();
    _exit(0); /* not reached when fn throws */
  }
  int st = 0;
  CHECK(waitpid(pid, &st, 0) == pid);
  if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT))
    fprintf(stderr, "expect_abort(%s): status 0x%x\n", what, st);
  CHECK(WIFSIGNALED(st));
  CHECK_EQ(WTERMSIG(st), SIGABRT);
}

static void double_wait_prepare(void) {
  pollDesc *pd = pd_alloc(5);
  (void)pd_block_prepare(pd, PD_MODE_R);
  (void)pd_block_prepare(pd, PD_MODE_R); /* WAIT: double wait */
}
static void double_wait_parked(void) {
  pollDesc *pd = pd_alloc(5);
  (void)pd_block_prepare(pd, PD_MODE_W);
  (void)pd_block_commit(pd, PD_MODE_W, G1);
  (void)pd_block_prepare(pd, PD_MODE_W); /* G: double wait */
}
static void finish_while_parked(void) {
  pollDesc *pd = pd_alloc(5);
  (void)pd_block_prepare(pd, PD_MODE_R);
  (void)pd_block_commit(pd, PD_MODE_R, G1);
  (void)pd_block_finish(pd, PD_MODE_R); /* a G still in the slot */
}
static void free_while_parked(void) {
  pollDesc *pd = pd_alloc(5);
  (void)pd_block_prepare(pd, PD_MODE_R);
  (void)pd_block_commit(pd, PD_MODE_R, G1);
  pd_free(pd); /* close w/o unblock */
}
static void free_while_waiting(void) {
  pollDesc *pd = pd_alloc(5);
  (void)pd_block_prepare(pd, PD_MODE_W);
  pd_free(pd); /* WAIT is a waiter too */
}
static void free_with_armed_timer(void) {
  pollDesc *pd = pd_alloc(5);
  timerheap h;
  timerheap_init(&h);
  timer_arm(&h, &pd->rt, 100);
  pd_free(pd);
}

static void test_throws(void) {
  expect_abort("double wait (WAIT)", double_wait_prepare);
  expect_abort("double wait (parked G)", double_wait_parked);
  expect_abort("finish with a parked G", finish_while_parked);
  expect_abort("free with a parked G", free_while_parked);
  expect_abort("free with a WAIT", free_while_waiting);
  expect_abort("free with an armed timer", free_with_armed_timer);
}

/* ------------------------------------------------------------------ */
/* cache                                                               */

static void test_cache(void) {
  size_t alloc0, inuse0, alloc1, inuse1;
  pd_cache_stats(&alloc0, &inuse0);

  pollDesc *pd = pd_alloc(7);
  uint32_t idx = pd->idx;
  uint32_t seq = atomic_load(&pd->seq);
  uint64_t tag = pd_tag(pd);
  CHECK(tag == (((uint64_t)idx << 32) | seq));
  CHECK(pd_from_tag(tag) == pd);
  CHECK(pd_lookup(idx) == pd);
  pd_cache_stats(&alloc1, &inuse1);
  CHECK_EQ(inuse1, inuse0 + 1);
  CHECK(alloc1 >= inuse1);

  /* a pending READY does not survive free + alloc */
  CHECK(pd_unblock(pd, PD_MODE_R, true) == NULL);
  CHECK(rg(pd) == PD_READY);
  pd_free(pd);
  CHECK(pd_from_tag(tag) == NULL); /* stale once freed */
  CHECK(pd_lookup(idx) == pd);     /* type-stable: the slot stays */
  pd_cache_stats(&alloc1, &inuse1);
  CHECK_EQ(inuse1, inuse0);

  pollDesc *pd2 = pd_alloc(8);
  uint64_t tag2 = pd_tag(pd2);
  CHECK(pd_from_tag(tag) == NULL); /* still stale after reuse */
  CHECK(pd_from_tag(tag2) == pd2);
  CHECK(tag2 != tag);
  CHECK(rg(pd2) == PD_NIL && wg(pd2) == PD_NIL);
  CHECK_EQ(pd2->fd, 8);
  if (pd2 == pd) { /* same slot (LIFO free list): must differ in seq only */
    CHECK_EQ(pd2->idx, idx);
    CHECK(atomic_load(&pd2->seq) != seq);
    CHECK((uint32_t)(tag2 >> 32) == idx);
  }
  printf("cache: slot %s after free+alloc\n", pd2 == pd ? "reused" : "not reused");

  /* many live pollDescs: distinct slots, every tag resolves, every tag goes
  ** stale after free, and the next generation's tags resolve to the new
  ** owners only (forces slab growth beyond one slab of 256) */
  enum { N = 1000 };
  static pollDesc *v[N];
  static uint64_t tags[N];
  for (int i = 0; i < N; i++) {
    v[i] = pd_alloc(100 + i);
    tags[i] = pd_tag(v[i]);
    /* epoll data 0 names the P's eventfd: no live pollDesc may use it */
    CHECK(tags[i] != 0);
  }
  for (int i = 0; i < N; i++) {
    CHECK(pd_from_tag(tags[i]) == v[i]);
    CHECK(pd_lookup(v[i]->idx) == v[i]);
    CHECK_EQ(v[i]->fd, 100 + i);
  }
  for (int i = 1; i < N; i++) CHECK(v[i]->idx != v[i - 1]->idx);
  for (int i = 0; i < N; i++) pd_free(v[i]);
  for (int i = 0; i < N; i++) CHECK(pd_from_tag(tags[i]) == NULL);
  for (int i = 0; i < N; i++) {
    pollDesc *n = pd_alloc(i);
    CHECK(pd_from_tag(pd_tag(n)) == n);
    v[i] = n;
  }
  for (int i = 0; i < N; i++) CHECK(pd_from_tag(tags[i]) == NULL);
  for (int i = 0; i < N; i++) pd_free(v[i]);

  /* tags naming slots that were never allocated */
  CHECK(pd_from_tag(UINT64_C(0xFFFFFFFF) << 32) == NULL);
  CHECK(pd_lookup(UINT32_C(0xFFFFFFFF)) == NULL);
  CHECK(pd_lookup(UINT32_C(1) << 23) == NULL); /* slab 32768: never grown */

  pd_free(pd2);
  pd_cache_stats(&alloc1, &inuse1);
  CHECK_EQ(inuse1, inuse0);
}

/* ------------------------------------------------------------------ */
/* two-thread stresses                                                 */

enum { ROUNDS = 100000 };

/* Each stress runs its rounds, or fewer on a machine so loaded that they
** would take longer than STRESS_BUDGET_NS (at least MIN_ROUNDS): a round
** needs both threads on a CPU, and on an overloaded box (ctest -j2 beside
** other suites) 100,000 of them took minutes. The driver (the main thread)
** lowers rounds_limit at the top of a round, before that round's first
** barrier, so the other threads see it when they test their loop condition
** for the next round and every thread runs the same rounds. */
enum { MIN_ROUNDS = 2000 };
#define STRESS_BUDGET_NS (3 * 1000000000LL)
static _Atomic unsigned rounds_limit;
static int64_t stress_start;

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void stress_begin(unsigned rounds) {
  atomic_store(&rounds_limit, rounds);
  stress_start = mono_ns();
}

/* stress_budget — driver, top of round r: end the stress after this round
** when its time is up */
static void stress_budget(unsigned r) {
  if (r >= MIN_ROUNDS && r < atomic_load(&rounds_limit) &&
      mono_ns() - stress_start > STRESS_BUDGET_NS)
    atomic_store(&rounds_limit, r);
}

static unsigned stress_rounds(void) { return atomic_load(&rounds_limit); }

/* a spin barrier for exactly two threads (sense by generation) */
static _Atomic unsigned bar_count, bar_gen;
static void spin_wait_pause(unsigned *spins) {
  if (++*spins > 64) sched_yield();
}
static void barrier2(void) {
  unsigned gen = atomic_load(&bar_gen);
  if (atomic_fetch_add(&bar_count, 1) == 1) {
    atomic_store(&bar_count, 0);
    atomic_fetch_add(&bar_gen, 1);
    return;
  }
  unsigned spins = 0;
  while (atomic_load(&bar_gen) == gen) spin_wait_pause(&spins);
}

/* a few iterations of busy work, varying by round, to shift the interleaving
** of the two threads around the prepare/commit window */
static _Thread_local volatile unsigned jitter_sink;
static void jitter(unsigned r) {
  for (unsigned i = 0; i < (r * 2654435761u >> 26); i++) jitter_sink = i;
}

static pollDesc *spd;
static int stress_mode;
static _Atomic unsigned woken_round; /* B -> A: round whose G B readied */
static _Atomic int b_got_g;          /* B's unblock returned the G this round */

/* readiness vs park: counts by how the wake-up reached A */
static unsigned n_prep_ready, n_commit_failed, n_parked;

static void *ready_waker(void *arg) {
  (void)arg;
  for (unsigned r = 1; r <= stress_rounds(); r++) {
    barrier2();
    jitter(r ^ 0x5a5a);
    void *g = pd_unblock(spd, stress_mode, true);
    if (g) {
      CHECK(g == G1);
      atomic_store(&b_got_g, 1);
      atomic_store(&woken_round, r); /* "sched_ready(g)" */
    }
    barrier2();
  }
  return NULL;
}

static void stress_ready(int mode) {
  spd = pd_alloc(9);
  stress_mode = mode;
  atomic_store(&woken_round, 0);
  n_prep_ready = n_commit_failed = n_parked = 0;
  pthread_t b;
  stress_begin(ROUNDS);
  CHECK(pthread_create(&b, NULL, ready_waker, NULL) == 0);
  for (unsigned r = 1; r <= stress_rounds(); r++) {
    stress_budget(r);
    atomic_store(&b_got_g, 0);
    barrier2();
    jitter(r);
    int committed = 0;
    if (pd_block_prepare(spd, mode) == PD_PREP_READY) {
      n_prep_ready++;
    } else if ((jitter(r * 7), !pd_block_commit(spd, mode, G1))) {
      /* the readiness came between prepare and commit */
      CHECK(pd_block_finish(spd, mode) == true);
      n_commit_failed++;
    } else {
      committed = 1;
      /* parked: only B's unblock may bring us back (bounded: B performs its
      ** one unblock of this round before the next barrier) */
      unsigned spins = 0;
      while (atomic_load(&woken_round) != r) spin_wait_pause(&spins);
      CHECK(pd_block_finish(spd, mode) == true);
      n_parked++;
    }
    barrier2();
    /* exactly one wake-up per round: B returned the G iff A parked */
    CHECK_EQ(atomic_load(&b_got_g), committed);
    CHECK(slotv(spd, mode) == PD_NIL);
    CHECK(slotv(spd, mode == PD_MODE_R ? PD_MODE_W : PD_MODE_R) == PD_NIL);
  }
  CHECK(pthread_join(b, NULL) == 0);
  CHECK_EQ(n_prep_ready + n_commit_failed + n_parked, stress_rounds());
  printf("ready-vs-park (%s): %u rounds: %u ready before prepare, %u between "
         "prepare and commit, %u after park\n",
         mode == PD_MODE_R ? "R" : "W", stress_rounds(), n_prep_ready, n_commit_failed,
         n_parked);
  pd_free(spd);
}

/* close vs park, with Go's closing protocol: the closer sets `closing`
** before unblock(false); the waiter checks `closing` after prepare (Go:
** netpollblock's netpollcheckerr after setting pdWait). Sequential
** consistency guarantees that either the waiter sees closing or the closer's
** unblock sees WAIT/G, so the waiter never parks forever. */
static unsigned n_saw_closing, n_close_commit_failed, n_close_parked;

static void *closer_thread(void *arg) {
  (void)arg;
  for (unsigned r = 1; r <= stress_rounds(); r++) {
    barrier2();
    jitter(r ^ 0x3c3c);
    atomic_store(&spd->closing, true);
    void *g = pd_unblock(spd, stress_mode, false);
    if (g) {
      CHECK(g == G2);
      atomic_store(&b_got_g, 1);
      atomic_store(&woken_round, r);
    }
    barrier2();
  }
  return NULL;
}

static void stress_close(int mode) {
  spd = pd_alloc(10);
  stress_mode = mode;
  atomic_store(&woken_round, 0);
  n_saw_closing = n_close_commit_failed = n_close_parked = 0;
  pthread_t b;
  stress_begin(ROUNDS);
  CHECK(pthread_create(&b, NULL, closer_thread, NULL) == 0);
  for (unsigned r = 1; r <= stress_rounds(); r++) {
    stress_budget(r);
    atomic_store(&b_got_g, 0);
    atomic_store(&spd->closing, false); /* "reopen" */
    barrier2();
    jitter(r);
    int committed = 0;
    CHECK_EQ(pd_block_prepare(spd, mode), PD_PREP_WAIT); /* never READY */
    if (atomic_load(&spd->closing)) {
      /* WAIT, or nil if the closer already unblocked: never readiness */
      CHECK(pd_block_finish(spd, mode) == false);
      n_saw_closing++;
    } else if ((jitter(r * 7), !pd_block_commit(spd, mode, G2))) {
      CHECK(pd_block_finish(spd, mode) == false);
      n_close_commit_failed++;
    } else {
      committed = 1;
      unsigned spins = 0;
      while (atomic_load(&woken_round) != r) spin_wait_pause(&spins);
      CHECK(pd_block_finish(spd, mode) == false);
      n_close_parked++;
    }
    barrier2();
    CHECK_EQ(atomic_load(&b_got_g), committed);
    CHECK(slotv(spd, mode) == PD_NIL);
  }
  CHECK(pthread_join(b, NULL) == 0);
  CHECK_EQ(n_saw_closing + n_close_commit_failed + n_close_parked, stress_rounds());
  printf("close-vs-park (%s): %u rounds: %u saw closing, %u commit failed, "
         "%u parked then woken\n",
         mode == PD_MODE_R ? "R" : "W", stress_rounds(), n_saw_closing,
         n_close_commit_failed, n_close_parked);
  pd_free(spd);
}

/* the two directions from two waiter threads at once, with one waker that
** makes both ready every round: neither direction's wake-up is lost or
** delivered to the other's G */
static pollDesc *bpd;
static _Atomic unsigned bw_woken[2];
static _Atomic unsigned bw_count, bw_gen;

static void barrier3(void) {
  unsigned gen = atomic_load(&bw_gen);
  if (atomic_fetch_add(&bw_count, 1) == 2) {
    atomic_store(&bw_count, 0);
    atomic_fetch_add(&bw_gen, 1);
    return;
  }
  unsigned spins = 0;
  while (atomic_load(&bw_gen) == gen) spin_wait_pause(&spins);
}

enum { BOTH_ROUNDS = 30000 };

static void *both_waiter(void *arg) {
  int mode = (int)(intptr_t)arg;
  int k = mode == PD_MODE_R ? 0 : 1;
  void *g = k == 0 ? G1 : G2;
  for (unsigned r = 1; r <= stress_rounds(); r++) {
    barrier3();
    jitter(r + (unsigned)k);
    if (pd_block_prepare(bpd, mode) == PD_PREP_WAIT) {
      if (pd_block_commit(bpd, mode, g)) {
        unsigned spins = 0;
        while (atomic_load(&bw_woken[k]) != r) spin_wait_pause(&spins);
      }
      CHECK(pd_block_finish(bpd, mode) == true);
    }
    barrier3();
  }
  return NULL;
}

static void test_both_directions_stress(void) {
  bpd = pd_alloc(11);
  pthread_t t[2];
  stress_begin(BOTH_ROUNDS);
  CHECK(pthread_create(&t[0], NULL, both_waiter, (void *)(intptr_t)PD_MODE_R) == 0);
  CHECK(pthread_create(&t[1], NULL, both_waiter, (void *)(intptr_t)PD_MODE_W) == 0);
  for (unsigned r = 1; r <= stress_rounds(); r++) {
    stress_budget(r);
    barrier3();
    void *g;
    if ((g = pd_unblock(bpd, PD_MODE_W, true)) != NULL) {
      CHECK(g == G2);
      atomic_store(&bw_woken[1], r);
    }
    if ((g = pd_unblock(bpd, PD_MODE_R, true)) != NULL) {
      CHECK(g == G1);
      atomic_store(&bw_woken[0], r);
    }
    barrier3();
    CHECK(rg(bpd) == PD_NIL && wg(bpd) == PD_NIL);
  }
  CHECK(pthread_join(t[0], NULL) == 0);
  CHECK(pthread_join(t[1], NULL) == 0);
  pd_free(bpd);
}

int main(void) {
  test_fresh();
  transitions(PD_MODE_R);
  transitions(PD_MODE_W);
  test_directions_independent();
  test_throws(); /* before any thread exists: fork stays simple */
  test_cache();
  stress_ready(PD_MODE_R);
  stress_ready(PD_MODE_W);
  stress_close(PD_MODE_R);
  stress_close(PD_MODE_W);
  test_both_directions_stress();
  CHECK_DONE();
}
