/* sysmon.c — see sysmon.h. */
#include "sysmon.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "handoff.h"
#include "netpoll.h"
#include "preempt.h"
#include "signal.h"

/* ---------- statistics ---------- */

static void proc_snapshot(P *p, proc_stats *s) {
  s->goroutines = atomic_load(&p->pub.goroutines);
  s->runq = atomic_load(&p->pub.runq);
  s->npollwait = atomic_load(&p->npollwait);
  s->portable = atomic_load(&p->pq.n);
  s->st.spawned = atomic_load(&p->pub.spawned);
  s->st.created = atomic_load(&p->pub.created);
  s->st.steals = atomic_load(&p->pub.steals);
  s->st.preemptions = atomic_load(&p->pub.preemptions);
  s->st.handoffs = atomic_load(&p->pub.handoffs);
  s->st.conns_opened = atomic_load(&p->pub.conns_opened);
  s->st.conns_closed = atomic_load(&p->pub.conns_closed);
  s->st.accepted = atomic_load(&p->pub.accepted);
  s->st.bytes_read = atomic_load(&p->pub.bytes_read);
  s->st.bytes_written = atomic_load(&p->pub.bytes_written);
  s->st.handshakes = atomic_load(&p->pub.handshakes);
  s->st.handshake_failures = atomic_load(&p->pub.handshake_failures);
  s->timers = atomic_load(&p->pub.timers);
  s->lua_bytes = atomic_load(&p->pub.lua_bytes);
}

static void proc_add(proc_stats *t, const proc_stats *s) {
  t->goroutines += s->goroutines;
  t->runq += s->runq;
  t->npollwait += s->npollwait;
  t->portable += s->portable;
  t->st.spawned += s->st.spawned;
  t->st.created += s->st.created;
  t->st.steals += s->st.steals;
  t->st.preemptions += s->st.preemptions;
  t->st.handoffs += s->st.handoffs;
  t->st.conns_opened += s->st.conns_opened;
  t->st.conns_closed += s->st.conns_closed;
  t->st.accepted += s->st.accepted;
  t->st.bytes_read += s->st.bytes_read;
  t->st.bytes_written += s->st.bytes_written;
  t->st.handshakes += s->st.handshakes;
  t->st.handshake_failures += s->st.handshake_failures;
  t->timers += s->timers;
  t->lua_bytes += s->lua_bytes;
}

void sysmon_stats(rt *r, rt_stats *s, proc_stats *per_p) {
  memset(s, 0, sizeof *s);
  s->nprocs = r->nprocs;
  for (int i = 0; i < r->nprocs; i++) {
    proc_stats ps;
    proc_snapshot(r->ps[i], &ps);
    proc_add(&s->total, &ps);
    if (per_p) per_p[i] = ps;
  }
  s->idleprocs = atomic_load(&r->npidle);
  pthread_mutex_lock(&r->mlock);
  s->threads = r->nm;
  pthread_mutex_unlock(&r->mlock);
  s->progress = atomic_load(&r->n_progress);
}

/* ---------- schedtrace ---------- */

/* schedtrace — Go's GODEBUG=schedtrace: one line per period, from the
** published per-P figures (sysmon never touches a VM) */
static void schedtrace(rt *r, int64_t now) {
  char q[512];
  size_t off = 0;
  for (int i = 0; i < r->nprocs && off < sizeof q - 16; i++) {
    off += (size_t)snprintf(q + off, sizeof q - off, "%s%d", i ? " " : "",
                            atomic_load(&r->ps[i]->pub.runq));
  }
  rt_stats s;
  sysmon_stats(r, &s, NULL);
  pthread_mutex_lock(&r->dump_lock);
  fprintf(stderr,
          "SCHED %lldms: procs=%d idleprocs=%d threads=%d goroutines=%d "
          "progress=%lld runqueue=[%s] spawned=%llu created=%llu preemptions=%llu "
          "handoffs=%llu\n",
          (long long)((now - r->start_ns) / NS_PER_MS), s.nprocs, s.idleprocs,
          s.threads, s.total.goroutines, (long long)s.progress, q,
          (unsigned long long)s.total.st.spawned, (unsigned long long)s.total.st.created,
          (unsigned long long)s.total.st.preemptions,
          (unsigned long long)s.total.st.handoffs);
  pthread_mutex_unlock(&r->dump_lock);
}

/* ---------- the thread ---------- */

void sysmon_wake(rt *r) {
  if (!atomic_load(&r->sysmon_deep)) return; /* seq_cst: pairs with npidle */
  pthread_mutex_lock(&r->sysmon_lock);
  pthread_cond_broadcast(&r->sysmon_cond);
  pthread_mutex_unlock(&r->sysmon_lock);
}

void sysmon_kick(rt *r) {
  pthread_mutex_lock(&r->sysmon_lock);
  pthread_cond_broadcast(&r->sysmon_cond);
  pthread_mutex_unlock(&r->sysmon_lock);
}

/* poll_nudge — Go's sysmon netpoll: a running P that has not polled for
** FORCED_POLL_NS while a goroutine waits on an fd or a wake-up waits in its
** inbox is told to poll between its next two slices (a P reads its own
** clock only when it has timers, so it cannot tell by itself) */
static void poll_nudge(rt *r, int64_t now) {
  for (int i = 0; i < r->nprocs; i++) {
    P *p = r->ps[i];
    if (!atomic_load(&p->running)) continue;
    if (!atomic_load(&p->npollwait) && !atomic_load(&p->inbox_n)) continue;
    if (now - atomic_load_explicit(&p->lastpoll, memory_order_relaxed) > FORCED_POLL_NS)
      atomic_store_explicit(&p->poll_due, true, memory_order_relaxed);
  }
}

#define STOP_ROUND_NS NS_PER_MS /* while stopping: SIGURG to Ps in Lua */

/* timespec_in — CLOCK_REALTIME time ns from now (condition waits) */
static struct timespec timespec_in(int64_t ns) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int64_t t = ts.tv_nsec + (ns > 0 ? ns : 0);
  ts.tv_sec += (time_t)(t / NS_PER_SEC);
  ts.tv_nsec = (long)(t % NS_PER_SEC);
  return ts;
}

/* grace_watch — the grace period of a SIGINT/SIGTERM is over and the P
** that took the signal has not ended it (or none could take it: every M
** stuck in a blocking call) */
static void grace_watch(rt *r, int64_t now) {
  int64_t end = signal_grace_end(r);
  if (end != DEADLINE_NONE && now >= end + SIGNAL_GRACE_SLACK_NS) signal_grace_expired(r);
}

/* stop_round — the runtime stops: every P still running Lua is asked to
** leave it (preempt_stop: the hook yields at the next instruction where it
** can), and if rt_run has not returned SIGNAL_EXIT_SLACK_NS after the stop
** (an M stuck in a C call, or in a loop that cannot yield), the process
** exits anyway with the stop's code: a stop is final */
static void stop_round(rt *r) {
  preempt_stop(r);
  int64_t limit = atomic_load(&r->stop_when) + SIGNAL_EXIT_SLACK_NS;
  int64_t now = mono_now();
  pthread_mutex_lock(&r->sysmon_lock);
  if (!atomic_load(&r->run_done) && now < limit) {
    struct timespec ts = timespec_in(STOP_ROUND_NS < limit - now ? STOP_ROUND_NS : limit - now);
    pthread_cond_timedwait(&r->sysmon_cond, &r->sysmon_lock, &ts);
  }
  bool done = atomic_load(&r->run_done);
  pthread_mutex_unlock(&r->sysmon_lock);
  if (done || mono_now() < limit) return;
  pthread_mutex_lock(&r->dump_lock);
  fprintf(stderr, "goluarun: exiting with threads still blocked in C calls\n");
  fflush(NULL);
  _exit(atomic_load(&r->exit_code));
}

static void *sysmon_main(void *arg) {
  rt *r = arg;
  sigset_t set;
  sigfillset(&set);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  unsigned delay = SYSMON_MIN_US;
  int idle_rounds = 0;
  int64_t next_trace = r->start_ns + (int64_t)r->cfg.schedtrace_ms * NS_PER_MS;
  while (!atomic_load(&r->run_done)) {
    if (atomic_load(&r->stopping)) {
      stop_round(r);
      continue;
    }
    if (r->cfg.schedtrace_ms && mono_now() >= next_trace) {
      schedtrace(r, mono_now());
      next_trace += (int64_t)r->cfg.schedtrace_ms * NS_PER_MS;
    }
    if (atomic_load(&r->npidle) == r->nprocs) {
      /* every P is blocked in netpoll: the Ps themselves detect deadlock
      ** before blocking, so there is nothing to watch; back off deeply */
      if (++idle_rounds > 20) {
        pthread_mutex_lock(&r->sysmon_lock);
        /* wake for the next trace line, else within 1 s */
        struct timespec ts =
            timespec_in(r->cfg.schedtrace_ms ? next_trace - mono_now() : NS_PER_SEC);
        atomic_store(&r->sysmon_deep, true);
        if (!atomic_load(&r->stopping) && atomic_load(&r->npidle) == r->nprocs)
          pthread_cond_timedwait(&r->sysmon_cond, &r->sysmon_lock, &ts);
        atomic_store(&r->sysmon_deep, false);
        pthread_mutex_unlock(&r->sysmon_lock);
        continue;
      }
    } else {
      idle_rounds = 0;
    }
    usleep(delay);
    int64_t now = mono_now();
    poll_nudge(r, now); /* before preempting: the slice it ends polls */
    bool busy = preempt_check(r, now);
    if (handoff_retake(r, now) > 0) { /* a P in a blocking call: stay close */
      busy = true;
      idle_rounds = 0;
    }
    handoff_starved(r, now); /* every M stuck with work waiting: exit 2 */
    grace_watch(r, now);
    unsigned cap = busy ? SYSMON_BUSY_MAX_US : SYSMON_MAX_US;
    delay = delay * 2 > cap ? cap : delay * 2;
    if (atomic_load(&r->n_progress) == 0 && atomic_load(&r->npidle) == r->nprocs)
      netpoll_break(r->ps[0]); /* let P0 run check_quiescent */
  }
  return NULL;
}

void sysmon_init(rt *r) {
  pthread_mutex_init(&r->sysmon_lock, NULL);
  pthread_cond_init(&r->sysmon_cond, NULL);
}

void sysmon_free(rt *r) {
  pthread_mutex_destroy(&r->sysmon_lock);
  pthread_cond_destroy(&r->sysmon_cond);
}

void sysmon_start(rt *r) {
  if (pthread_create(&r->sysmon, NULL, sysmon_main, r) != 0)
    rt_throw("cannot start sysmon");
  r->sysmon_started = true;
}

void sysmon_join(rt *r) { pthread_join(r->sysmon, NULL); }
