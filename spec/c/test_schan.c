/* test_schan.c — the shared channel core (runtime/schan.c): buffered and
** unbuffered semantics, close, refcounts and freeing, and multi-thread
** stress with a model check: producers and consumers on OS threads (a
** "goroutine" parks on a condition variable), plain operations and selects
** over two channels with a racing timeout; every value is received exactly
** once, in per-producer order, and totals are exact. Run under TSan in CI. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../runtime/schan.h"
#include "check.h"

/* ---------- elements: malloc'd, counted ---------- */

static _Atomic long nvals; /* live elements */

static void *mkval(long x) {
  long *p = malloc(sizeof *p);
  *p = x;
  atomic_fetch_add(&nvals, 1);
  return p;
}

static long take(void *v) {
  long x = *(long *)v;
  free(v);
  atomic_fetch_sub(&nvals, 1);
  return x;
}

static void drop(uint64_t e) { take((void *)(uintptr_t)e); }

/* the core's words <-> element pointers */
static uint64_t E(void *v) { return (uint64_t)(uintptr_t)v; }
static void *V(uint64_t e) { return (void *)(uintptr_t)e; }

/* ---------- the core's operations, as the binding calls them ---------- */

/* with c locked */
static int send_locked(schan *c, void *v, sudog **woken) {
  return chan_trysend(&c->c, E(v), woken);
}

/* with c locked */
static int recv_locked(schan *c, void **v, bool *ok, sudog **woken) {
  uint64_t e;
  int r = chan_tryrecv(&c->c, &e, ok, woken);
  if (r == CHAN_OK) *v = V(e);
  return r;
}

static bool is_closed(schan *c) {
  schan_lock(c);
  bool b = c->c.closed;
  schan_unlock(c);
  return b;
}

/* ---------- a parked "goroutine": a condition variable ---------- */

typedef struct parker {
  pthread_mutex_t m;
  pthread_cond_t cv;
  bool ready;
} parker;

static void pk_init(parker *pk) {
  pthread_mutex_init(&pk->m, NULL);
  pthread_cond_init(&pk->cv, NULL);
  pk->ready = false;
}

static void pk_destroy(parker *pk) {
  pthread_mutex_destroy(&pk->m);
  pthread_cond_destroy(&pk->cv);
}

static void wake(sudog *w) {
  parker *pk = w->g; /* w may be gone once pk is signalled */
  pthread_mutex_lock(&pk->m);
  pk->ready = true;
  pthread_cond_signal(&pk->cv);
  pthread_mutex_unlock(&pk->m);
}

static void wake_list(sudog *w) {
  while (w) {
    sudog *next = w->next;
    wake(w);
    w = next;
  }
}

/* park until woken, or until deadline (0: none); true if woken */
static bool park(parker *pk, const struct timespec *deadline) {
  pthread_mutex_lock(&pk->m);
  int rc = 0;
  while (!pk->ready && rc == 0)
    rc = deadline ? pthread_cond_timedwait(&pk->cv, &pk->m, deadline)
                  : pthread_cond_wait(&pk->cv, &pk->m);
  bool woke = pk->ready;
  pk->ready = false;
  pthread_mutex_unlock(&pk->m);
  return woke;
}

/* ---------- blocking operations as a binding does them ---------- */

static int bsend(schan *c, void *v, parker *pk) {
  sudog *woken, w = {.g = pk, .elem = E(v)};
  schan_lock(c);
  int r = send_locked(c, v, &woken);
  if (r == CHAN_WOULDBLOCK) schan_enqueue_locked(c, &w);
  schan_unlock(c);
  if (woken) wake(woken);
  if (r != CHAN_WOULDBLOCK) return r;
  park(pk, NULL);
  schan_dequeue(&w);
  if (!w.ok) CHECK(V(w.elem) == v); /* closed: the sender keeps its value */
  else CHECK(w.elem == 0);
  return w.ok ? CHAN_OK : CHAN_CLOSED;
}

static bool brecv(schan *c, void **v, parker *pk) {
  sudog *woken, w = {.g = pk, .isrecv = true};
  bool ok;
  schan_lock(c);
  int r = recv_locked(c, v, &ok, &woken);
  if (r == CHAN_WOULDBLOCK) schan_enqueue_locked(c, &w);
  schan_unlock(c);
  if (woken) wake(woken);
  if (r == CHAN_OK) return ok;
  park(pk, NULL);
  schan_dequeue(&w);
  *v = V(w.elem);
  return w.ok;
}

static struct timespec after_us(long us) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_nsec += us * 1000;
  ts.tv_sec += ts.tv_nsec / 1000000000;
  ts.tv_nsec %= 1000000000;
  return ts;
}

/* select recv over cs[0] and cs[1], a timeout racing for the same selstate:
** returns the case (0 or 1) with the value and ok, or -1 on timeout */
static int bselect2(schan **cs, void **v, bool *ok, parker *pk, long timeout_us) {
  selstate sel;
  atomic_init(&sel.done, false);
  sel.fired = -1;
  sudog w[2];
  schan *locks[2] = {cs[0], cs[1]};
  for (int i = 0; i < 2; i++)
    w[i] = (sudog){.g = pk, .isrecv = true, .sel = &sel, .caseidx = i};
  sudog *woken = NULL;
  int fired = -1;
  schan_lock_many(locks, 2);
  for (int i = 0; i < 2 && fired < 0; i++)
    if (recv_locked(cs[i], v, ok, &woken) == CHAN_OK) fired = i;
  if (fired < 0)
    for (int i = 0; i < 2; i++) schan_enqueue_locked(cs[i], &w[i]);
  schan_unlock_many(locks, 2);
  if (woken) wake(woken);
  if (fired >= 0) return fired;
  struct timespec dl = after_us(timeout_us);
  if (!park(pk, &dl)) {
    if (selstate_claim(&sel)) sel.fired = -1; /* the timeout won */
    else park(pk, NULL);                      /* a sender won: it wakes us */
  }
  for (int i = 0; i < 2; i++) schan_dequeue(&w[i]);
  fired = sel.fired;
  if (fired >= 0) {
    *v = V(w[fired].elem);
    *ok = w[fired].ok;
    CHECK(w[1 - fired].elem == 0);
  }
  return fired;
}

/* ---------- single-thread semantics ---------- */

static void test_buffered(void) {
  long live = schan_live();
  schan *c = schan_new(3, drop);
  CHECK_EQ(schan_live(), live + 1);
  sudog *woken;
  for (long i = 0; i < 3; i++) CHECK_EQ(send_locked(c, mkval(i), &woken), CHAN_OK);
  void *x = mkval(9);
  CHECK_EQ(send_locked(c, x, &woken), CHAN_WOULDBLOCK);
  CHECK_EQ(schan_len(c), 3);
  void *v;
  bool ok;
  CHECK_EQ(recv_locked(c, &v, &ok, &woken), CHAN_OK);
  CHECK(ok && woken == NULL);
  CHECK_EQ(take(v), 0);
  CHECK_EQ(send_locked(c, x, &woken), CHAN_OK);
  CHECK_EQ(schan_close(c, &woken), CHAN_OK);
  CHECK(woken == NULL);
  CHECK_EQ(schan_close(c, &woken), CHAN_CLOSED);
  void *y = mkval(10);
  CHECK_EQ(send_locked(c, y, &woken), CHAN_CLOSED);
  take(y);
  for (long i = 1; i <= 2; i++) { /* drains after close, FIFO */
    CHECK_EQ(recv_locked(c, &v, &ok, &woken), CHAN_OK);
    CHECK(ok);
    CHECK_EQ(take(v), i);
  }
  CHECK(is_closed(c));
  schan_release(c); /* one value (9) still buffered: dropped with c */
  CHECK_EQ(atomic_load(&nvals), 0);
  CHECK_EQ(schan_live(), live);
}

static void test_unbuffered_waiters(void) {
  schan *c = schan_new(0, drop);
  parker pk;
  pk_init(&pk);
  sudog *woken, r = {.g = &pk, .isrecv = true};
  void *v;
  bool ok;
  schan_lock(c);
  CHECK_EQ(recv_locked(c, &v, &ok, &woken), CHAN_WOULDBLOCK);
  schan_enqueue_locked(c, &r);
  CHECK_EQ(atomic_load(&c->refs), 2); /* the waiter holds one */
  void *x = mkval(5);
  CHECK_EQ(send_locked(c, x, &woken), CHAN_OK);
  schan_unlock(c);
  CHECK(woken == &r && r.ok && V(r.elem) == x && !r.linked);
  schan_dequeue(&r);
  CHECK_EQ(atomic_load(&c->refs), 1);
  CHECK_EQ(take(V(r.elem)), 5);
  /* close wakes parked receivers and senders; the sender keeps its value */
  sudog s = {.g = &pk, .elem = E(mkval(6))}, r2 = {.g = &pk, .isrecv = true};
  schan_lock(c);
  schan_enqueue_locked(c, &s);
  schan_unlock(c);
  CHECK_EQ(schan_close(c, &woken), CHAN_OK);
  CHECK(woken == &s && !s.ok && s.elem != 0 && woken->next == NULL);
  schan_lock(c);
  CHECK_EQ(recv_locked(c, &v, &ok, &woken), CHAN_OK);
  CHECK(!ok && v == NULL);
  schan_unlock(c);
  (void)r2;
  schan_dequeue(&s);
  take(V(s.elem));
  schan_release(c);
  CHECK_EQ(atomic_load(&nvals), 0);
  pk_destroy(&pk);
}

static void test_select_claim(void) {
  schan *a = schan_new(0, drop), *b = schan_new(0, drop);
  parker pk;
  pk_init(&pk);
  selstate sel;
  atomic_init(&sel.done, false);
  sel.fired = -1;
  sudog wa = {.g = &pk, .isrecv = true, .sel = &sel, .caseidx = 0};
  sudog wb = {.g = &pk, .isrecv = true, .sel = &sel, .caseidx = 1};
  schan *locks[3] = {b, a, b};
  schan_lock_many(locks, 3); /* duplicates locked once */
  schan_enqueue_locked(a, &wa);
  schan_enqueue_locked(b, &wb);
  schan_unlock_many(locks, 3);
  sudog *woken;
  void *x = mkval(1), *y = mkval(2);
  schan_lock(b);
  CHECK_EQ(send_locked(b, x, &woken), CHAN_OK);
  schan_unlock(b);
  CHECK(woken == &wb && sel.fired == 1);
  schan_lock(a); /* the sibling lost: skipped and unlinked, no receiver */
  CHECK_EQ(send_locked(a, y, &woken), CHAN_WOULDBLOCK);
  CHECK(!wa.linked && a->c.recvq.first == NULL);
  schan_unlock(a);
  schan_dequeue(&wa);
  schan_dequeue(&wb);
  take(V(wb.elem));
  take(y);
  schan_release(a);
  schan_release(b);
  CHECK_EQ(atomic_load(&nvals), 0);
  pk_destroy(&pk);
}

/* ---------- multi-thread stress ---------- */

#define NPROD 4
#define NCONS 4
#define PER 20000

static schan *chs[2];
static _Atomic long received[NPROD * PER];
static _Atomic long total_sum, total_n, nfired_timeout;

static void *producer(void *arg) {
  long id = (long)(intptr_t)arg;
  parker pk;
  pk_init(&pk);
  for (long i = 0; i < PER; i++) /* even producers on chs[0], odd on chs[1] */
    CHECK_EQ(bsend(chs[id % 2], mkval(id * PER + i), &pk), CHAN_OK);
  pk_destroy(&pk);
  return NULL;
}

static void record(long x, long *last) {
  long prod = x / PER;
  CHECK(x % PER > last[prod] || last[prod] < 0); /* per-producer order */
  last[prod] = x % PER;
  CHECK_EQ(atomic_fetch_add(&received[x], 1), 0);
  atomic_fetch_add(&total_sum, x);
  atomic_fetch_add(&total_n, 1);
}

/* even consumers use plain recv (alternating channels), odd ones select */
static void *consumer(void *arg) {
  long id = (long)(intptr_t)arg;
  parker pk;
  pk_init(&pk);
  long last[NPROD];
  for (int i = 0; i < NPROD; i++) last[i] = -1;
  int open = 2, turn = 0;
  bool done[2] = {false, false};
  while (open > 0) {
    void *v;
    bool ok;
    int i;
    if (id % 2 == 0 || open == 1) {
      i = done[turn] ? 1 - turn : turn;
      turn = 1 - turn;
      ok = brecv(chs[i], &v, &pk);
    } else {
      i = bselect2(chs, &v, &ok, &pk, 50);
      if (i < 0) {
        atomic_fetch_add(&nfired_timeout, 1);
        continue;
      }
    }
    if (!ok) {
      if (!done[i]) open--;
      done[i] = true;
      continue;
    }
    record(take(v), last);
  }
  pk_destroy(&pk);
  return NULL;
}

static void test_stress(uint32_t cap) {
  long live = schan_live();
  memset(received, 0, sizeof received);
  atomic_store(&total_sum, 0);
  atomic_store(&total_n, 0);
  chs[0] = schan_new(cap, drop);
  chs[1] = schan_new(cap, drop);
  pthread_t p[NPROD], c[NCONS];
  for (long i = 0; i < NCONS; i++)
    pthread_create(&c[i], NULL, consumer, (void *)(intptr_t)i);
  for (long i = 0; i < NPROD; i++)
    pthread_create(&p[i], NULL, producer, (void *)(intptr_t)i);
  for (int i = 0; i < NPROD; i++) pthread_join(p[i], NULL);
  sudog *woken;
  for (int i = 0; i < 2; i++) {
    CHECK_EQ(schan_close(chs[i], &woken), CHAN_OK);
    wake_list(woken);
  }
  for (int i = 0; i < NCONS; i++) pthread_join(c[i], NULL);
  long n = NPROD * PER;
  CHECK_EQ(atomic_load(&total_n), n);
  CHECK_EQ(atomic_load(&total_sum), n * (n - 1) / 2);
  for (long i = 0; i < n; i++)
    if (atomic_load(&received[i]) != 1) CHECK_EQ(atomic_load(&received[i]), 1);
  schan_release(chs[0]);
  schan_release(chs[1]);
  CHECK_EQ(atomic_load(&nvals), 0);
  CHECK_EQ(schan_live(), live);
}

/* refs taken and dropped from many threads: freed exactly once, at the end */
static void *churn(void *arg) {
  schan *c = arg;
  for (int i = 0; i < 100000; i++) {
    schan_retain(c);
    schan_release(c);
  }
  schan_release(c);
  return NULL;
}

static void test_refs(void) {
  long live = schan_live();
  schan *c = schan_new(4, drop);
  sudog *woken;
  schan_lock(c);
  CHECK_EQ(send_locked(c, mkval(1), &woken), CHAN_OK);
  schan_unlock(c);
  pthread_t t[4];
  for (int i = 0; i < 4; i++) {
    schan_retain(c);
    pthread_create(&t[i], NULL, churn, c);
  }
  schan_release(c);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  CHECK_EQ(schan_live(), live);
  CHECK_EQ(atomic_load(&nvals), 0);
}

int main(void) {
  test_buffered();
  test_unbuffered_waiters();
  test_select_claim();
  test_stress(0);
  test_stress(16);
  test_refs();
  CHECK_DONE();
}
