/*
** lcoro.c — the coroutine library, replaced so that runtime parks pass
** through user coroutines (runtime/HACKING.md, "Parking").
**
** When code inside a user coroutine parks (conn:read, go.sleep, ch:recv...),
** the innermost resume sees a runtime yield (the G's yieldkind is set) and
** forwards it: it yields its own thread with a continuation, level by level,
** until the scheduler's lua_resume returns. When the G runs again, each
** continuation resumes the coroutine below it. While forwarded, a coroutine
** is in the "parked" set: it reports "normal" and refuses resume and close.
** A goroutine's own thread looks like a main thread: running() gives it and
** true, isyieldable() is false, yield() raises.
*/
#include <lauxlib.h>
#include <lua.h>

#include "../runtime/preempt.h"
#include "../runtime/sched.h"
#include "classes.h"
#include "lcoro.h"

#if LUA_VERSION_RELEASE_NUM >= 50406
#define lcoro_closethread(co, from) lua_closethread((co), (from))
#else
#define lcoro_closethread(co, from) ((void)(from), lua_resetthread(co))
#endif

static const char PARKED_KEY = 'p';
enum { K_RESUME = 0, K_WRAP = 1 };
enum { COS_RUN, COS_DEAD, COS_YIELD, COS_NORM };
static const char *const statname[] = {"running", "dead", "suspended", "normal"};

static void parked_table(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &PARKED_KEY);
}

static bool is_parked(lua_State *L, lua_State *co) {
  if (vm_p(L)->nparked == 0) return false; /* the usual case: no table lookup */
  parked_table(L);
  lua_pushthread(co);
  lua_xmove(co, L, 1);
  bool r = lua_rawget(L, -2) != LUA_TNIL;
  lua_pop(L, 2);
  return r;
}

static void set_parked(lua_State *L, lua_State *co, bool on) {
  vm_p(L)->nparked += on ? 1 : -1;
  parked_table(L);
  lua_pushthread(co);
  lua_xmove(co, L, 1);
  if (on) lua_pushboolean(L, 1);
  else lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

static int auxstatus(lua_State *L, lua_State *co) {
  if (L == co) return COS_RUN;
  if (vm_g(co)) return COS_NORM; /* another goroutine: running elsewhere */
  if (lua_status(co) == LUA_YIELD) return is_parked(L, co) ? COS_NORM : COS_YIELD;
  if (lua_status(co) != LUA_OK) return COS_DEAD;
  lua_Debug ar;
  if (lua_getstack(co, 0, &ar)) return COS_NORM;
  return lua_gettop(co) == 0 ? COS_DEAD : COS_YIELD;
}

static lua_State *getco(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co, 1, "coroutine");
  return co;
}

static int resume_loop(lua_State *L, lua_State *co, int narg, int kind);

static int resume_cont(lua_State *L, int status, lua_KContext kind) {
  (void)status;
  lua_State *co = kind == K_RESUME ? lua_tothread(L, 1)
                                   : lua_tothread(L, lua_upvalueindex(1));
  set_parked(L, co, false);
  return resume_loop(L, co, 0, (int)kind);
}

static int finish_wrap_error(lua_State *L, lua_State *co) {
  int stat = lua_status(co);
  if (stat != LUA_OK && stat != LUA_YIELD) {
    stat = lcoro_closethread(co, L);
    lua_xmove(co, L, 1);
  }
  if (stat != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
    luaL_where(L, 1);
    lua_insert(L, -2);
    lua_concat(L, 2);
  }
  return lua_error(L);
}

static int finish(lua_State *L, lua_State *co, int st, int nres, int kind) {
  if (st == LUA_OK || st == LUA_YIELD) {
    if (!lua_checkstack(L, nres + 1)) {
      lua_pop(co, nres);
      lua_pushliteral(L, "too many results to resume");
      if (kind == K_WRAP) return finish_wrap_error(L, co);
      lua_pushboolean(L, 0);
      lua_insert(L, -2);
      return 2;
    }
    if (kind == K_RESUME) lua_pushboolean(L, 1);
    lua_xmove(co, L, nres);
    return kind == K_RESUME ? nres + 1 : nres;
  }
  lua_xmove(co, L, 1); /* error object */
  if (kind == K_WRAP) return finish_wrap_error(L, co);
  lua_pushboolean(L, 0);
  lua_insert(L, -2);
  return 2;
}

static int resume_loop(lua_State *L, lua_State *co, int narg, int kind) {
  P *p = vm_p(L);
  G *g = p->curg;
  bool ok = g && sched_can_park(L);
  if (g) sched_chain_push(g, ok);
  int nres = 0;
  /* the innermost running coroutine, for this thread's SIGURG handler */
  atomic_store_explicit(&p->curL, co, memory_order_relaxed);
  atomic_signal_fence(memory_order_seq_cst);
  int st = lua_resume(co, L, narg, &nres);
  atomic_store_explicit(&p->curL, L, memory_order_relaxed);
  atomic_signal_fence(memory_order_seq_cst);
  preempt_unhook(p, co);
  if (g) sched_chain_pop(g);
  if (st == LUA_YIELD && g && g->yieldkind != Y_NONE) {
    lua_pop(co, nres);
    set_parked(L, co, true);
    return lua_yieldk(L, 0, kind, resume_cont);
  }
  return finish(L, co, st, nres, kind);
}

/* start_resume — the checks of lcorolib's auxresume; -1 with a message
** pushed when co cannot be resumed. */
static int start_resume(lua_State *L, lua_State *co, int narg) {
  if (vm_g(co) || (lua_status(co) == LUA_YIELD && is_parked(L, co))) {
    lua_pushliteral(L, "cannot resume non-suspended coroutine");
    return -1;
  }
  if (lua_status(co) == LUA_OK && lua_gettop(co) == 0) {
    lua_pushliteral(L, "cannot resume dead coroutine");
    return -1;
  }
  if (!lua_checkstack(co, narg)) {
    lua_pushliteral(L, "too many arguments to resume");
    return -1;
  }
  lua_xmove(L, co, narg);
  return 0;
}

static int co_resume(lua_State *L) {
  lua_State *co = getco(L);
  int narg = lua_gettop(L) - 1;
  if (start_resume(L, co, narg) < 0) {
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  }
  return resume_loop(L, co, narg, K_RESUME);
}

static int co_auxwrap(lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(1));
  int narg = lua_gettop(L);
  if (start_resume(L, co, narg) < 0) {
    if (lua_type(L, -1) == LUA_TSTRING) {
      luaL_where(L, 1);
      lua_insert(L, -2);
      lua_concat(L, 2);
    }
    return lua_error(L);
  }
  return resume_loop(L, co, narg, K_WRAP);
}

static int co_create(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_State *NL = lua_newthread(L);
  preempt_fix_inherited(vm_p(L), NL);
  lua_pushvalue(L, 1);
  lua_xmove(L, NL, 1);
  return 1;
}

static int co_wrap(lua_State *L) {
  co_create(L);
  lua_pushcclosure(L, co_auxwrap, 1);
  return 1;
}

static int co_yield(lua_State *L) {
  G *g = vm_g(L);
  if (g || L == vm_p(L)->L)
    return luaL_error(L, "attempt to yield from outside a coroutine");
  return lua_yield(L, lua_gettop(L));
}

static int co_status(lua_State *L) {
  lua_pushstring(L, statname[auxstatus(L, getco(L))]);
  return 1;
}

static int co_running(lua_State *L) {
  G *g = vm_g(L);
  if (g) {
    g->escaped = true; /* the thread's identity reached Lua: never recycle */
    lua_pushthread(L);
    lua_pushboolean(L, 1);
    return 2;
  }
  int ismain = lua_pushthread(L);
  lua_pushboolean(L, ismain);
  return 2;
}

static int co_isyieldable(lua_State *L) {
  lua_State *co = lua_isnone(L, 1) ? L : getco(L);
  lua_pushboolean(L, vm_g(co) == NULL && co != vm_p(L)->L && lua_isyieldable(co));
  return 1;
}

static int co_close(lua_State *L) {
  lua_State *co = getco(L);
  int status = auxstatus(L, co);
  if (status != COS_DEAD && status != COS_YIELD)
    return luaL_error(L, "cannot close a %s coroutine", statname[status]);
  status = lcoro_closethread(co, L);
  if (status == LUA_OK) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushboolean(L, 0);
  lua_xmove(co, L, 1);
  return 2;
}

static const luaL_Reg co_funcs[] = {
    {"create", co_create},   {"resume", co_resume},
    {"running", co_running}, {"status", co_status},
    {"wrap", co_wrap},       {"yield", co_yield},
    {"isyieldable", co_isyieldable}, {"close", co_close},
    {NULL, NULL}};

int lcoro_open(lua_State *L) {
  class_weaktable(L, "k");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &PARKED_KEY);
  luaL_newlib(L, co_funcs);
  return 1;
}
