/* handoff.c — see handoff.h. */
#include "handoff.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "netpoll.h"
#include "preempt.h"
#include "signal.h"
#include "sysmon.h"

static _Thread_local M *current_m;

/* ---------- P status (the table in handoff.h) ---------- */

static const char *pstatus_name(int s) {
  static const char *n[] = {"running", "syscall", "free"};
  return (unsigned)s < 3 ? n[s] : "?";
}

static bool p_status_legal(int from, int to) {
  switch (from) {
    case P_RUNNING: return to == P_SYSCALL || to == P_FREE;
    case P_SYSCALL: return to == P_RUNNING;
    case P_FREE: return to == P_RUNNING;
    default: return false;
  }
}

static _Noreturn void p_bad_status(P *p, int from, int to) {
  char buf[128];
  snprintf(buf, sizeof buf, "bad p status transition %s -> %s (is %s)",
           pstatus_name(from), pstatus_name(to), pstatus_name(atomic_load(&p->pstatus)));
  rt_throw(buf);
}

/* p_cas_status — Go: casgstatus for a P. Aborts on a transition the table
** does not allow; returns whether p was in `from` (false is legal only
** where two threads race for the same move: SYSCALL -> RUNNING). */
static bool p_cas_status(P *p, int from, int to) {
  if (!p_status_legal(from, to)) p_bad_status(p, from, to);
  int expect = from;
  return atomic_compare_exchange_strong(&p->pstatus, &expect, to);
}

/* p_set_status — a move only the caller can make now (p's holder, or under
** p->hlock): p must be in `from`, else abort. */
static void p_set_status(P *p, int from, int to) {
  if (!p_cas_status(p, from, to)) p_bad_status(p, from, to);
}

M *handoff_current_m(void) { return current_m; }

int handoff_wakefd(void) {
  M *m = current_m;
  if (!m) return -1;
  if (m->wakefd < 0) m->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  return m->wakefd;
}

static void m_init(M *m, rt *r, int id) {
  m->rt = r;
  m->id = id;
  m->wakefd = -1;
  pthread_cond_init(&m->cond, NULL);
}

void handoff_init(rt *r) {
  pthread_mutex_init(&r->mlock, NULL);
  pthread_cond_init(&r->mcond, NULL);
  r->maxm = r->cfg.maxthreads;
  if (r->maxm < r->nprocs) r->maxm = r->nprocs;
  r->ms = x_calloc((size_t)r->nprocs, sizeof *r->ms);
  r->nm = r->nprocs;
  for (int i = 0; i < r->nprocs; i++) {
    M *m = &r->ms[i];
    m_init(m, r, i);
    m->ism0 = i == 0;
    m->startp = r->ps[i];
    atomic_store(&r->ps[i]->m, m);
    pthread_mutex_init(&r->ps[i]->hlock, NULL);
  }
}

/* ---------- live accounting (rt_run's final wait) ---------- */

static void live_dec(rt *r, bool blocked) {
  pthread_mutex_lock(&r->mlock);
  r->nblocked += blocked;
  if (--r->nlive == 0) {
    pthread_cond_broadcast(&r->mcond);
    if (r->m0_blocked && atomic_load(&r->stopping)) {
      /* rt_run's thread is stuck in a C call: leave the process from here,
      ** as Go's exit does from whichever M calls it */
      pthread_mutex_unlock(&r->mlock);
      fflush(NULL);
      exit(atomic_load(&r->exit_code));
    }
  }
  pthread_mutex_unlock(&r->mlock);
}

static void m0_blocked(rt *r, bool on) {
  pthread_mutex_lock(&r->mlock);
  r->nblocked += on ? 1 : -1;
  r->m0_blocked = on;
  pthread_mutex_unlock(&r->mlock);
}

/* live_inc — back from a blocking call; never returns once rt_run is done */
static void live_inc(rt *r) {
  pthread_mutex_lock(&r->mlock);
  r->nblocked--;
  if (r->ms_done) { /* abandoned, as Go abandons syscalls at exit */
    r->nblocked++;
    for (;;) pthread_cond_wait(&current_m->cond, &r->mlock);
  }
  r->nlive++;
  pthread_mutex_unlock(&r->mlock);
}

void handoff_wait_ms(rt *r) {
  pthread_mutex_lock(&r->mlock);
  while (r->nlive > 0) pthread_cond_wait(&r->mcond, &r->mlock);
  r->ms_done = true;
  pthread_mutex_unlock(&r->mlock);
}

/* ---------- M threads and the idle pool ---------- */

/* unlink_m — take m off the M list at *head (linked by next); false if it
** was not there */
static bool unlink_m(M **head, M *m) {
  while (*head && *head != m) head = &(*head)->next;
  if (!*head) return false;
  *head = m->next;
  m->next = NULL;
  return true;
}

/* m_idle — park in the pool until sysmon hands us a P; NULL at stop */
static P *m_idle(rt *r, M *m) {
  pthread_mutex_lock(&r->mlock);
  m->nextp = NULL;
  m->next = r->midle;
  r->midle = m;
  while (!m->nextp) {
    /* at stop leave, unless m_get already took us off: a P is coming */
    if (atomic_load(&r->stopping) && unlink_m(&r->midle, m)) break;
    pthread_cond_wait(&m->cond, &r->mlock);
  }
  P *p = m->nextp;
  m->nextp = NULL;
  pthread_mutex_unlock(&r->mlock);
  return p;
}

static void *m_thread(void *arg) {
  M *m = arg;
  rt *r = m->rt;
  current_m = m;
  /* no signal is blocked here: the handlers only set flags and break Ps'
  ** netpoll, safe on any thread, and children started from this thread
  ** (io.popen) inherit its mask */
  P *p = m->startp;
  m->startp = NULL;
  while (p) {
    sched_set_current_p(p);
    if (sched_loop(p)) break; /* the runtime stopped */
    p = m_idle(r, m);
  }
  live_dec(r, false);
  return NULL;
}

static bool m_spawn(rt *r, M *m) {
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  pthread_mutex_lock(&r->mlock);
  r->nlive++;
  m->started = true;
  int e = pthread_create(&m->thread, &a, m_thread, m);
  if (e != 0) {
    r->nlive--;
    m->started = false;
  }
  pthread_mutex_unlock(&r->mlock);
  pthread_attr_destroy(&a);
  return e == 0;
}

void handoff_start(rt *r) {
  current_m = &r->ms[0];
  r->ms[0].thread = pthread_self(); /* M0 holds P0: sysmon may signal it */
  r->ms[0].started = true;
  for (int i = 1; i < r->nprocs; i++)
    if (!m_spawn(r, &r->ms[i])) rt_throw("cannot start M thread");
}

void handoff_stop(rt *r) {
  pthread_mutex_lock(&r->mlock);
  for (M *m = r->midle; m; m = m->next) pthread_cond_signal(&m->cond);
  pthread_mutex_unlock(&r->mlock);
  /* M0 may wait for P0 between slices (handoff_give): let it see the stop */
  P *p0 = r->ps[0];
  pthread_mutex_lock(&p0->hlock);
  for (M *w = p0->hwaiters; w; w = w->next) pthread_cond_signal(&w->cond);
  pthread_mutex_unlock(&p0->hlock);
}

static void m_free(M *m) {
  if (m->wakefd >= 0) close(m->wakefd);
  pthread_cond_destroy(&m->cond);
}

bool handoff_blocked(rt *r) {
  pthread_mutex_lock(&r->mlock);
  bool b = r->nblocked > 0;
  pthread_mutex_unlock(&r->mlock);
  return b;
}

void handoff_free(rt *r) {
  M *m = r->mall;
  while (m) {
    M *n = m->allnext;
    m_free(m);
    free(m);
    m = n;
  }
  for (int i = 0; i < r->nprocs; i++) {
    m_free(&r->ms[i]);
    pthread_mutex_destroy(&r->ps[i]->hlock);
  }
  free(r->ms);
  pthread_mutex_destroy(&r->mlock);
  pthread_cond_destroy(&r->mcond);
}

/* ---------- enter / exit ---------- */

void handoff_enter(P *p, const char *what, int64_t until) {
  M *m = current_m;
  if (!m || m->sys_depth++ > 0) return;
  rt *r = p->rt;
  m->sys_p = p;
  m->sys_what = what;
  atomic_store(&m->sys_until, until);
  atomic_store(&m->sys_state, M_SYS_IN_C);
  m->sys_g = p->curg;
  m->sys_L = atomic_load_explicit(&p->curL, memory_order_relaxed);
  atomic_store_explicit(&p->running, false, memory_order_relaxed);
  atomic_signal_fence(memory_order_seq_cst); /* SIGURG now finds nothing */
  preempt_clear(p);
  sched_publish(p);
  sched_set_current_p(NULL);
  atomic_store(&p->syscall_when, mono_now());
  if (!m->ism0) live_dec(r, true);
  else m0_blocked(r, true);
  p_set_status(p, P_RUNNING, P_SYSCALL); /* from here sysmon may retake p */
  sysmon_wake(r);
}

static void append_waiter(P *p, M *m) {
  m->granted = false;
  m->next = NULL;
  M **pp = &p->hwaiters;
  while (*pp) pp = &(*pp)->next;
  *pp = m;
  atomic_fetch_add(&p->nhwaiters, 1);
}

/* wait_for_p — the P was retaken: queue for it and sleep until granted */
static void wait_for_p(P *p, M *m) {
  pthread_mutex_lock(&p->hlock);
  if (atomic_load(&p->pstatus) == P_FREE) {
    p_set_status(p, P_FREE, P_RUNNING);
    atomic_store(&p->m, m);
  } else {
    append_waiter(p, m);
    netpoll_break(p); /* the holder may sleep in epoll_wait */
    sysmon_wake(p->rt); /* or be in a blocking call itself */
    while (!m->granted) pthread_cond_wait(&m->cond, &p->hlock);
  }
  pthread_mutex_unlock(&p->hlock);
}

void handoff_exit(P *p) {
  M *m = current_m;
  if (!m || m->sys_depth == 0 || --m->sys_depth > 0) return;
  if (p != m->sys_p) rt_throw("blocking call left on another P");
  rt *r = p->rt;
  atomic_store(&m->sys_state, M_SYS_BACK);
  if (!m->ism0) live_inc(r);
  else m0_blocked(r, false);
  if (!p_cas_status(p, P_SYSCALL, P_RUNNING)) { /* sysmon retook p */
    wait_for_p(p, m);
    p->st.handoffs++;
  }
  sched_set_current_p(p);
  p->curg = m->sys_g;
  uint64_t seq = atomic_load_explicit(&p->exec_seq, memory_order_relaxed);
  atomic_store_explicit(&p->exec_seq, seq + 1, memory_order_relaxed);
  atomic_store_explicit(&p->curL, m->sys_L, memory_order_relaxed);
  atomic_signal_fence(memory_order_seq_cst);
  atomic_store_explicit(&p->running, true, memory_order_relaxed);
  m->sys_g = NULL;
  m->sys_L = NULL;
  m->sys_p = NULL;
  m->sys_what = NULL;
  atomic_store(&m->sys_state, M_SYS_NONE);
}

/* ---------- giving a P away ---------- */

/* grant_first — hlock held: hand p to the first waiter; false if none */
static bool grant_first(P *p) {
  M *w = p->hwaiters;
  if (!w) return false;
  p->hwaiters = w->next;
  w->next = NULL;
  atomic_fetch_sub(&p->nhwaiters, 1);
  atomic_store(&p->m, w);
  w->granted = true;
  pthread_cond_signal(&w->cond);
  return true;
}

bool handoff_give(P *p) {
  M *m = current_m;
  sched_publish(p);
  pthread_mutex_lock(&p->hlock);
  if (!grant_first(p)) {
    pthread_mutex_unlock(&p->hlock);
    return true;
  }
  sched_set_current_p(NULL);
  if (!m->ism0) {
    pthread_mutex_unlock(&p->hlock);
    return false;
  }
  append_waiter(p, m); /* M0 must end up back on P0 to leave rt_run */
  while (!m->granted && !atomic_load(&p->rt->stopping))
    pthread_cond_wait(&m->cond, &p->hlock);
  if (!m->granted) { /* stopping while P0's holder is stuck in C: leave */
    if (unlink_m(&p->hwaiters, m)) atomic_fetch_sub(&p->nhwaiters, 1);
    pthread_mutex_unlock(&p->hlock);
    return false;
  }
  pthread_mutex_unlock(&p->hlock);
  sched_set_current_p(p);
  return true;
}

void handoff_release(P *p) {
  pthread_mutex_lock(&p->hlock);
  if (!grant_first(p)) p_set_status(p, P_RUNNING, P_FREE);
  sched_set_current_p(NULL);
  pthread_mutex_unlock(&p->hlock);
}

/* ---------- sysmon's retake ---------- */

/* has_work — something else could run on p (published figures only) */
static bool has_work(P *p) {
  rt *r = p->rt;
  return atomic_load(&p->nhwaiters) || atomic_load(&p->inbox_n) ||
         atomic_load(&p->pub.runq) > 0 || atomic_load(&p->npollwait) > 0 ||
         atomic_load(&p->next_timer_pub) != DEADLINE_NONE ||
         atomic_load(&p->pq.n) || atomic_load(&p->pinq.n) ||
         atomic_load(&p->shutdown_req) ||
         atomic_load(&p->dump_req) || atomic_load(&p->sig_pend) ||
         atomic_load(&r->signal_pending);
}

/* m_get — an idle M, or a new (not yet started) one under the cap */
static M *m_get(rt *r) {
  pthread_mutex_lock(&r->mlock);
  M *m = r->midle;
  if (m) {
    r->midle = m->next;
  } else if (r->nm < r->maxm) {
    m = x_calloc(1, sizeof *m);
    m_init(m, r, r->nm++);
    m->allnext = r->mall;
    r->mall = m;
  }
  pthread_mutex_unlock(&r->mlock);
  return m;
}

/* m_put — m was not used after all: back to the idle list (an unstarted
** one is started by a later m_get's user) */
static void m_put(rt *r, M *m) {
  pthread_mutex_lock(&r->mlock);
  m->next = r->midle;
  r->midle = m;
  pthread_cond_signal(&m->cond); /* it re-checks for a stop */
  pthread_mutex_unlock(&r->mlock);
}

/* m_run — m now holds p: wake it, or start its thread */
static bool m_run(rt *r, M *m, P *p) {
  pthread_mutex_lock(&r->mlock);
  bool started = m->started;
  if (started) {
    m->nextp = p;
    pthread_cond_signal(&m->cond);
  }
  pthread_mutex_unlock(&r->mlock);
  if (started) return true;
  m->startp = p;
  return m_spawn(r, m);
}

/* give_back — p was taken from its blocked M (SYSCALL -> RUNNING) but
** will not be kept: to a waiting M, else back to P_SYSCALL */
static void give_back(P *p) {
  pthread_mutex_lock(&p->hlock);
  if (!grant_first(p)) p_set_status(p, P_RUNNING, P_SYSCALL);
  pthread_mutex_unlock(&p->hlock);
}

/* hand_over — p (P_SYSCALL) to an idle or new M; false if none could be
** had (the cap) or its M came back first */
static bool hand_over(rt *r, P *p) {
  M *m = m_get(r);
  if (!m) return false; /* at the cap: the VM waits for its blocking call */
  if (!p_cas_status(p, P_SYSCALL, P_RUNNING)) { /* its M came back first */
    m_put(r, m);
    return false;
  }
  atomic_store(&p->m, m);
  if (m_run(r, m, p)) return true;
  m_put(r, m); /* no thread: give p back to its blocked M */
  give_back(p);
  return false;
}

int handoff_retake(rt *r, int64_t now) {
  int insys = 0;
  for (int i = 0; i < r->nprocs; i++) {
    P *p = r->ps[i];
    if (atomic_load(&p->pstatus) != P_SYSCALL) continue;
    if (!has_work(p)) continue; /* nothing waits for it: back off */
    insys++;
    if (now - atomic_load(&p->syscall_when) >= HANDOFF_NS) hand_over(r, p);
  }
  return insys;
}

/* ---------- a G parked on its M (handoff.h) ---------- */

/* sleep_parked — until the P's holder readied the G (flag first, then the
** eventfd: a post between the flag check and ppoll is kept by the fd;
** without an eventfd, the M's condition variable under r->mlock) */
static void sleep_parked(M *m) {
  if (m->wakefd < 0) {
    pthread_mutex_lock(&m->rt->mlock);
    while (!atomic_load(&m->onm_woken)) pthread_cond_wait(&m->cond, &m->rt->mlock);
    pthread_mutex_unlock(&m->rt->mlock);
    return;
  }
  struct pollfd f = {m->wakefd, POLLIN, 0};
  while (!atomic_load(&m->onm_woken)) {
    uint64_t v;
    if (ppoll(&f, 1, NULL, NULL) > 0 && read(m->wakefd, &v, sizeof v) < 0) {
      /* EAGAIN: another reader took it */
    }
  }
}

void handoff_park(P *p, const char *what) {
  M *m = current_m;
  handoff_enter(p, what, DEADLINE_NONE);
  hand_over(p->rt, p);
  sleep_parked(m);
  handoff_exit(p);
}

void handoff_wake_parked(M *m) {
  int fd = m->wakefd;
  uint64_t one = 1;
  if (fd >= 0) {
    atomic_store(&m->onm_woken, true);
    if (write(fd, &one, sizeof one) < 0) { /* full: already posted */ }
    return;
  }
  pthread_mutex_lock(&m->rt->mlock); /* no eventfd: the M waits on m->cond */
  atomic_store(&m->onm_woken, true);
  pthread_cond_signal(&m->cond);
  pthread_mutex_unlock(&m->rt->mlock);
}

/* ---------- thread exhaustion (handoff.h) ---------- */

/* ready_work — p has work that could run now (published figures; an fd
** waiter is not: whether its event came only a poll can tell) */
static bool ready_work(P *p, int64_t now) {
  int64_t t = atomic_load(&p->next_timer_pub);
  return atomic_load(&p->nhwaiters) || atomic_load(&p->inbox_n) ||
         atomic_load(&p->pub.runq) > 0 || (t != DEADLINE_NONE && t <= now) ||
         atomic_load(&p->pq.n) || atomic_load(&p->pinq.n) ||
         atomic_load(&p->rt->global.n);
}

/* m_bounded — m is in a blocking call that ends by itself (a deadline) */
static bool m_bounded(M *m) {
  return atomic_load(&m->sys_state) == M_SYS_IN_C &&
         atomic_load(&m->sys_until) != DEADLINE_NONE;
}

/* exhausted — the state handoff.h calls thread exhaustion, now */
static bool exhausted(rt *r, int64_t now) {
  bool work = false;
  for (int i = 0; i < r->nprocs; i++) {
    P *p = r->ps[i];
    if (atomic_load(&p->pstatus) != P_SYSCALL) return false;
    work = work || ready_work(p, now);
  }
  if (!work) return false;
  pthread_mutex_lock(&r->mlock);
  bool stuck = !r->midle && r->nm >= r->maxm;
  for (int i = 0; stuck && i < r->nprocs; i++) stuck = !m_bounded(&r->ms[i]);
  for (M *m = r->mall; stuck && m; m = m->allnext) stuck = !m_bounded(m);
  pthread_mutex_unlock(&r->mlock);
  return stuck;
}

/* take_all — every P out of P_SYSCALL into sysmon's hands; false (every P
** given back) if an M came back first */
static bool take_all(rt *r) {
  int i = 0;
  while (i < r->nprocs && p_cas_status(r->ps[i], P_SYSCALL, P_RUNNING)) i++;
  if (i == r->nprocs) return true;
  while (i-- > 0) give_back(r->ps[i]);
  return false;
}

/* the Ms in or back from a blocking call, for the report's labels */
typedef struct sysm {
  G *g;
  const char *what;
  int state;
} sysm;
typedef struct sysms {
  sysm *v;
  int n;
} sysms;

static void collect(sysms *s, M *m) {
  int st = atomic_load(&m->sys_state);
  if (st == M_SYS_NONE || !m->sys_g) return;
  s->v[s->n++] = (sysm){m->sys_g, m->sys_what ? m->sys_what : "C call", st};
}

static const char *blocked_why(G *g, void *ud) {
  static char buf[96];
  sysms *s = ud;
  for (int i = 0; i < s->n; i++) {
    if (s->v[i].g != g) continue;
    snprintf(buf, sizeof buf, s->v[i].state == M_SYS_IN_C ? "syscall: %s"
                                                           : "%s returned, waiting for its P",
             s->v[i].what);
    return buf;
  }
  return NULL;
}

/* exhaustion_fatal — every P is sysmon's (take_all): print and leave. The
** process cannot end through rt_stop: no M would ever get back to run it */
static _Noreturn void exhaustion_fatal(rt *r) {
  sysms s = {0};
  pthread_mutex_lock(&r->mlock);
  s.v = x_calloc((size_t)r->nm + 1, sizeof *s.v); /* every M, at most */
  for (int i = 0; i < r->nprocs; i++) collect(&s, &r->ms[i]);
  for (M *m = r->mall; m; m = m->allnext) collect(&s, m);
  pthread_mutex_unlock(&r->mlock);
  pthread_mutex_lock(&r->dump_lock);
  fflush(stdout);
  fprintf(stderr,
          "fatal error: all threads are blocked in C calls (GOLUA_MAXTHREADS=%d)\n"
          "(%d blocked; goroutines waiting to run for %d ms)\n\n",
          r->maxm, s.n, r->cfg.mcapwait_ms);
  for (int i = 0; i < r->nprocs; i++) signal_dump_taken(r->ps[i], blocked_why, &s);
  fflush(NULL);
  _exit(2);
}

void handoff_starved(rt *r, int64_t now) {
  /* a goroutine ran or a call came back on some P since the last round
  ** (exec_seq moved): a new stretch, however alike it looks */
  bool moved = false;
  for (int i = 0; i < r->nprocs; i++) {
    P *p = r->ps[i];
    uint64_t seq = atomic_load_explicit(&p->exec_seq, memory_order_relaxed);
    if (seq != p->starve_seq) moved = true;
    p->starve_seq = seq;
  }
  bool ex = exhausted(r, now);
  if (!ex || moved || !r->starve_since) {
    r->starve_since = ex ? now : 0;
    return;
  }
  if (now - r->starve_since < (int64_t)r->cfg.mcapwait_ms * NS_PER_MS) return;
  if (!take_all(r)) {
    r->starve_since = 0;
    return;
  }
  exhaustion_fatal(r);
}
