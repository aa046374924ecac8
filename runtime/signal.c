/* signal.c — see signal.h. */
#include "signal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "netpoll.h"
#include "preempt.h"

/* signal_rt — the one runtime signals are routed to. A signal handler gets
** no argument, so this is the one process-wide pointer it can use; it is
** written only by signal_install / signal_forget (main thread), and the
** handlers only read it. */
static rt *signal_rt;

/* ---------- dumps ---------- */

static void dump_one(P *p, G *g, const char *why) {
  if (!why) why = g->status == G_WAITING ? g->waitreason : sched_gstatus_name(g->status);
  if (p->rt->nprocs > 1)
    fprintf(stderr, "goroutine %llu [%s, P %d]:\n", (unsigned long long)g->id,
            why ? why : "?", p->id);
  else
    fprintf(stderr, "goroutine %llu [%s]:\n", (unsigned long long)g->id, why ? why : "?");
  luaL_traceback(p->L, g->L, NULL, 0);
  fprintf(stderr, "%s\n\n", lua_tostring(p->L, -1));
  lua_pop(p->L, 1);
}

void signal_dump_goroutines(P *p) {
  for (G *g = p->allg; g; g = g->allnext) dump_one(p, g, NULL);
  fflush(stderr);
}

void signal_dump_taken(P *p, const char *(*why)(G *g, void *ud), void *ud) {
  /* no collection step on this thread: a finalizer would run Lua here */
  lua_gc(p->L, LUA_GCSTOP);
  for (G *g = p->allg; g; g = g->allnext) dump_one(p, g, why(g, ud));
  fflush(stderr);
}

static void on_sigquit(int sig) {
  (void)sig;
  rt *r = signal_rt;
  if (!r) return;
  int saved = errno;
  for (int i = 0; i < r->nprocs; i++) {
    atomic_store(&r->ps[i]->dump_req, true);
    netpoll_break(r->ps[i]);
  }
  errno = saved;
}

/* signal_dump_on_request — SIGQUIT: this P's goroutines, from its own M
** (the only thread that may walk its VM); a goroutine running a long loop
** delays it */
void signal_dump_on_request(P *p) {
  if (!atomic_exchange(&p->dump_req, false)) return;
  pthread_mutex_lock(&p->rt->dump_lock);
  fprintf(stderr, "SIGQUIT: goroutines of P %d\n\n", p->id);
  signal_dump_goroutines(p);
  pthread_mutex_unlock(&p->rt->dump_lock);
}

/* ---------- graceful shutdown (SIGINT / SIGTERM) ---------- */

/* notify — a subscribed signal: mark it on every P whose VM subscribed and
** break that P; its M sends the name at its next round (signal_deliver) */
static void notify(rt *r, int sig) {
  uint64_t bit = UINT64_C(1) << sig;
  for (int i = 0; i < r->nprocs; i++) {
    P *p = r->ps[i];
    if (!(atomic_load(&p->sig_sub) & bit)) continue;
    atomic_fetch_or(&p->sig_pend, bit);
    netpoll_break(p);
  }
}

static void on_notify(int sig) {
  rt *r = signal_rt;
  if (!r) return;
  int saved = errno;
  notify(r, sig);
  errno = saved;
}

/* interrupt — lua's SIGINT: every P running Lua (every P: all) raises
** "interrupted!" at its next instruction (preempt.c's hook; a P not
** running Lua when the next goroutine starts, see execute); false if none
** runs Lua */
static bool interrupt(rt *r, bool all) {
  bool any = false;
  for (int i = 0; i < r->nprocs; i++) {
    P *p = r->ps[i];
    if (all) atomic_store(&p->interrupt_req, true);
    if (!atomic_load(&p->running)) continue;
    atomic_store(&p->interrupt_req, true);
    pthread_kill(atomic_load(&p->m)->thread, SIGURG);
    any = true;
  }
  return any;
}

/* on_signal — SIGINT/SIGTERM. Subscribed: to the channels. Otherwise the
** first: SIGINT with no listener interrupts the running Lua code; else
** note the signal and when (clock_gettime is async-signal-safe) and break
** every P, so whichever is in its loop takes it even when P0's M is stuck
** in a blocking call (graceful shutdown); the second: exit now */
static void on_signal(int sig) {
  rt *r = signal_rt;
  if (!r) return;
  int saved = errno;
  if (atomic_load(&r->sig_nsub[sig]) > 0) {
    notify(r, sig);
    errno = saved;
    return;
  }
  if (atomic_fetch_add(&r->nsignals, 1) >= 1) _exit(128 + sig);
  if (sig == SIGINT && atomic_load(&r->nclosers) == 0 && interrupt(r, false)) {
    errno = saved;
    return;
  }
  if (sig == SIGINT && atomic_load(&r->nclosers) == 0)
    interrupt(r, true); /* none runs Lua: the next to run raises it (as lua) */
  atomic_store(&r->signal_when, mono_now());
  atomic_store(&r->signal_pending, sig);
  for (int i = 0; i < r->nprocs; i++) netpoll_break(r->ps[i]);
  errno = saved;
}

/* ---------- subscriptions (go.signal) ---------- */

static const struct {
  const char *name;
  int sig;
} signal_names[] = {
    {"SIGHUP", SIGHUP},     {"SIGINT", SIGINT},     {"SIGTERM", SIGTERM},
    {"SIGUSR1", SIGUSR1},   {"SIGUSR2", SIGUSR2},   {"SIGWINCH", SIGWINCH},
    {"SIGALRM", SIGALRM},   {"SIGCONT", SIGCONT},   {"SIGTSTP", SIGTSTP},
    {"SIGTTIN", SIGTTIN},   {"SIGTTOU", SIGTTOU},   {"SIGVTALRM", SIGVTALRM},
    {"SIGPROF", SIGPROF},   {"SIGXCPU", SIGXCPU},   {"SIGXFSZ", SIGXFSZ},
    {"SIGPWR", SIGPWR},
};
#define NSIGNAMES (sizeof signal_names / sizeof signal_names[0])

int signal_by_name(const char *name) {
  for (size_t i = 0; i < NSIGNAMES; i++)
    if (strcmp(signal_names[i].name, name) == 0) return signal_names[i].sig;
  return 0;
}

const char *signal_name(int sig) {
  for (size_t i = 0; i < NSIGNAMES; i++)
    if (signal_names[i].sig == sig) return signal_names[i].name;
  return NULL;
}

/* count — one VM more (d = 1) or less (-1) subscribes to sig: the first
** routes it to the channels, the last gives it back its default action
** (SIGINT/SIGTERM keep on_signal, which looks at the count) */
static void count(rt *r, int sig, int d) {
  int was = atomic_fetch_add(&r->sig_nsub[sig], d);
  if (sig == SIGINT || sig == SIGTERM) return;
  if (d > 0 && was == 0) signal_set_handler(sig, on_notify);
  if (d < 0 && was == 1) signal(sig, SIG_DFL);
}

void signal_subscribe(P *p, uint64_t mask) {
  uint64_t old = atomic_exchange(&p->sig_sub, mask);
  for (int sig = 1; sig < 64; sig++) {
    uint64_t bit = UINT64_C(1) << sig;
    if ((old ^ mask) & bit) count(p->rt, sig, mask & bit ? 1 : -1);
  }
}

void signal_deliver(P *p) {
  uint64_t mask = atomic_exchange(&p->sig_pend, 0) & atomic_load(&p->sig_sub);
  if (mask && p->rt->sig_deliver) p->rt->sig_deliver(p, mask);
}

static void on_sigpipe(int sig) { (void)sig; }

void signal_set_handler(int sig, void (*handler)(int)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, NULL);
}

void signal_install(rt *r) {
  signal_rt = r;
  signal_set_handler(SIGINT, on_signal);
  signal_set_handler(SIGTERM, on_signal);
  signal_set_handler(SIGQUIT, on_sigquit);
  preempt_init(r);
  /* a handler, not SIG_IGN: writes to a closed pipe still fail with EPIPE,
  ** but exec resets handlers, so children (io.popen, os.execute) start
  ** with the default SIGPIPE as they would from a shell (Go does the same) */
  signal_set_handler(SIGPIPE, on_sigpipe);
}

void signal_forget(rt *r) {
  if (signal_rt == r) signal_rt = NULL;
}

void signal_grace_expired(rt *r) {
  if (atomic_exchange(&r->grace_done, true)) return;
  pthread_mutex_lock(&r->dump_lock);
  fprintf(stderr, "goluarun: shutdown grace period expired\n");
  pthread_mutex_unlock(&r->dump_lock);
  rt_stop(r, STOP_EXIT, 1, false);
}

static void grace_fire(timer *t, void *arg) {
  (void)t;
  signal_grace_expired(arg);
}

int64_t signal_grace_end(rt *r) {
  int64_t when = atomic_load(&r->signal_when);
  if (!when) return DEADLINE_NONE;
  return when + (int64_t)(r->cfg.grace * (double)NS_PER_SEC);
}

void signal_handle(P *p) {
  rt *r = p->rt;
  int sig = atomic_exchange(&r->signal_pending, 0);
  if (!sig) return; /* another P took it */
  atomic_store(&r->shutting_down, true);
  for (int i = 0; i < r->nprocs; i++) {
    atomic_store(&r->ps[i]->shutdown_req, true);
    netpoll_break(r->ps[i]);
  }
  timer_init(&r->grace_timer, grace_fire, r);
  timer_arm(&p->timers, &r->grace_timer, deadline_from_seconds(r->cfg.grace));
}

/* ---------- closers ---------- */

void signal_closer_add(P *p, closer *c) {
  atomic_fetch_add(&p->rt->nclosers, 1);
  c->prev = NULL;
  c->next = p->closers;
  if (p->closers) p->closers->prev = c;
  p->closers = c;
}

void signal_closer_del(P *p, closer *c) {
  if (!c->prev && p->closers != c) return; /* not linked */
  atomic_fetch_sub(&p->rt->nclosers, 1);
  if (c->prev) c->prev->next = c->next;
  else if (p->closers == c) p->closers = c->next;
  if (c->next) c->next->prev = c->prev;
  c->next = c->prev = NULL;
}

void signal_run_closers(P *p) {
  atomic_store(&p->shutdown_req, false);
  closer *c = p->closers;
  while (c) {
    closer *next = c->next;
    signal_closer_del(p, c); /* removed before it runs */
    c->fn(p->L, c);
    c = next;
  }
}
