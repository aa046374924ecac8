/*
** test_runq.c — a P's local run queue (runtime/runq.h): FIFO order,
** runnext (taken first; a new runnext kicks the old one to the tail), the
** timed FIFO (taken before runnext, in order; past RUNQ_TIMED to the tail),
** overflow beyond RUNQ_SIZE keeping exact FIFO order, runq_len, runq_remove.
**
** Entries are addresses inside a static array, so each is a distinct
** non-NULL pointer whose index is recoverable; a reference model (runnext
** slot + unbounded FIFO) predicts every runq_get, and a seen[] array checks
** every entry is taken exactly once.
*/
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include "../../runtime/runq.h"
#include "check.h"

enum { NITEMS = 20000 };
static char items[NITEMS];
#define IT(i) ((void *)&items[(i)])

/* runq_remove — drops one entry wherever it is, keeping the others' order;
** whether it was found. O(n). Test-only: the runtime never removes from a
** run queue, so this lives here, built from runq_get and runq_put. */
static bool runq_remove(runq *q, void *g) {
  size_t n = runq_len(q);
  bool found = false;
  for (size_t i = 0; i < n; i++) {
    void *x = runq_get(q);
    if (x == g && !found)
      found = true;
    else
      runq_put(q, x, false);
  }
  return found;
}

/* ------------------------------------------------------------------ */
/* reference model                                                     */

typedef struct model {
  int runnext; /* -1 when empty */
  int *fifo;
  size_t head, len, cap;
} model;

static void m_init(model *m) {
  m->runnext = -1;
  m->cap = NITEMS;
  m->fifo = malloc(m->cap * sizeof *m->fifo);
  CHECK(m->fifo != NULL);
  m->head = m->len = 0;
}
static void m_free(model *m) { free(m->fifo); }
static void m_tail(model *m, int i) {
  CHECK(m->len < m->cap);
  m->fifo[(m->head + m->len++) % m->cap] = i;
}
static void m_put(model *m, int i, bool next) {
  if (next) {
    int old = m->runnext;
    m->runnext = i;
    if (old < 0) return;
    i = old;
  }
  m_tail(m, i);
}
static int m_get(model *m) {
  if (m->runnext >= 0) {
    int i = m->runnext;
    m->runnext = -1;
    return i;
  }
  if (!m->len) return -1;
  int i = m->fifo[m->head];
  m->head = (m->head + 1) % m->cap;
  m->len--;
  return i;
}
static size_t m_len(const model *m) { return m->len + (m->runnext >= 0); }

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) { return check_xorshift(&rng); }

/* ------------------------------------------------------------------ */

static void test_empty(void) {
  runq q;
  runq_init(&q);
  CHECK(runq_get(&q) == NULL);
  CHECK_EQ(runq_len(&q), 0);
  CHECK(!runq_remove(&q, IT(0)));
  CHECK_EQ(runq_len(&q), 0);
  runq_free(&q);
}

static void test_fifo_small(void) {
  runq q;
  runq_init(&q);
  for (int i = 0; i < 10; i++) {
    runq_put(&q, IT(i), false);
    CHECK_EQ(runq_len(&q), i + 1);
  }
  for (int i = 0; i < 10; i++) {
    CHECK(runq_get(&q) == IT(i));
    CHECK_EQ(runq_len(&q), 9 - i);
  }
  CHECK(runq_get(&q) == NULL);
  runq_free(&q);
}

static void test_runnext(void) {
  runq q;
  runq_init(&q);
  /* runnext is taken before older FIFO entries */
  runq_put(&q, IT(1), false);
  runq_put(&q, IT(2), false);
  runq_put(&q, IT(3), true);
  CHECK_EQ(runq_len(&q), 3);
  CHECK(runq_get(&q) == IT(3));
  CHECK(runq_get(&q) == IT(1));
  CHECK(runq_get(&q) == IT(2));
  CHECK(runq_get(&q) == NULL);

  /* a second runnext kicks the first to the tail */
  runq_put(&q, IT(1), false);
  runq_put(&q, IT(10), true);
  runq_put(&q, IT(2), false);
  runq_put(&q, IT(11), true); /* 10 -> tail, after 2 */
  CHECK_EQ(runq_len(&q), 4);
  CHECK(runq_get(&q) == IT(11));
  CHECK(runq_get(&q) == IT(1));
  CHECK(runq_get(&q) == IT(2));
  CHECK(runq_get(&q) == IT(10));
  CHECK(runq_get(&q) == NULL);

  /* runnext alone, repeatedly replaced */
  for (int i = 0; i < 5; i++) runq_put(&q, IT(20 + i), true);
  CHECK_EQ(runq_len(&q), 5);
  CHECK(runq_get(&q) == IT(24));
  for (int i = 0; i < 4; i++) CHECK(runq_get(&q) == IT(20 + i));
  CHECK(runq_get(&q) == NULL);
  runq_free(&q);
}

/* timer-woken entries: before runnext and the ring, first put first out;
** past RUNQ_TIMED they queue at the tail, and the ring wraps cleanly */
static void test_timed(void) {
  runq q;
  runq_init(&q);
  runq_put(&q, IT(1), false);
  runq_put(&q, IT(2), true);
  runq_put_timed(&q, IT(3));
  runq_put_timed(&q, IT(4));
  CHECK_EQ(runq_len(&q), 4);
  CHECK(runq_get(&q) == IT(3));
  CHECK(runq_get(&q) == IT(4));
  CHECK(runq_get(&q) == IT(2));
  CHECK(runq_get(&q) == IT(1));
  CHECK(runq_get(&q) == NULL);

  /* full: the 17th goes behind the ring's entries */
  runq_put(&q, IT(100), false);
  for (int i = 0; i < RUNQ_TIMED + 1; i++) runq_put_timed(&q, IT(200 + i));
  CHECK_EQ(runq_len(&q), RUNQ_TIMED + 2);
  for (int i = 0; i < RUNQ_TIMED; i++) CHECK(runq_get(&q) == IT(200 + i));
  CHECK(runq_get(&q) == IT(100));
  CHECK(runq_get(&q) == IT(200 + RUNQ_TIMED));
  CHECK(runq_get(&q) == NULL);

  /* wrap the ring many times, interleaved with gets */
  int put = 0, got = 0;
  for (int k = 0; k < 1000; k++) {
    runq_put_timed(&q, IT(1000 + put++));
    if (k % 3 != 2) runq_put_timed(&q, IT(1000 + put++));
    CHECK(runq_get(&q) == IT(1000 + got++));
    while (q.timed_len > RUNQ_TIMED / 2) CHECK(runq_get(&q) == IT(1000 + got++));
  }
  while (got < put) CHECK(runq_get(&q) == IT(1000 + got++));
  CHECK(runq_get(&q) == NULL);
  runq_free(&q);
}

/* fill far beyond the ring: order stays exact, ring then overflow */
static void test_overflow_fifo(void) {
  runq q;
  runq_init(&q);
  enum { N = 10000 };
  for (int i = 0; i < N; i++) runq_put(&q, IT(i), false);
  CHECK_EQ(runq_len(&q), N);
  CHECK_EQ(q.tail - q.head, RUNQ_SIZE); /* ring full, rest in overflow */
  CHECK_EQ(q.over_len, N - RUNQ_SIZE);
  /* a runnext on top of a full ring + overflow is still first */
  runq_put(&q, IT(N), true);
  CHECK(runq_get(&q) == IT(N));
  for (int i = 0; i < N; i++) {
    CHECK(runq_get(&q) == IT(i));
    CHECK_EQ(runq_len(&q), N - 1 - i);
  }
  CHECK(runq_get(&q) == NULL);

  /* boundary: exactly RUNQ_SIZE, then one more */
  for (int i = 0; i < RUNQ_SIZE; i++) runq_put(&q, IT(i), false);
  CHECK_EQ(q.over_len, 0);
  runq_put(&q, IT(RUNQ_SIZE), false);
  CHECK_EQ(q.over_len, 1);
  /* put after a get while overflow is non-empty must still go behind it */
  CHECK(runq_get(&q) == IT(0));
  runq_put(&q, IT(RUNQ_SIZE + 1), false);
  for (int i = 1; i <= RUNQ_SIZE + 1; i++) CHECK(runq_get(&q) == IT(i));
  CHECK(runq_get(&q) == NULL);
  runq_free(&q);
}

/* a runnext kicked while the ring is full goes to the overflow tail */
static void test_kick_into_overflow(void) {
  runq q;
  runq_init(&q);
  for (int i = 0; i < RUNQ_SIZE; i++) runq_put(&q, IT(i), false);
  runq_put(&q, IT(1000), true);
  runq_put(&q, IT(1001), true); /* 1000 -> overflow tail */
  runq_put(&q, IT(1002), false);
  CHECK_EQ(runq_len(&q), RUNQ_SIZE + 3);
  CHECK(runq_get(&q) == IT(1001));
  for (int i = 0; i < RUNQ_SIZE; i++) CHECK(runq_get(&q) == IT(i));
  CHECK(runq_get(&q) == IT(1000));
  CHECK(runq_get(&q) == IT(1002));
  CHECK(runq_get(&q) == NULL);
  runq_free(&q);
}

/* random interleavings against the model: bursts of puts and gets that
** repeatedly grow the queue past RUNQ_SIZE (several times over) and drain it,
** so the ring wraps and the overflow is refilled and resized */
static void test_model_random(void) {
  runq q;
  model m;
  runq_init(&q);
  m_init(&m);
  static unsigned char seen[NITEMS];
  memset(seen, 0, sizeof seen);
  int next_item = 0, taken = 0;
  unsigned long steps = 0;
  while (next_item < NITEMS) {
    /* phase: mostly-put or mostly-get, with a random length */
    int put_bias = (int)(rnd() % 100); /* % chance of put per step */
    int len = 1 + (int)(rnd() % 1500);
    for (int k = 0; k < len && next_item < NITEMS; k++, steps++) {
      if ((int)(rnd() % 100) < put_bias) {
        bool nx = rnd() % 8 == 0;
        int i = next_item++;
        runq_put(&q, IT(i), nx);
        m_put(&m, i, nx);
      } else {
        void *g = runq_get(&q);
        int want = m_get(&m);
        if (want < 0) {
          CHECK(g == NULL);
        } else {
          CHECK(g == IT(want));
          CHECK(!seen[want]);
          seen[want] = 1;
          taken++;
        }
      }
      CHECK_EQ(runq_len(&q), m_len(&m));
      /* the overflow is used only while the ring is full */
      CHECK(q.over_len == 0 || q.tail - q.head == RUNQ_SIZE);
    }
  }
  /* drain */
  for (;;) {
    void *g = runq_get(&q);
    int want = m_get(&m);
    if (want < 0) {
      CHECK(g == NULL);
      break;
    }
    CHECK(g == IT(want));
    CHECK(!seen[want]);
    seen[want] = 1;
    taken++;
  }
  CHECK_EQ(taken, NITEMS);
  for (int i = 0; i < NITEMS; i++) CHECK(seen[i]);
  CHECK_EQ(runq_len(&q), 0);
  printf("model: %lu random steps, %d entries each taken once\n", steps, taken);
  runq_free(&q);
  m_free(&m);
}

/* strict alternation patterns around the ring boundary */
static void test_interleaved_patterns(void) {
  runq q;
  runq_init(&q);
  int put = 0, got = 0;
  /* put 3 get 2 until 10,000 put, then drain: FIFO overall */
  while (put < 10000) {
    for (int k = 0; k < 3 && put < 10000; k++) runq_put(&q, IT(put++), false);
    for (int k = 0; k < 2; k++) CHECK(runq_get(&q) == IT(got++));
    CHECK_EQ(runq_len(&q), put - got);
  }
  while (got < put) CHECK(runq_get(&q) == IT(got++));
  CHECK(runq_get(&q) == NULL);

  /* hover exactly around a full ring: RUNQ_SIZE in, then put1/get1 */
  put = got = 0;
  for (int k = 0; k < RUNQ_SIZE; k++) runq_put(&q, IT(put++), false);
  for (int k = 0; k < 5000; k++) {
    runq_put(&q, IT(put++), false); /* one into overflow ... */
    CHECK(runq_get(&q) == IT(got++)); /* ... and refilled into the ring */
    CHECK_EQ(runq_len(&q), RUNQ_SIZE);
  }
  while (got < put) CHECK(runq_get(&q) == IT(got++));
  CHECK(runq_get(&q) == NULL);
  runq_free(&q);
}

/* remove: from runnext, from the ring, from the overflow, absent; the other
** entries keep their relative order */
static void remove_case(int n, int victim, bool with_next) {
  runq q;
  runq_init(&q);
  for (int i = 0; i < n; i++) runq_put(&q, IT(i), false);
  if (with_next) runq_put(&q, IT(n), true);
  size_t before = runq_len(&q);
  bool found = runq_remove(&q, IT(victim));
  bool present = victim < n || (with_next && victim == n);
  CHECK(found == present);
  CHECK_EQ(runq_len(&q), before - (present ? 1 : 0));
  /* expected drain order: runnext first, then 0..n-1, minus the victim */
  if (with_next && victim != n) CHECK(runq_get(&q) == IT(n));
  for (int i = 0; i < n; i++)
    if (i != victim) CHECK(runq_get(&q) == IT(i));
  CHECK(runq_get(&q) == NULL);
  runq_free(&q);
}

static void test_remove(void) {
  remove_case(5, 2, false);            /* middle of the ring */
  remove_case(5, 0, false);            /* head */
  remove_case(5, 4, false);            /* tail */
  remove_case(5, 5, true);             /* runnext */
  remove_case(5, 3, true);             /* ring, with runnext set */
  remove_case(5, 99, false);           /* absent */
  remove_case(5, 99, true);            /* absent, with runnext */
  remove_case(600, 10, false);         /* ring, with overflow */
  remove_case(600, 300, true);         /* overflow */
  remove_case(600, 599, false);        /* overflow tail */
  remove_case(600, 600, true);         /* runnext over a full queue */
  remove_case(RUNQ_SIZE, 255, false);  /* exactly full ring */
  remove_case(RUNQ_SIZE + 1, RUNQ_SIZE, false); /* the only overflow entry */

  /* remove every entry one by one, in a scrambled order */
  runq q;
  runq_init(&q);
  enum { N = 700 };
  int order[N];
  for (int i = 0; i < N; i++) {
    runq_put(&q, IT(i), false);
    order[i] = i;
  }
  for (int i = N - 1; i > 0; i--) {
    int j = (int)(rnd() % (uint64_t)(i + 1));
    int t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  for (int k = 0; k < N; k++) {
    CHECK(runq_remove(&q, IT(order[k])));
    CHECK(!runq_remove(&q, IT(order[k]))); /* exactly once */
    CHECK_EQ(runq_len(&q), N - 1 - k);
  }
  CHECK(runq_get(&q) == NULL);
  runq_free(&q);
}

/* the queue still works after runq_free (it re-inits) */
static void test_free_reinit(void) {
  runq q;
  runq_init(&q);
  for (int i = 0; i < 1000; i++) runq_put(&q, IT(i), i % 10 == 0);
  runq_free(&q);
  CHECK_EQ(runq_len(&q), 0);
  CHECK(runq_get(&q) == NULL);
  runq_put(&q, IT(5), false);
  CHECK(runq_get(&q) == IT(5));
  runq_free(&q);
}

static void put_null(void) {
  runq q;
  runq_init(&q);
  runq_put(&q, NULL, false);
}

static void test_put_null_throws(void) {
  fflush(stdout);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) dup2(devnull, 2);
    put_null();
    _exit(0);
  }
  int st = 0;
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
}

int main(void) {
  test_empty();
  test_fifo_small();
  test_runnext();
  test_timed();
  test_overflow_fifo();
  test_kick_into_overflow();
  test_interleaved_patterns();
  test_model_random();
  test_remove();
  test_free_reinit();
  test_put_null_throws();
  CHECK_DONE();
}
