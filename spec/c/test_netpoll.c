/*
** test_netpoll.c — a P's epoll netpoller (runtime/netpoll.h) driven by hand:
** rt_new with one P and no rt_run, so this thread plays P0's M.
**
** Covers: registration; readiness with nobody waiting leaves PD_READY;
** edge-triggered (no repeat without new data); a parked G (a G record made
** by the test, never run) readied by netpoll for read, for write (after the
** send buffer drains) and by HUP for both (its deadline timer stays armed for the next wait);
** stale events (old tag after pd_free + pd_alloc) dropped; mock events and
** stale mock events; netpoll_break from another thread ending netpoll(-1),
** coalesced breaks and the eventfd drained; EINTR during epoll_wait not
** failing netpoll. alarm(10) guards against a hang.
*/
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "../../runtime/iowait.h"
#include "../../runtime/netpoll.h"
#include "check.h"

static void open_vm(lua_State *L, P *p, void *ud) {
  (void)p;
  (void)ud;
  luaL_openlibs(L);
}

static uintptr_t rg(pollDesc *pd) { return atomic_load(&pd->rg); }
static uintptr_t wg(pollDesc *pd) { return atomic_load(&pd->wg); }

static void fake_g(G *g, P *p) {
  memset(g, 0, sizeof *g);
  g->tag.kind = TAG_G;
  g->tag.p = p;
  g->status = G_WAITING;
}

/* park g on pd for mode the way iowait_park + its unlock function do */
static void park(P *p, pollDesc *pd, int mode, G *g) {
  CHECK_EQ(pd_block_prepare(pd, mode), PD_PREP_WAIT);
  CHECK(pd_block_commit(pd, mode, g));
  atomic_fetch_add(&p->npollwait, 1);
}

static void pair(int sv[2]) {
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
}

static void never_fires(timer *t, void *arg) {
  (void)t;
  (void)arg;
  CHECK(!"deadline timer fired");
}

/* ------------------------------------------------------------------ */

static void test_ready_without_waiter(P *p) {
  int sv[2];
  pair(sv);
  pollDesc *pd = pd_alloc(sv[0]);
  CHECK_EQ(netpoll_open(p, pd), 0);
  CHECK(pd->registered && pd->owner == p);
  /* registration reports the socket writable (edge): W becomes READY */
  CHECK_EQ(netpoll(p, 0), 0);
  CHECK(wg(pd) == PD_READY);
  CHECK(rg(pd) == PD_NIL);
  /* data arrives: R becomes READY, no G to ready */
  CHECK(write(sv[1], "x", 1) == 1);
  CHECK_EQ(netpoll(p, 0), 0);
  CHECK(rg(pd) == PD_READY);
  /* consumed once by the next wait */
  CHECK_EQ(pd_block_prepare(pd, PD_MODE_R), PD_PREP_READY);
  CHECK(rg(pd) == PD_NIL);
  /* edge-triggered: no new event without new data */
  CHECK_EQ(netpoll(p, 0), 0);
  CHECK(rg(pd) == PD_NIL);
  char c;
  CHECK(read(sv[0], &c, 1) == 1 && c == 'x');
  CHECK_EQ(pd_block_prepare(pd, PD_MODE_W), PD_PREP_READY);

  /* registering twice fails with -EEXIST and changes nothing */
  CHECK_EQ(netpoll_open(p, pd), -EEXIST);
  /* a non-pollable fd: -EPERM (regular file) */
  FILE *f = tmpfile();
  CHECK(f != NULL);
  pollDesc *pf = pd_alloc(fileno(f));
  CHECK_EQ(netpoll_open(p, pf), -EPERM);
  CHECK(!pf->registered);
  pd_free(pf);
  fclose(f);

  netpoll_close(p, pd);
  CHECK(!pd->registered);
  netpoll_close(p, pd); /* not registered: no-op */
  CHECK(write(sv[1], "y", 1) == 1);
  CHECK_EQ(netpoll(p, 0), 0);
  CHECK(rg(pd) == PD_NIL); /* deregistered: no event */
  pd_free(pd);
  close(sv[0]);
  close(sv[1]);
}

static void test_parked_reader(P *p) {
  int sv[2];
  pair(sv);
  pollDesc *pd = pd_alloc(sv[0]);
  CHECK_EQ(netpoll_open(p, pd), 0);
  CHECK_EQ(netpoll(p, 0), 0); /* flush the registration edge */

  G g;
  fake_g(&g, p);
  park(p, pd, PD_MODE_R, &g);
  /* a read deadline armed while waiting (iowait arms pd->rt) */
  pd->rt.fn = never_fires;
  timer_arm(&p->timers, &pd->rt, mono_now() + 3600 * NS_PER_SEC);
  CHECK_EQ(netpoll(p, 0), 0); /* nothing to read yet */
  CHECK(rg(pd) == (uintptr_t)&g);
  CHECK(g.status == G_WAITING);

  CHECK(write(sv[1], "ab", 2) == 2);
  CHECK_EQ(netpoll(p, 5 * NS_PER_SEC), 1);
  CHECK(g.status == G_RUNNABLE);
  CHECK_EQ(g.wake, WAKE_READY);
  CHECK(timer_armed(&pd->rt)); /* waking leaves the deadline timer for the next wait */
  CHECK_EQ(atomic_load(&p->npollwait), 0);
  CHECK(rg(pd) == PD_READY);
  CHECK_EQ(runq_len(&p->q), 1);
  CHECK(runq_get(&p->q) == &g);
  CHECK(pd_block_finish(pd, PD_MODE_R) == true);
  CHECK(rg(pd) == PD_NIL);
  timer_disarm(&p->timers, &pd->rt);
  netpoll_close(p, pd);
  pd_free(pd);
  close(sv[0]);
  close(sv[1]);
}

static void test_parked_writer_and_hup(P *p) {
  int sv[2];
  pair(sv);
  pollDesc *pd = pd_alloc(sv[0]);
  CHECK_EQ(netpoll_open(p, pd), 0);
  CHECK_EQ(netpoll(p, 0), 0);
  CHECK_EQ(pd_block_prepare(pd, PD_MODE_W), PD_PREP_READY); /* the edge */

  /* fill the send buffer */
  static char buf[65536];
  size_t filled = 0;
  for (int i = 0; i < 10000; i++) {
    ssize_t n = write(sv[0], buf, sizeof buf);
    if (n < 0) {
      CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
      break;
    }
    filled += (size_t)n;
  }
  CHECK(filled > 0);
  G w;
  fake_g(&w, p);
  park(p, pd, PD_MODE_W, &w);
  CHECK_EQ(netpoll(p, 0), 0);
  CHECK(wg(pd) == (uintptr_t)&w);
  /* drain from the peer: space becomes available -> OUT edge */
  size_t drained = 0;
  while (drained < filled) {
    ssize_t n = read(sv[1], buf, sizeof buf);
    CHECK(n > 0);
    drained += (size_t)n;
  }
  int woke = 0;
  for (int i = 0; i < 50 && !woke; i++) woke = netpoll(p, 100 * NS_PER_MS);
  CHECK_EQ(woke, 1);
  CHECK(w.status == G_RUNNABLE && w.wake == WAKE_READY);
  CHECK(runq_get(&p->q) == &w);
  CHECK(pd_block_finish(pd, PD_MODE_W) == true);

  /* HUP (peer closed) wakes a reader and a writer */
  G r;
  fake_g(&r, p);
  fake_g(&w, p);
  park(p, pd, PD_MODE_R, &r);
  park(p, pd, PD_MODE_W, &w);
  close(sv[1]);
  woke = 0;
  for (int i = 0; i < 50 && woke < 2; i++) woke += netpoll(p, 100 * NS_PER_MS);
  CHECK_EQ(woke, 2);
  CHECK(r.status == G_RUNNABLE && w.status == G_RUNNABLE);
  CHECK_EQ(runq_len(&p->q), 2);
  G *a = runq_get(&p->q), *b = runq_get(&p->q);
  CHECK((a == &r && b == &w) || (a == &w && b == &r));
  CHECK(pd_block_finish(pd, PD_MODE_R) == true);
  CHECK(pd_block_finish(pd, PD_MODE_W) == true);
  CHECK_EQ(atomic_load(&p->npollwait), 0);
  netpoll_close(p, pd);
  pd_free(pd);
  close(sv[0]);
}

static void test_stale_events(P *p) {
  int sv[2], sv2[2];
  pair(sv);
  pollDesc *pd = pd_alloc(sv[0]);
  CHECK_EQ(netpoll_open(p, pd), 0);
  uint64_t old = pd_tag(pd);
  /* a genuine dispatch with the current tag works */
  CHECK_EQ(netpoll_dispatch(p, old, EPOLLIN), 0);
  CHECK(rg(pd) == PD_READY);
  netpoll_close(p, pd);
  pd_free(pd);
  close(sv[0]);
  close(sv[1]);

  pair(sv2);
  pollDesc *pd2 = pd_alloc(sv2[0]);
  printf("stale: new pollDesc %s the old slot\n", pd2 == pd ? "reuses" : "does not reuse");
  CHECK_EQ(netpoll_open(p, pd2), 0);
  CHECK(pd_tag(pd2) != old);
  /* stale event, every kind of bit: dropped */
  CHECK_EQ(netpoll_dispatch(p, old, EPOLLIN | EPOLLOUT | EPOLLHUP | EPOLLERR | EPOLLRDHUP), 0);
  CHECK(rg(pd2) == PD_NIL);
  CHECK(wg(pd2) == PD_NIL);
  /* with a G parked on the new pollDesc: still not readied by the stale
  ** event, readied by a current one */
  G g;
  fake_g(&g, p);
  park(p, pd2, PD_MODE_R, &g);
  CHECK_EQ(netpoll_dispatch(p, old, EPOLLIN), 0);
  CHECK(rg(pd2) == (uintptr_t)&g);
  CHECK(g.status == G_WAITING);
  CHECK_EQ(netpoll_dispatch(p, pd_tag(pd2), EPOLLIN), 1);
  CHECK(runq_get(&p->q) == &g);
  CHECK(pd_block_finish(pd2, PD_MODE_R) == true);
  /* OUT alone does not wake readers; RDHUP wakes readers only */
  CHECK_EQ(netpoll_dispatch(p, pd_tag(pd2), EPOLLOUT), 0);
  CHECK(rg(pd2) == PD_NIL && wg(pd2) == PD_READY);
  CHECK_EQ(pd_block_prepare(pd2, PD_MODE_W), PD_PREP_READY);
  CHECK_EQ(netpoll_dispatch(p, pd_tag(pd2), EPOLLRDHUP), 0);
  CHECK(rg(pd2) == PD_READY && wg(pd2) == PD_NIL);
  CHECK_EQ(pd_block_prepare(pd2, PD_MODE_R), PD_PREP_READY);

  /* mock events: delivered at the next netpoll even with timeout -1 */
  CHECK(!netpoll_has_mock(p));
  netpoll_mock_ready(p, pd2, PD_MODE_R);
  CHECK(netpoll_has_mock(p));
  (void)netpoll(p, -1); /* must not block: a mock is pending */
  CHECK(!netpoll_has_mock(p));
  CHECK(rg(pd2) == PD_READY);
  CHECK_EQ(pd_block_prepare(pd2, PD_MODE_R), PD_PREP_READY);
  /* a mock for a pollDesc freed since is stale */
  uint64_t t2 = pd_tag(pd2);
  netpoll_mock_ready(p, pd2, PD_MODE_W);
  netpoll_close(p, pd2);
  pd_free(pd2);
  pollDesc *pd3 = pd_alloc(sv2[0]);
  CHECK(pd_tag(pd3) != t2);
  (void)netpoll(p, 0);
  CHECK(rg(pd3) == PD_NIL && wg(pd3) == PD_NIL);
  pd_free(pd3);
  close(sv2[0]);
  close(sv2[1]);
}

/* ------------------------------------------------------------------ */
/* netpoll_break                                                       */

static P *gp;
static _Atomic int polling, poll_done;

static void *breaker(void *arg) {
  (void)arg;
  unsigned spins = 0;
  while (!atomic_load(&polling))
    if (++spins > 64) sched_yield();
  netpoll_break(gp);
  return NULL;
}

static void check_evfd_drained(P *p) {
  uint64_t v;
  CHECK(read(p->evfd, &v, sizeof v) < 0);
  CHECK(errno == EAGAIN);
}

static void test_break(P *p) {
  /* nothing else may be pending: flush */
  while (netpoll(p, 0) > 0) {
  }
  (void)netpoll(p, 0);
  gp = p;
  atomic_store(&polling, 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, breaker, NULL) == 0);
  atomic_store(&polling, 1);
  CHECK_EQ(netpoll(p, -1), 0); /* returns only because of the break */
  CHECK(pthread_join(t, NULL) == 0);
  check_evfd_drained(p);

  /* breaks coalesce: three, then one poll drains them all */
  netpoll_break(p);
  netpoll_break(p);
  netpoll_break(p);
  CHECK_EQ(netpoll(p, -1), 0);
  check_evfd_drained(p);
  /* and nothing is left to wake a later poll: a 0-timeout poll finds
  ** nothing and a short timed poll times out */
  int64_t t0 = mono_now();
  CHECK_EQ(netpoll(p, 20 * NS_PER_MS), 0);
  CHECK(mono_now() - t0 >= 19 * NS_PER_MS);
}

/* ------------------------------------------------------------------ */
/* EINTR                                                               */

static _Atomic int nsig;
static pid_t main_tid;

static void on_usr1(int sig) {
  (void)sig;
  atomic_fetch_add(&nsig, 1);
}

/* whether thread tid is blocked in epoll_wait/epoll_pwait right now:
** 1 yes, 0 no, -1 unknown (no /proc) */
static int in_epoll_wait(pid_t tid) {
  char path[64], buf[128];
  snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  if (n == 0) return -1;
  buf[n] = 0;
  long nr = -1;
  if (sscanf(buf, "%ld", &nr) != 1) return 0; /* "running" */
  return nr == SYS_epoll_wait || nr == SYS_epoll_pwait
#ifdef SYS_epoll_pwait2
         || nr == SYS_epoll_pwait2
#endif
      ;
}

static _Atomic int detected;
static _Atomic int64_t detected_at; /* mono_now() of the first detection */
static pthread_t main_thread;

static void *interrupter(void *arg) {
  (void)arg;
  unsigned spins = 0;
  while (!atomic_load(&polling))
    if (++spins > 64) sched_yield();
  while (!atomic_load(&poll_done)) {
    int s = in_epoll_wait(main_tid);
    if (s == 1) {
      if (!atomic_exchange(&detected, 1)) atomic_store(&detected_at, mono_now());
      pthread_kill(main_thread, SIGUSR1);
    } else if (s < 0) {
      pthread_kill(main_thread, SIGUSR1); /* unknown: keep signalling */
    }
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  return NULL;
}

static void test_eintr(P *p) {
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART */
  CHECK(sigaction(SIGUSR1, &sa, &old) == 0);
  while (netpoll(p, 0) > 0) {
  }
  main_tid = (pid_t)syscall(SYS_gettid);
  main_thread = pthread_self();
  atomic_store(&polling, 0);
  atomic_store(&poll_done, 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, interrupter, NULL) == 0);
  atomic_store(&polling, 1);
  int64_t t0 = mono_now();
  int n = netpoll(p, 2 * NS_PER_SEC); /* must not throw on EINTR */
  int64_t dt = mono_now() - t0;
  atomic_store(&poll_done, 1);
  CHECK(pthread_join(t, NULL) == 0);
  CHECK_EQ(n, 0);
  CHECK(atomic_load(&nsig) >= 1);
  if (atomic_load(&detected) && atomic_load(&detected_at) - t0 < NS_PER_SEC) {
    /* the signal hit epoll_wait well before its timeout: it returned early
    ** (EINTR) instead of being restarted or failing */
    CHECK(dt < 2 * NS_PER_SEC);
  }
  printf("eintr: %d signal(s), epoll_wait %s, returned after %.1f ms\n",
         atomic_load(&nsig), atomic_load(&detected) ? "interrupted" : "not observed",
         (double)dt / 1e6);
  /* still usable afterwards */
  netpoll_break(p);
  CHECK_EQ(netpoll(p, -1), 0);
  check_evfd_drained(p);
  CHECK(sigaction(SIGUSR1, &old, NULL) == 0);
}

int main(void) {
  alarm(10); /* a hang is a failure (SIGALRM kills the test) */
  rt_config cfg = RT_CONFIG_DEFAULTS;
  cfg.nprocs = 1;
  rt *r = rt_new(&cfg, open_vm, NULL);
  CHECK(r != NULL);
  P *p = r->ps[0];
  CHECK(p->epfd >= 0 && p->evfd >= 0);

  test_ready_without_waiter(p);
  test_parked_reader(p);
  test_parked_writer_and_hup(p);
  test_stale_events(p);
  test_break(p);
  test_eintr(p);

  CHECK_EQ(runq_len(&p->q), 0);
  CHECK_EQ(p->timers.len, 0);
  atomic_store(&r->close_vms, true);
  rt_free(r);
  alarm(0);
  CHECK_DONE();
}
