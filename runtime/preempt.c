/* preempt.c — see preempt.h. */
#include "preempt.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "prof.h"
#include "signal.h"

#define HOOKKEY "_HOOKKEY" /* the standard debug library's registry table */

/* The hooks of ours, told apart by their function (per-thread state that
** the signal handler can read): see preempt.h for when each is on. */
static void bare_hook(lua_State *L, lua_Debug *ar);  /* a request, hookless thread */
static void bare_after(lua_State *L, lua_Debug *ar); /* left on after its yield */
static void user_tmp(lua_State *L, lua_Debug *ar);   /* user's + our count bit */
static void user_after(lua_State *L, lua_Debug *ar); /* that, after its yield */

/* set_hook — lua_sethook outside the handler, which stays out meanwhile */
static void set_hook(P *p, lua_State *L, lua_Hook h, int mask, int count) {
  p->hook_busy = 1;
  atomic_signal_fence(memory_order_seq_cst);
  lua_sethook(L, h, mask, count);
  atomic_signal_fence(memory_order_seq_cst);
  p->hook_busy = 0;
}

/* can_yield — where the goroutine can park (else sysmon asks again) */
static bool can_yield(P *p, lua_State *L) {
  return p->curg && sched_can_park(L);
}

/* yield_now — the preemption. The thread keeps a count hook across the
** yield (the caller set it): Lua marks the frame of a hook that yielded
** (CIST_HOOKYIELD) and clears the mark only when it traces that frame
** again; a thread left hookless, or with call/return hooks only, would
** keep the mark and swallow the first line event of a later line hook. */
static void yield_now(P *p, lua_State *L) {
  p->curg->yieldkind = Y_PREEMPT;
  p->st.preemptions++;
  lua_yield(L, 0);
}

/* ---------- what a request carries ---------- */

/* A request (the SIGURG handler's, see ask) is one of: a profiler sample
** (p->sample_want), SIGINT's interrupt (p->interrupt_req), a preemption or
** a stop (p->preempt_want). The hook that delivers it takes the sample,
** then raises the interrupt, then says whether to yield. */

/* take_sample — the profiler asked for a sample (prof.h): take it here, at
** an instruction boundary on the P's own M */
static void take_sample(P *p, lua_State *L) {
  const char *c = atomic_exchange(&p->sample_want, NULL);
  if (c) prof_sample(p, L, c);
}

/* interrupt — SIGINT with nobody subscribed: "interrupted!" here, as
** lua's lstop; the caller has put the thread's hooks in order first */
static void interrupt(P *p, lua_State *L) {
  atomic_fetch_add(&p->rt->ninterrupts, 1);
  luaL_error(L, "interrupted!");
}

/* want_yield — a preemption (or stop) is asked and the goroutine can park
** here; consumed only when it can (else sysmon asks again) */
static bool want_yield(P *p, lua_State *L) {
  if (!atomic_load(&p->preempt_want) || !can_yield(p, L)) return false;
  atomic_store(&p->preempt_want, false);
  return true;
}

/* ---------- hookless threads: our own count hook ---------- */

static void bare_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  P *p = vm_p(L);
  p->hooked_L = NULL;
  take_sample(p, L);
  if (!want_yield(p, L)) {
    set_hook(p, L, NULL, 0, 0);
    if (atomic_exchange(&p->interrupt_req, false)) interrupt(p, L);
    return;
  }
  set_hook(p, L, bare_after, LUA_MASKCOUNT, 1);
  if (atomic_exchange(&p->interrupt_req, false)) interrupt(p, L);
  yield_now(p, L);
}

static void bare_after(lua_State *L, lua_Debug *ar) {
  (void)ar;
  set_hook(vm_p(L), L, NULL, 0, 0);
}

/* ---------- hooked threads: the user's hook delivers it ---------- */

/* call_lua_hook — what the standard library's hook does: call
** registry._HOOKKEY[L] (if a function) with the event name and line */
static void call_lua_hook(lua_State *L, lua_Debug *ar) {
  static const char *const names[] = {"call", "return", "line", "count", "tail call"};
  lua_getfield(L, LUA_REGISTRYINDEX, HOOKKEY);
  lua_pushthread(L);
  if (lua_rawget(L, -2) == LUA_TFUNCTION) {
    lua_pushstring(L, names[ar->event]);
    if (ar->currentline >= 0) lua_pushinteger(L, ar->currentline);
    else lua_pushnil(L);
    lua_getinfo(L, "lS", ar);
    lua_call(L, 2, 0);
  }
  lua_pop(L, 1);
}

/* user_mask — the user's own mask on a thread carrying our count bit */
static int user_mask(lua_State *L) {
  return lua_gethookmask(L) & ~LUA_MASKCOUNT;
}

/* note_event — remember a call event: the next line or count event is at
** a function's first instruction, where a hook must not yield (Lua would
** report the call again when the frame resumes) */
static void note_event(P *p, lua_State *L, int ev) {
  p->entry_L = (ev == LUA_HOOKCALL || ev == LUA_HOOKTAILCALL) ? L : NULL;
}

static bool at_entry(P *p, lua_State *L) {
  bool e = p->entry_L == L;
  p->entry_L = NULL;
  return e;
}

/* preempt_user_hook — the user's events; a request (p->req_L) is delivered
** after the last event of an instruction: a line event when the user
** traces lines (a count event may come just before it), else a count
** event; never the first after a call event. A counting hook drifts there
** (HACKING.md "Hooks and preemption"): Lua restarts the count where the
** hook yielded, without the instructions the user's function ran. */
void preempt_user_hook(lua_State *L, lua_Debug *ar) {
  P *p = vm_p(L);
  int ev = ar->event;
  int when = (lua_gethookmask(L) & LUA_MASKLINE) ? LUA_HOOKLINE : LUA_HOOKCOUNT;
  bool entry = ev == when && at_entry(p, L);
  if (ev != LUA_HOOKLINE && ev != LUA_HOOKCOUNT) note_event(p, L, ev);
  call_lua_hook(L, ar);
  if (ev != when || entry || p->req_L != L) return;
  take_sample(p, L);
  if (atomic_exchange(&p->interrupt_req, false)) {
    p->req_L = NULL;
    interrupt(p, L);
  }
  if (!atomic_load(&p->preempt_want)) p->req_L = NULL; /* only a sample */
  if (!want_yield(p, L)) return; /* req_L kept: delivered at a later event */
  p->req_L = NULL;
  yield_now(p, L);
}

static void user_tmp(lua_State *L, lua_Debug *ar) {
  P *p = vm_p(L);
  if (ar->event != LUA_HOOKCOUNT) {
    note_event(p, L, ar->event);
    call_lua_hook(L, ar);
    return;
  }
  if (at_entry(p, L)) return; /* keep the count bit: next instruction */
  bool req = p->req_L == L;
  p->req_L = NULL;
  p->tmpcount_L = NULL;
  if (req) take_sample(p, L);
  if (!req || !want_yield(p, L)) {
    set_hook(p, L, preempt_user_hook, user_mask(L), 0);
    if (req && atomic_exchange(&p->interrupt_req, false)) interrupt(p, L);
    return;
  }
  set_hook(p, L, user_after, lua_gethookmask(L), 1);
  if (atomic_exchange(&p->interrupt_req, false)) interrupt(p, L);
  yield_now(p, L);
}

static void user_after(lua_State *L, lua_Debug *ar) {
  if (ar->event == LUA_HOOKCOUNT) {
    set_hook(vm_p(L), L, preempt_user_hook, user_mask(L), 0);
    return;
  }
  note_event(vm_p(L), L, ar->event);
  call_lua_hook(L, ar);
}

void preempt_sethook(lua_State *L1, int mask, int count) {
  P *p = vm_p(L1);
  if (p->hooked_L == L1) p->hooked_L = NULL; /* the new hook replaces ours */
  if (p->tmpcount_L == L1) p->tmpcount_L = NULL;
  if (p->req_L == L1) p->req_L = NULL;
  if (mask == 0) count = 0;
  set_hook(p, L1, mask ? preempt_user_hook : NULL, mask, count);
}

lua_Hook preempt_gethook(lua_State *L1, int *mask, int *count) {
  P *p = vm_p(L1);
  p->hook_busy = 1; /* the three reads see one hook */
  atomic_signal_fence(memory_order_seq_cst);
  lua_Hook h = lua_gethook(L1);
  *mask = lua_gethookmask(L1);
  *count = lua_gethookcount(L1);
  atomic_signal_fence(memory_order_seq_cst);
  p->hook_busy = 0;
  if (h == bare_hook || h == bare_after) {
    *mask = *count = 0;
    return NULL;
  }
  if (h == user_tmp || h == user_after) {
    *mask &= ~LUA_MASKCOUNT;
    *count = 0;
    return preempt_user_hook;
  }
  return h;
}

/* ---------- the signal ---------- */

/* ask — a request on L, the running thread, from the SIGURG handler */
static void ask(P *p, lua_State *L) {
  lua_Hook h = lua_gethook(L);
  int mask = lua_gethookmask(L);
  if (h == NULL || h == bare_after) {
    if (p->hooked_L) return;
    p->hooked_L = L;
    lua_sethook(L, bare_hook, LUA_MASKCOUNT, 1);
  } else if (h == preempt_user_hook || h == user_tmp || h == user_after) {
    p->req_L = L; /* delivered after its next line or count event */
    if (h == preempt_user_hook && (mask & (LUA_MASKLINE | LUA_MASKCOUNT))) return;
    if (h == user_tmp) return;
    lua_State *old = p->tmpcount_L; /* an enclosing coroutine's, not running */
    if (old && lua_gethook(old) == user_tmp)
      lua_sethook(old, preempt_user_hook, user_mask(old), 0);
    p->tmpcount_L = L;
    lua_sethook(L, user_tmp, mask | LUA_MASKCOUNT, 1);
  } /* else a request is on already, or a C module's own hook: left alone */
}

static void on_sigurg(int sig) {
  (void)sig;
  P *p = sched_current_p();
  if (!p || !atomic_load(&p->running) || p->hook_busy) return;
  if (!atomic_load(&p->preempt_want) && !atomic_load(&p->sample_want) &&
      !atomic_load(&p->interrupt_req))
    return; /* nobody asked (a stale signal) */
  lua_State *L = atomic_load(&p->curL);
  if (L) ask(p, L);
}

/* preempt_init — the handler is installed even with preemption off: a
** stop, SIGINT's interrupt and the profiler's samples use it too (it does
** nothing unless a flag asks) */
void preempt_init(rt *r) {
  (void)r;
  signal_set_handler(SIGURG, on_sigurg);
}

void preempt_stop(rt *r) {
  for (int i = 0; i < r->nprocs; i++) {
    P *p = r->ps[i];
    if (!atomic_load(&p->running)) continue;
    atomic_store(&p->preempt_want, true);
    pthread_kill(atomic_load(&p->m)->thread, SIGURG);
  }
}

bool preempt_check(rt *r, int64_t now) {
  bool busy = false;
  for (int i = 0; i < r->nprocs; i++) {
    P *p = r->ps[i];
    uint64_t seq = atomic_load(&p->exec_seq);
    if (!atomic_load(&p->running)) continue;
    busy = true;
    if (seq != p->seen_seq) {
      p->seen_seq = seq;
      p->seen_when = now;
      continue;
    }
    int64_t nt = atomic_load_explicit(&p->next_timer_pub, memory_order_relaxed);
    int64_t slice = nt != 0 && nt <= now ? PREEMPT_TIMER_NS : PREEMPT_NS;
    if (r->cfg.preempt && now - p->seen_when >= slice) {
      p->seen_when = now; /* ask again in PREEMPT_NS if it could not yield */
      atomic_store(&p->preempt_want, true);
      pthread_kill(atomic_load(&p->m)->thread, SIGURG);
    }
  }
  return busy;
}

/* drop — the requests of ours on L that were not delivered */
static void drop(P *p, lua_State *L) {
  lua_Hook h = lua_gethook(L);
  if (p->hooked_L == L) {
    p->hooked_L = NULL;
    if (h == bare_hook) set_hook(p, L, NULL, 0, 0);
  }
  if (p->tmpcount_L == L) {
    p->tmpcount_L = NULL;
    if (h == user_tmp) set_hook(p, L, preempt_user_hook, user_mask(L), 0);
  }
  if (p->req_L == L) p->req_L = NULL;
  if (p->entry_L == L) p->entry_L = NULL;
}

void preempt_unhook(P *p, lua_State *L) {
  drop(p, L);
}

void preempt_clear(P *p) {
  if (p->hooked_L) drop(p, p->hooked_L);
  if (p->tmpcount_L) drop(p, p->tmpcount_L);
  p->req_L = NULL;
  p->entry_L = NULL;
  /* a preemption the hook did not see was for the execution that ended */
  if (atomic_load_explicit(&p->preempt_want, memory_order_relaxed))
    atomic_store_explicit(&p->preempt_want, false, memory_order_relaxed);
}

void preempt_fix_inherited(P *p, lua_State *NL) {
  int mask, count;
  lua_Hook h = preempt_gethook(NL, &mask, &count);
  if (h != lua_gethook(NL)) set_hook(p, NL, h, mask, count);
}
