/* sched.c — see sched.h: G lifecycle, park/ready, the scheduling loop,
** find_runnable, runtime construction. Signals and dumps are signal.c's,
** sysmon and statistics sysmon.c's, portable work and stealing steal.c's,
** the P hand-off handoff.c's. With signal.c (dumps) and preempt.c (hooks) this
** is the only runtime code that calls the Lua API: it owns the VMs'
** lifetimes and resumes goroutine threads. */
#include "sched.h"

#include <malloc.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "group.h"
#include "handoff.h"
#include "iowait.h"
#include "netpoll.h"
#include "preempt.h"
#include "prof.h"
#include "shdict.h"
#include "signal.h"
#include "steal.h"
#include "sysmon.h"
#include "workpool.h"

#define GFREE_MAX 4096
/* A P about to sleep whose inbox had a wake-up less than SPIN_RECENT_NS ago
** watches it for at most SPIN_NS first (Go's spinning Ms): a cross-VM
** exchange (shared channel, a portable goroutine's result) then costs no
** eventfd write on the waker's side and no epoll wake-up on this one. */
#define SPIN_NS 20000
#define SPIN_RECENT_NS 2000000

/* ---------- VM tags ---------- */

static vmtag **tagslot(lua_State *L) { return (vmtag **)lua_getextraspace(L); }

_Static_assert(LUA_EXTRASPACE == sizeof(void *), "vm_p (sched.h) reads the tag below L");

G *vm_g(lua_State *L) {
  vmtag *t = *tagslot(L);
  return t->kind == TAG_G ? (G *)t : NULL;
}

/* ---------- G status ---------- */

const char *sched_gstatus_name(gstatus s) {
  static const char *n[] = {"idle", "runnable", "running", "waiting", "dead"};
  return (unsigned)s < 5 ? n[s] : "?";
}

/* g_cas_status — Go: casgstatus. Aborts on an illegal transition. */
static void g_cas_status(G *g, gstatus from, gstatus to) {
  if (g->status != from) {
    char buf[128];
    snprintf(buf, sizeof buf, "bad g status transition %s -> %s (is %s)",
             sched_gstatus_name(from), sched_gstatus_name(to),
             sched_gstatus_name(g->status));
    rt_throw(buf);
  }
  g->status = to;
}

/* ---------- progress accounting ---------- */

void sched_progress_add(rt *r, int64_t d) { atomic_fetch_add(&r->n_progress, d); }

void sched_main_done(rt *r) { atomic_store(&r->main_done, true); }

/* progress_add — a change for one of p's own Gs (sched.h, the token) */
static inline void progress_add(P *p, int64_t d) {
  if (GLR_LIKELY(p->ptoken)) p->plocal += d;
  else atomic_fetch_add(&p->rt->n_progress, d);
}

/* progress_hold — p runs its loop: take the token (n_progress >= 1) */
static void progress_hold(P *p) {
  if (p->ptoken) return;
  atomic_fetch_add(&p->rt->n_progress, 1);
  p->ptoken = true;
}

/* progress_release — before p may sleep: the batch in, the token out */
static void progress_release(P *p) {
  if (!p->ptoken) return;
  p->ptoken = false;
  atomic_fetch_add(&p->rt->n_progress, p->plocal - 1);
  p->plocal = 0;
}

/* ---------- G lifecycle ---------- */

static bool g_set_ready(P *p, G *g);

static void g_sleep_fire(timer *t, void *arg) {
  (void)t;
  G *g = arg;
  selstate *sel = g->cold->sel;
  if (sel) {
    sel->done = true;
    sel->fired = -1;
  }
  g->wake = WAKE_TIMEOUT;
  /* before runnext and the ring (runq.h): a ticker is late by one slice,
  ** not by every G a poll just woke; timers due together keep their order */
  P *p = g->tag.p;
  if (g_set_ready(p, g)) runq_put_timed(&p->q, g);
}

gcold *gcold_new(G *g) {
  g->cold = x_calloc(1, sizeof *g->cold);
  timer_init(&g->cold->sleept, g_sleep_fire, g);
  return g->cold;
}

/* g_free — the record and its cold part (the thread is the VM's) */
static void g_free(G *g) {
  free(g->cold);
  free(g);
}

G *g_new(P *p) {
  G *g = p->gfree;
  if (g) {
    p->gfree = g->link;
    p->ngfree--;
    g->link = NULL;
    g->direct = 0; /* the starter sets it before sched_start */
    atomic_store(&g->parktoken, PT_NONE);
    return g;
  }
  g = x_calloc(1, sizeof *g);
  g->tag.kind = TAG_G;
  g->tag.p = p;
  /* the thread and its registry slot are the scheduler's own memory, made
  ** on the VM's main thread, where nothing protects a memory error: never
  ** refused (memlimit.h), even when a goroutine's go() asks for them
  ** (GOLUA_ALLOCFAIL found the panic: lua_newthread refused past the limit) */
  G *curg = p->curg;
  p->curg = NULL;
  g->L = lua_newthread(p->L);
  g->ref = luaL_ref(p->L, LUA_REGISTRYINDEX);
  p->curg = curg;
  *tagslot(g->L) = &g->tag;
  lua_sethook(g->L, NULL, 0, 0);
  g->status = G_IDLE; /* a new record starts idle: not a transition */
  p->st.created++;
  return g;
}

void sched_start(P *p, G *g) {
  g->id = atomic_fetch_add(&p->rt->next_goid, 1);
  g->escaped = false;
  g->chaindepth = 0;
  g->yieldkind = Y_NONE;
  g->wake = WAKE_NONE;
  if (g->cold) g->cold->sel = NULL;
  g->grp = NULL;
  g->waitkind = WK_NONE;
  atomic_store_explicit(&g->blockfd, -1, memory_order_relaxed); /* no one blocks on it yet */
  if (p->curg && p->curg->grp) group_join(p->curg->grp, g); /* joins its creator's */
  g->allprev = NULL;
  g->allnext = p->allg;
  if (p->allg) p->allg->allprev = g;
  p->allg = g;
  p->ngoroutines++;
  p->st.spawned++;
  progress_add(p, 1);
  g_cas_status(g, G_IDLE, G_RUNNABLE);
  runq_put(&p->q, g, true);
}

static void g_exit(P *p, G *g, bool reusable) {
  g_cas_status(g, G_RUNNING, G_DEAD);
  if (g->allprev) g->allprev->allnext = g->allnext;
  else p->allg = g->allnext;
  if (g->allnext) g->allnext->allprev = g->allprev;
  p->ngoroutines--;
  if (g->cold) timer_disarm(&p->timers, &g->cold->sleept);
  group_leave(g);
  progress_add(p, -1);
  /* a failed G's thread keeps what its end left (gohandle.c: a goroutine's
  ** error, which its handle reads); it is never reused */
  if (reusable) lua_settop(g->L, 0);
  if (reusable && !g->escaped && p->ngfree < GFREE_MAX &&
      lua_status(g->L) == LUA_OK) {
    g->gen++;
    g_cas_status(g, G_DEAD, G_IDLE);
    g->link = p->gfree;
    p->gfree = g;
    p->ngfree++;
    return;
  }
  /* identity escaped (or thread unusable): let the GC have the thread; it
  ** must stop pointing at this record */
  *tagslot(g->L) = &p->tag;
  luaL_unref(p->L, LUA_REGISTRYINDEX, g->ref);
  g_free(g);
}

/* ---------- ready / park ---------- */

/* g_set_ready — WAITING -> RUNNABLE; false when g is parked on its M
** (park_on_m): that M, woken here, runs it, and no queue takes it */
static bool g_set_ready(P *p, G *g) {
  g_cas_status(g, G_WAITING, G_RUNNABLE);
  if (g->parked_sync) {
    g->parked_sync = false;
    progress_add(p, 1);
  }
  if (g->cold && timer_armed(&g->cold->sleept)) timer_disarm(&p->timers, &g->cold->sleept);
  if (!g->onm) return true;
  handoff_wake_parked(g->onm);
  return false;
}

void sched_ready(P *p, G *g, bool next) {
  if (g_set_ready(p, g)) runq_put(&p->q, g, next);
}

void sched_ready_remote(G *g) {
  P *p = g->tag.p;
  pthread_mutex_lock(&p->inbox_lock);
  g->link = NULL;
  if (p->inbox_tail) p->inbox_tail->link = g;
  else p->inbox_head = g;
  p->inbox_tail = g;
  atomic_fetch_add(&p->inbox_n, 1);
  pthread_mutex_unlock(&p->inbox_lock);
  if (atomic_load(&p->sleeping)) netpoll_break(p);
}

static void inbox_drain(P *p) {
  if (atomic_load(&p->inbox_n) == 0) return;
  pthread_mutex_lock(&p->inbox_lock);
  G *g = p->inbox_head;
  p->inbox_head = p->inbox_tail = NULL;
  atomic_store(&p->inbox_n, 0);
  pthread_mutex_unlock(&p->inbox_lock);
  if (g) p->inbox_at = mono_now();
  while (g) {
    G *next = g->link;
    g->link = NULL;
    sched_ready(p, g, false);
    g = next;
  }
}

bool sched_can_park(lua_State *L) {
  P *p = vm_p(L);
  G *g = p->curg;
  if (!g || !lua_isyieldable(L)) return false;
  if (L == g->L) return true;
  int d = g->chaindepth;
  if (d <= 0 || d > 256) return false;
  return (g->cold->chainok[(d - 1) / 64] >> ((d - 1) % 64)) & 1;
}

bool sched_in_finalizer(lua_State *L) {
  lua_Debug ar;
  for (int level = 0; lua_getstack(L, level, &ar); level++) {
    if (lua_getinfo(L, "n", &ar) && ar.namewhat && ar.name &&
        strcmp(ar.namewhat, "metamethod") == 0 && strcmp(ar.name, "__gc") == 0)
      return true;
  }
  return false;
}

bool sched_can_block(lua_State *L) {
  P *p = vm_p(L);
  return p->curg && sched_current_p() == p && !sched_in_finalizer(L);
}

bool sched_can_wait(lua_State *L) { return sched_can_park(L) || sched_can_block(L); }

void sched_chain_push(G *g, bool ok) {
  int d = g->chaindepth++;
  if (d >= 256) return;
  uint64_t bit = UINT64_C(1) << (d % 64);
  uint64_t *w = &gcold_of(g)->chainok[d / 64];
  if (ok) *w |= bit;
  else *w &= ~bit;
}

void sched_chain_pop(G *g) {
  if (g->chaindepth <= 0) rt_throw("coroutine chain underflow");
  g->chaindepth--;
}

static void after_park(P *p, G *g) {
  g_cas_status(g, G_RUNNING, G_WAITING);
  if (g->parkkind == PARK_SYNC) {
    g->parked_sync = true;
    progress_add(p, -1);
  }
  unlockf u = g->unlock;
  g->unlock = NULL;
  if (u && !u(g, g->unlockarg)) sched_ready(p, g, true);
  else if (group_is_cancelled(g->grp)) group_wake(p, g); /* cancelled before it parked */
}

/* park_on_m — sched_park where L cannot yield (a table.sort comparator,
** a gsub callback, a metamethod called from C): the G parks on this M.
** The commit is after_park's, on this stack; if the G is still waiting,
** the M hands the P to another M and sleeps until the waker (the P's
** holder, in sched_ready) posts it, takes the P back and runs the
** continuation itself, as lua_resume would have (runtime/HACKING.md,
** "Parking on the M") */
static int park_on_m(lua_State *L, P *p, G *g, intptr_t ctx,
                     int (*k)(lua_State *, int, intptr_t)) {
  M *m = handoff_current_m();
  handoff_wakefd(); /* before the hand-off: wakers only read it */
  atomic_store(&m->onm_woken, false);
  g->yieldkind = Y_NONE;
  g->onm = m;
  after_park(p, g); /* may ready it at once (unlock refused, cancelled) */
  if (g->status == G_WAITING) {
    progress_release(p); /* the P may sit unused meanwhile: count exactly */
    handoff_park(p, g->waitreason);
    progress_hold(p);
  }
  g->onm = NULL;
  g_cas_status(g, G_RUNNABLE, G_RUNNING);
  g->waitkind = WK_NONE;
  if (atomic_load_explicit(&p->interrupt_req, memory_order_relaxed))
    pthread_kill(pthread_self(), SIGURG); /* as execute: a SIGINT found no Lua running */
  return k(L, LUA_YIELD, ctx);
}

int sched_park(lua_State *L, unlockf unlock, void *arg, const char *reason,
               int kind, intptr_t ctx, int (*k)(lua_State *, int, intptr_t)) {
  P *p = vm_p(L);
  G *g = p->curg;
  if (!g) rt_throw("park outside a goroutine");
  g->waitsince = atomic_load_explicit(&p->lastpoll, memory_order_relaxed);
  g->yieldkind = Y_PARK;
  g->unlock = unlock;
  g->unlockarg = arg;
  g->waitreason = reason;
  g->parkkind = kind;
  g->wake = WAKE_NONE;
  g->parkL = L;
  if (!sched_can_park(L)) return park_on_m(L, p, g, ctx, k);
  return lua_yieldk(L, 0, ctx, k);
}

void sched_park_on(lua_State *L, int kind, void *obj) {
  G *g = vm_p(L)->curg;
  g->waitkind = kind;
  g->waitobj = obj;
}

bool sched_cancelled(lua_State *L) {
  G *g = vm_p(L)->curg;
  return g && group_is_cancelled(g->grp);
}

int sched_raise_cancelled(lua_State *L) {
  G *g = vm_p(L)->curg;
  const char *why = g && g->grp ? g->grp->reason : NULL;
  if (why) lua_pushfstring(L, "cancelled: %s", why);
  else lua_pushliteral(L, "cancelled");
  return lua_error(L); /* the bare text: no position, as the contract's errors */
}

void sched_check_cancel(lua_State *L) {
  if (sched_cancelled(L)) sched_raise_cancelled(L);
}

void sched_unref(P *p, int ref) { luaL_unref(p->L, LUA_REGISTRYINDEX, ref); }

int sched_gosched(lua_State *L, intptr_t ctx, int (*k)(lua_State *, int, intptr_t)) {
  G *g = vm_p(L)->curg;
  if (!g) rt_throw("gosched outside a goroutine");
  g->yieldkind = Y_GOSCHED;
  return lua_yieldk(L, 0, ctx, k);
}

void sched_arm_gtimer(P *p, G *g, int64_t when) {
  timer_arm(&p->timers, &gcold_of(g)->sleept, when);
}

/* ---------- execute ---------- */

/* execute — Go: execute + the return half of gopark/goexit. */
static void execute(P *p, G *g) {
  g_cas_status(g, G_RUNNABLE, G_RUNNING);
  p->curg = g;
  g->waitkind = WK_NONE;
  int nres = 0;
  int nargs = g->nargs;
  g->nargs = 0;
  /* only this thread writes these; its own SIGURG handler reads them (signal
  ** fences order them for it) and sysmon samples them coarsely: relaxed */
  uint64_t seq = atomic_load_explicit(&p->exec_seq, memory_order_relaxed);
  atomic_store_explicit(&p->exec_seq, seq + 1, memory_order_relaxed);
  atomic_store_explicit(&p->curL, g->L, memory_order_relaxed);
  atomic_signal_fence(memory_order_seq_cst);
  atomic_store_explicit(&p->running, true, memory_order_relaxed);
  if (atomic_load_explicit(&p->interrupt_req, memory_order_relaxed))
    pthread_kill(pthread_self(), SIGURG); /* its SIGURG found nothing running */
  int st = lua_resume(g->L, p->L, nargs, &nres);
  atomic_store_explicit(&p->running, false, memory_order_relaxed);
  atomic_signal_fence(memory_order_seq_cst); /* from here SIGURG is ignored */
  preempt_clear(p);
  prof_late(p, g->L);
  atomic_store_explicit(&p->curL, NULL, memory_order_relaxed);
  p->curg = NULL;
  if (st == LUA_YIELD) {
    if (nres) lua_pop(g->L, nres); /* a park yields none */
    int kind = g->yieldkind;
    g->yieldkind = Y_NONE;
    if (kind == Y_PARK) {
      after_park(p, g);
    } else { /* go.yield, preemption, or a raw lua_yield from a C module */
      g_cas_status(g, G_RUNNING, G_RUNNABLE);
      runq_put(&p->q, g, false);
    }
    return;
  }
  /* before g_end, which may drop the stack that keeps those conns alive */
  if (GLR_UNLIKELY(g->oplocks != NULL)) p->rt->g_oplocks(p, g);
  if (g->direct) {
    st = p->rt->g_end(p, g, st);
  } else if (st != LUA_OK) { /* an error escaped the entry's pcall: out of memory */
    const char *msg = lua_isstring(g->L, -1) ? lua_tostring(g->L, -1) : "(error object)";
    const char *name = p->rt->cfg.progname ? p->rt->cfg.progname : "goluarun";
    if (g->ismain) fprintf(stderr, "%s: %s\n", name, msg); /* as gohandle's report */
    else fprintf(stderr, "goroutine %llu: %s\n", (unsigned long long)g->id, msg);
    if (g->ismain) rt_stop(p->rt, STOP_EXIT, 1, false);
  }
  g_exit(p, g, st == LUA_OK);
}

/* ---------- stop ---------- */

void rt_stop(rt *r, int reason, int code, bool close_vms) {
  int64_t none = 0; /* when, before sysmon can see the stop (stop_round) */
  atomic_compare_exchange_strong(&r->stop_when, &none, mono_now());
  int expect = STOP_NONE;
  if (!atomic_compare_exchange_strong(&r->stopping, &expect, reason)) return;
  atomic_store(&r->exit_code, code);
  atomic_store(&r->close_vms, close_vms);
  if (reason == STOP_DEADLOCK) {
    pthread_mutex_lock(&r->dump_lock);
    fprintf(stderr, "fatal error: all goroutines are asleep - deadlock!\n\n");
    pthread_mutex_unlock(&r->dump_lock);
  }
  for (int i = 0; i < r->nprocs; i++) netpoll_break(r->ps[i]);
  handoff_stop(r);
  sysmon_kick(r);
}

/* check_quiescent — nothing can ever run again: end or deadlock. */
static bool check_quiescent(rt *r) {
  if (atomic_load(&r->n_progress) != 0) return false;
  if (atomic_load(&r->main_done) || atomic_load(&r->signal_when) != 0) /* shutting down */
    rt_stop(r, STOP_EXIT, 0, true);
  else
    rt_stop(r, STOP_DEADLOCK, 2, false);
  return true;
}

/* ---------- memory ---------- */

/* an idle P collects its VM once it passes 1.5 times its size after the
** last full GC plus IDLE_GC_SLACK_KB, or, if it is that big and ran
** goroutines since, once IDLE_GC_EVERY_NS (and 20 times the last
** collection's length) passed: what a finished request left may have been
** live at the last GC, and freeing it allocates nothing that would show. A collection that freed TRIM_KB is given back to the system
** (malloc_trim: glibc keeps freed heap pages otherwise) */
#define IDLE_GC_SLACK_KB (16 * 1024)
#define IDLE_GC_EVERY_NS NS_PER_SEC
#define TRIM_KB (16 * 1024)

static int64_t vm_kb(P *p) { return lua_gc(p->L, LUA_GCCOUNT); }

/* sched_collect — a full GC of p's VM, on its M outside any goroutine
** (finalizers may make goroutines runnable: the caller's round goes on) */
static void sched_collect(P *p) {
  atomic_store_explicit(&p->gc_req, false, memory_order_relaxed);
  int64_t before = vm_kb(p), t0 = mono_now();
  lua_gc(p->L, LUA_GCCOLLECT);
  int64_t after = vm_kb(p), t1 = mono_now();
  memlimit_flush(&p->mem);
  memlimit_drain(&p->mem); /* the freed small blocks too */
  memlimit_collected();
  p->gc_after_kb = after;
  p->gc_exec_seq = atomic_load_explicit(&p->exec_seq, memory_order_relaxed);
  p->gc_idle_kb = after + after / 2 + IDLE_GC_SLACK_KB;
  int64_t wait = 20 * (t1 - t0);
  p->gc_idle_at = t1 + (wait > IDLE_GC_EVERY_NS ? wait : IDLE_GC_EVERY_NS);
  if (before - after >= TRIM_KB) malloc_trim(0);
}

/* idle_collect — before sleeping: a VM that grew since its last full GC
** is collected, so the memory of finished work goes back to the system
** even when nothing allocates again to drive Lua's own collector. A VM
** that is only stale too early sets p->gc_wake_at: the P's sleep ends
** then, to look again (block_in_netpoll) */
static bool idle_collect(P *p) {
  p->gc_wake_at = DEADLINE_NONE;
  if (!lua_gc(p->L, LUA_GCISRUNNING)) return false;
  int64_t kb = vm_kb(p);
  bool stale = kb >= IDLE_GC_SLACK_KB &&
               atomic_load_explicit(&p->exec_seq, memory_order_relaxed) != p->gc_exec_seq;
  if (kb <= p->gc_idle_kb && !stale) return false;
  if (kb <= p->gc_idle_kb && mono_now() < p->gc_idle_at) {
    p->gc_wake_at = p->gc_idle_at;
    return false;
  }
  sched_collect(p);
  return true;
}

/* request_gc — memlimit's hook (any M): every P collects at its next round */
static void request_gc(void *ud) {
  rt *r = ud;
  for (int i = 0; i < r->nprocs; i++) {
    P *p = r->ps[i]; /* NULL while rt_new is still creating it */
    if (!p) continue;
    atomic_store(&p->gc_req, true);
    if (atomic_load(&p->sleeping)) netpoll_break(p);
  }
}

/* ---------- the scheduling loop ---------- */

void sched_publish(P *p) {
  atomic_store(&p->pub.goroutines, p->ngoroutines);
  atomic_store(&p->pub.runq, (int)runq_len(&p->q));
  atomic_store(&p->pub.spawned, p->st.spawned);
  atomic_store(&p->pub.created, p->st.created);
  atomic_store(&p->pub.steals, p->st.steals);
  atomic_store(&p->pub.preemptions, p->st.preemptions);
  atomic_store(&p->pub.handoffs, p->st.handoffs);
  atomic_store(&p->pub.conns_opened, p->st.conns_opened);
  atomic_store(&p->pub.conns_closed, p->st.conns_closed);
  atomic_store(&p->pub.accepted, p->st.accepted);
  atomic_store(&p->pub.bytes_read, p->st.bytes_read);
  atomic_store(&p->pub.bytes_written, p->st.bytes_written);
  atomic_store(&p->pub.handshakes, p->st.handshakes);
  atomic_store(&p->pub.handshake_failures, p->st.handshake_failures);
  atomic_store(&p->pub.timers, (int)p->timers.len);
  /* the allocator's count, not lua_gc(LUA_GCCOUNT): no call into Lua at
  ** every sleep, and right inside a finalizer too */
  atomic_store(&p->pub.lua_bytes, memlimit_vm_bytes(&p->mem));
}

/* wake_pending — something block_in_netpoll must not sleep through */
static bool wake_pending(P *p) {
  rt *r = p->rt;
  return atomic_load(&p->inbox_n) || atomic_load(&r->stopping) ||
         atomic_load(&p->shutdown_req) || atomic_load(&p->dump_req) ||
         atomic_load(&p->sig_pend) || atomic_load(&p->nhwaiters) ||
         atomic_load(&p->pinq.n) || atomic_load(&p->gc_req) || steal_pending(r);
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* spin_for_wake — true if a wake-up came within the spin (see SPIN_NS);
** `sleeping` stays false meanwhile, so wakers skip the eventfd. Bounded by
** the next timer; fd events wait for the spin's end (at most SPIN_NS). */
static bool spin_for_wake(P *p, int64_t timeout) {
  if (timeout == 0 || p->inbox_at == 0 || p->rt->nprocs < 2) return false;
  int64_t now = mono_now();
  if (now - p->inbox_at > SPIN_RECENT_NS) return false;
  int64_t end = now + (timeout > 0 && timeout < SPIN_NS ? timeout : SPIN_NS);
  for (unsigned i = 1;; i++) {
    if (wake_pending(p)) return true;
    /* after a short busy wait, give the CPU away between looks: on a
    ** loaded machine the waker may be waiting for this very CPU */
    if (i < 64) cpu_relax();
    else sched_yield(); /* may give the CPU away for long: look at the clock */
    if ((i >= 64 || (i & 15) == 0) && mono_now() >= end) return false;
  }
}

static void block_in_netpoll(P *p) {
  rt *r = p->rt;
  int64_t timeout = -1;
  int64_t next = timer_next(&p->timers);
  if (p->gc_wake_at != DEADLINE_NONE && (next == DEADLINE_NONE || p->gc_wake_at < next))
    next = p->gc_wake_at; /* idle_collect looks again then */
  if (next != DEADLINE_NONE) {
    int64_t now = mono_now();
    timeout = next > now ? next - now : 0;
  }
  sched_publish(p);
  if (spin_for_wake(p, timeout)) return;
  atomic_store(&p->sleeping, true);
  if (!wake_pending(p)) {
    atomic_fetch_add(&r->npidle, 1);
    netpoll(p, timeout);
    atomic_fetch_sub(&r->npidle, 1);
    sysmon_wake(r); /* this P may now run a goroutine for long */
  }
  atomic_store(&p->sleeping, false);
}

/* forced_poll — the inbox and a non-blocking poll between two slices, so
** busy goroutines never starve readers (Go: schedtick % 61 and sysmon's
** netpoll). As Go, no poll when no goroutine waits on an fd (an event then
** only leaves READY behind, consumed by the next wait anyway). */
static void forced_poll(P *p, int64_t now, bool tick61) {
  atomic_store_explicit(&p->poll_due, false, memory_order_relaxed);
  inbox_drain(p);
  if (atomic_load(&p->npollwait) > 0 || netpoll_has_mock(p)) {
    p->wake_next = true;
    netpoll(p, 0);
    p->wake_next = false;
  } else {
    atomic_store_explicit(&p->lastpoll, now, memory_order_relaxed);
  }
  if (tick61) sched_publish(p);
}

/* find_runnable — Go: findRunnable. NULL once the runtime stops. */
static G *find_runnable(P *p) {
  rt *r = p->rt;
  for (;;) {
    progress_hold(p);
    if (atomic_load(&r->stopping)) return NULL;
    if (atomic_load(&p->nhwaiters)) return NULL; /* sched_loop hands p over */
    if (atomic_load(&r->signal_pending)) signal_handle(p);
    if (atomic_load(&p->shutdown_req)) signal_run_closers(p);
    if (atomic_load(&p->dump_req)) signal_dump_on_request(p);
    if (atomic_load_explicit(&p->sig_pend, memory_order_relaxed)) signal_deliver(p);
    if (atomic_load_explicit(&p->gc_req, memory_order_relaxed)) sched_collect(p);
    /* the clock only when timers are pending, every 61st round, or when
    ** sysmon saw this P go FORCED_POLL_NS without polling */
    bool tick61 = ++p->schedtick % 61 == 0;
    bool due = atomic_load_explicit(&p->poll_due, memory_order_relaxed);
    int64_t last = atomic_load_explicit(&p->lastpoll, memory_order_relaxed);
    int64_t now = p->timers.len || tick61 || due ? mono_now() : last;
    if (p->timers.len) timer_run_due(&p->timers, now);
    if (atomic_load(&r->stopping)) return NULL; /* a timer stopped it (grace) */
    atomic_store_explicit(&p->next_timer_pub, timer_next(&p->timers), memory_order_relaxed);
    if (tick61 || due || now - last > FORCED_POLL_NS) forced_poll(p, now, tick61);
    /* pinned work (go.spawn_on: the debug endpoint's goroutine dumps, per-P
    ** acceptors) is not starved by CPU-bound goroutines (Go: the global
    ** queue every 61st tick) */
    if (tick61 && atomic_load(&p->pinq.n) > 0) steal_take(p);
    G *g = runq_get(&p->q);
    if (g) return g;
    inbox_drain(p);
    if ((g = runq_get(&p->q)) != NULL) return g;
    if (steal_take(p)) continue;
    if (netpoll_has_mock(p)) {
      netpoll(p, 0);
      continue;
    }
    progress_release(p); /* n_progress exact for this P from here to its sleep */
    if (check_quiescent(r)) continue;
    if (idle_collect(p)) continue;
    block_in_netpoll(p);
  }
}

static _Thread_local P *current_p;

P *sched_current_p(void) { return current_p; }

void sched_set_current_p(P *p) { current_p = p; }

bool sched_loop(P *p) {
  rt *r = p->rt;
  for (;;) {
    G *g;
    while ((g = find_runnable(p)) != NULL) execute(p, g);
    if (atomic_load(&r->stopping)) break;
    if (!handoff_give(p)) return false; /* a returning M took p: go idle */
  }
  if (atomic_load(&r->stopping) == STOP_DEADLOCK) {
    pthread_mutex_lock(&r->dump_lock);
    signal_dump_goroutines(p);
    pthread_mutex_unlock(&r->dump_lock);
  }
  handoff_release(p);
  return true;
}

/* ---------- runtime construction ---------- */

static P *p_new(rt *r, int id) {
  P *p = x_calloc(1, sizeof *p);
  p->tag.kind = TAG_P;
  p->tag.p = p;
  p->id = id;
  p->rt = r;
  runq_init(&p->q);
  pgq_init(&p->pq);
  pgq_init(&p->pinq);
  p->rnd = (uint32_t)(id * 2654435761u + 1);
  chaos_rng_init(&p->chaos, r->cfg.chaos_seed, (uint64_t)id);
  timerheap_init(&p->timers);
  pthread_mutex_init(&p->inbox_lock, NULL);
  prof_p_init(p);
  if (netpoll_init(p) < 0) rt_throw("netpoll: cannot create epoll/eventfd");
  p->L = luaL_newstate();
  if (!p->L) rt_throw("cannot create Lua state");
  /* from now on the VM's memory is counted (its first bytes adopted) */
  /* past GOLUA_MEMLIMIT (or as GOLUA_ALLOCFAIL says) a goroutine's growth fails */
  memlimit_vm_init(&p->mem, &p->curg, id);
  lua_setallocf(p->L, memlimit_alloc, &p->mem);
  memlimit_adopt(&p->mem, vm_kb(p) * 1024 + lua_gc(p->L, LUA_GCCOUNTB));
  *tagslot(p->L) = &p->tag;
  r->open_vm(p->L, p, r->open_vm_ud);
  p->gc_after_kb = vm_kb(p);
  p->gc_idle_kb = p->gc_after_kb * 3 / 2 + IDLE_GC_SLACK_KB;
  atomic_store_explicit(&p->lastpoll, mono_now(), memory_order_relaxed);
  return p;
}

rt *rt_new(const rt_config *cfg, open_vm_fn open_vm, void *ud) {
  rt *r = x_calloc(1, sizeof *r);
  r->cfg = *cfg;
  int nprocs = r->nprocs = config_nprocs(cfg);
  r->open_vm = open_vm;
  r->open_vm_ud = ud;
  atomic_store(&r->next_goid, 1);
  pthread_mutex_init(&r->dump_lock, NULL);
  sysmon_init(r);
  prof_init(r);
  pgq_init(&r->global);
  r->start_ns = mono_now();
  memlimit_setup(cfg->memlimit, request_gc, r);
  memlimit_failsetup(cfg->allocfail_nth, cfg->allocfail_seed, cfg->allocfail_ppm);
  r->ps = x_calloc((size_t)nprocs, sizeof *r->ps);
  for (int i = 0; i < nprocs; i++) r->ps[i] = p_new(r, i);
  handoff_init(r);
  return r;
}

int rt_run(rt *r) {
  handoff_start(r);
  sysmon_start(r);
  /* after the Ms are started: the sampler reads their thread ids */
  if (r->prof_run_hz && prof_start(r, r->prof_run_hz) != 0)
    fprintf(stderr, "goluarun: cannot start the profiler\n");
  sched_set_current_p(r->ps[0]);
  sched_loop(r->ps[0]);
  prof_halt(r); /* no more SIGURGs to Ms that are ending */
  handoff_wait_ms(r);
  atomic_store(&r->run_done, true); /* sysmon's stop_watch may stand down */
  rt_stop(r, STOP_EXIT, 0, false); /* make sure sysmon sees the stop */
  sysmon_kick(r);
  sysmon_join(r);
  return atomic_load(&r->exit_code);
}

static void p_free(P *p, bool close_vm) {
  /* timers may live in Lua memory: forget them before the VM goes */
  timerheap_free(&p->timers);
  if (close_vm && p->L) {
    lua_close(p->L);
    memlimit_drain(&p->mem); /* the blocks the close freed */
  }
  G *g = p->gfree;
  while (g) {
    G *n = g->link;
    g_free(g);
    g = n;
  }
  if (close_vm) {
    while (p->allg) {
      G *n = p->allg->allnext;
      g_free(p->allg);
      p->allg = n;
    }
  }
  netpoll_free(p);
  pgq_free(&p->pq);
  pgq_free(&p->pinq);
  runq_free(&p->q);
  pthread_mutex_destroy(&p->inbox_lock);
  prof_p_free(p);
  free(p->scratch);
  free(p->spare);
  free(p);
}

/* abandoned_rt — a runtime rt_free had to keep (below). It cannot be a
** field of anything the caller still holds: the caller is about to return
** from main and drop its pointer, so this is the root that keeps the
** runtime reachable (for the threads still in it, and for leak checkers)
** until the process exits. Written only by rt_free. */
static rt *abandoned_rt;

void rt_free(rt *r) {
  bool close_vms = atomic_load(&r->close_vms);
  signal_forget(r);
  bool blocked = handoff_blocked(r);
  if (blocked || workpool_outstanding() > 0) {
    /* a worker's job or an M in a blocking call may still touch the
    ** runtime (wake a goroutine, wait for its P): keep it, reachable, for
    ** the few instants before the process exits. Close the VMs if asked
    ** (finalizers run; jobs see their anchors go), unless a blocked C call
    ** may still use a VM's memory */
    for (int i = 0; i < r->nprocs && close_vms && !blocked; i++) {
      timerheap_free(&r->ps[i]->timers);
      lua_close(r->ps[i]->L);
      memlimit_drain(&r->ps[i]->mem);
      r->ps[i]->L = NULL;
    }
    abandoned_rt = r;
    return;
  }
  handoff_free(r);
  for (int i = 0; i < r->nprocs; i++) p_free(r->ps[i], close_vms);
  if (close_vms) shdict_registry_free(); /* no VM can reach a dict now */
  free(r->ps);
  pthread_mutex_destroy(&r->dump_lock);
  sysmon_free(r);
  prof_free(r);
  free(r);
}

void *sched_spare_take(void) {
  P *p = current_p;
  void *b = p ? p->spare : NULL;
  if (!b) return malloc(SCHED_SPARE);
  p->spare = NULL;
  return b;
}

void sched_spare_put(void *b) {
  P *p = current_p;
  if (p && !p->spare) p->spare = b;
  else free(b);
}

char *sched_scratch(P *p, size_t n) {
  if (p->scratch_len < n) {
    free(p->scratch);
    p->scratch = x_malloc(n);
    p->scratch_len = n;
  }
  return p->scratch;
}
