/* preempt.c — see preempt.h. */
#include "preempt.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "prof.h"
#include "signal.h"

static void preempt_hook(lua_State *L, lua_Debug *ar);

/* restore — put back the user's hook on the thread we hooked */
static void restore(P *p, lua_State *L) {
  if (p->hooked_L == L)
    lua_sethook(L, (lua_Hook)p->saved_hook, p->saved_mask, p->saved_count);
  else
    lua_sethook(L, NULL, 0, 0); /* a thread that inherited our hook */
  p->hooked_L = NULL;
}

/* take_sample — the profiler asked for a sample (prof.h): take it here, at
** an instruction boundary on the P's own M */
static void take_sample(P *p, lua_State *L) {
  const char *c = atomic_exchange(&p->sample_want, NULL);
  if (c) prof_sample(p, L, c);
}

static void preempt_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  P *p = vm_p(L);
  restore(p, L);
  take_sample(p, L);
  if (atomic_exchange(&p->interrupt_req, false)) { /* SIGINT, as lua's lstop */
    atomic_fetch_add(&p->rt->ninterrupts, 1);
    luaL_error(L, "interrupted!");
  }
  if (!atomic_exchange(&p->preempt_want, false)) return; /* only a sample */
  G *g = p->curg;
  if (!g || !sched_can_park(L)) return; /* not here: sysmon will ask again */
  g->yieldkind = Y_PREEMPT;
  p->st.preemptions++;
  lua_yield(L, 0);
}

static void on_sigurg(int sig) {
  (void)sig;
  P *p = sched_current_p();
  if (!p || !atomic_load(&p->running) || p->hooked_L) return;
  if (!atomic_load(&p->preempt_want) && !atomic_load(&p->sample_want) &&
      !atomic_load(&p->interrupt_req))
    return;
  lua_State *L = atomic_load(&p->curL);
  if (!L) return;
  lua_Hook h = lua_gethook(L);
  if (h == preempt_hook) return;
  p->saved_hook = (void *)h;
  p->saved_mask = lua_gethookmask(L);
  p->saved_count = lua_gethookcount(L);
  p->hooked_L = L;
  lua_sethook(L, preempt_hook, LUA_MASKCOUNT, 1);
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

void preempt_clear(P *p) {
  if (p->hooked_L) restore(p, p->hooked_L);
  /* a preemption the hook did not see was for the execution that ended */
  if (atomic_load_explicit(&p->preempt_want, memory_order_relaxed))
    atomic_store_explicit(&p->preempt_want, false, memory_order_relaxed);
}

void preempt_unhook(P *p, lua_State *L) {
  if (p->hooked_L == L) restore(p, L);
}

void preempt_fix_inherited(P *p, lua_State *NL) {
  if (lua_gethook(NL) != preempt_hook) return;
  if (p->hooked_L)
    lua_sethook(NL, (lua_Hook)p->saved_hook, p->saved_mask, p->saved_count);
  else
    lua_sethook(NL, NULL, 0, 0);
}
