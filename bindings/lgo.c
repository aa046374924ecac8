/*
** lgo.c — the `go` module: goroutines (go, go.wait, sleep, yield, id...),
** stats and exit; it registers the channels, select and after (lchan.c),
** shared channels (lschan.c), go.shared and go.spawn.
**
** A goroutine handle (metatable goluarun.g) outlives its G: the G keeps the
** handle on its own stack while it runs and stores its results (or error)
** in it when it ends. Everything here runs on the M holding the VM's P.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>

#include "../runtime/chan.h"
#include "../runtime/pd.h"
#include "../runtime/schan.h"
#include "../runtime/sched.h"
#include "bindings.h"
#include "goluarun.h"
#include "lchan.h"

#define HANDLE_MT "goluarun.g"
static const char HANDLE_KEY = 'h';

enum { H_RUNNING = 0, H_OK, H_ERR };

typedef struct ghandle {
  uint64_t id;
  int state;
  int nres;     /* results: 0, 1 (the uservalue itself) or a table {n=} */
  chan waiters; /* only its recvq is used: goroutines in go.wait */
} ghandle;

/* ---------- helpers ---------- */

static G *cur_g(lua_State *L, const char *what) {
  G *g = vm_p(L)->curg;
  if (!g) luaL_error(L, "%s: not inside a goroutine", what);
  return g;
}

static void need_park(lua_State *L, const char *what) {
  if (!sched_can_park(L)) glr_cannot_block_error(L, what);
}

static double check_seconds(lua_State *L, int idx) {
  double s = luaL_checknumber(L, idx);
  if (isnan(s)) luaL_argerror(L, idx, "time is NaN");
  return s;
}

/* wake every goroutine of a chan_close list */
static void wake_list(sudog *w) {
  while (w) {
    sudog *next = w->next;
    G *g = w->g;
    sched_ready(g->tag.p, g, false);
    w = next;
  }
}

/* ---------- goroutines ---------- */

static void report_error(lua_State *L, G *g, const char *msg) {
  pthread_mutex_lock(&vm_p(L)->rt->dump_lock);
  if (g->ismain) fprintf(stderr, "goluarun: %s\n", msg);
  else fprintf(stderr, "goroutine %llu: %s\n", (unsigned long long)g->id, msg);
  fflush(stderr);
  pthread_mutex_unlock(&vm_p(L)->rt->dump_lock);
}

/* msgh — runs at the error point: reports with a traceback, returns the
** original error object (so to-be-closed variables and go.wait see it). */
static int msgh(lua_State *L) {
  G *g = vm_p(L)->curg;
  const char *msg = lua_tostring(L, 1);
  if (!msg) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      msg = lua_tostring(L, -1);
    else
      msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  if (g) report_error(L, g, lua_tostring(L, -1));
  lua_settop(L, 1);
  return 1;
}

static int g_entry_k(lua_State *L, int status, lua_KContext ctx) {
  (void)ctx;
  G *g = vm_g(L);
  ghandle *h = lua_touserdata(L, 1);
  int n = lua_gettop(L) - 2;
  h->nres = n;
  if (n > 1) {
    lua_createtable(L, n, 0);
    lua_insert(L, 3);
    for (int i = n; i >= 1; i--) lua_rawseti(L, 3, i);
  }
  if (n > 0) lua_setiuservalue(L, 1, 1);
  h->state = (status == LUA_OK || status == LUA_YIELD) ? H_OK : H_ERR;
  sudog *woken;
  chan_close(&h->waiters, &woken);
  wake_list(woken);
  if (g->ismain) {
    rt *r = vm_p(L)->rt;
    if (h->state == H_ERR) rt_stop(r, STOP_EXIT, 1, false);
    sched_main_done(r);
  }
  return 0;
}

/* g_entry — the body of every goroutine: [handle, fn, args...] */
static int g_entry(lua_State *L) {
  int nargs = lua_gettop(L) - 2;
  lua_pushcfunction(L, msgh);
  lua_insert(L, 2);
  int st = lua_pcallk(L, nargs, LUA_MULTRET, 2, 0, g_entry_k);
  return g_entry_k(L, st, 0);
}

void go_start(lua_State *L, int fnidx, int nargs, int ismain) {
  P *p = vm_p(L);
  G *g = g_new(p);
  lua_State *co = g->L;
  ghandle *h = lua_newuserdatauv(L, sizeof *h, 1);
  h->state = H_RUNNING;
  h->nres = 0;
  chan_init(&h->waiters, 0);
  glr_setclass(L, &HANDLE_KEY);
  lua_checkstack(co, nargs + 3);
  lua_pushcfunction(co, g_entry);
  lua_pushvalue(L, -1);
  lua_xmove(L, co, 1); /* handle */
  lua_pushvalue(L, fnidx);
  lua_xmove(L, co, 1);
  for (int i = 1; i <= nargs; i++) {
    lua_pushvalue(L, fnidx + i);
    lua_xmove(L, co, 1);
  }
  g->nargs = nargs + 2;
  g->ismain = ismain != 0;
  sched_start(p, g);
  h->id = g->id;
}

static int go_call(lua_State *L) { /* go(fn, ...) via __call: arg 1 is go */
  luaL_checktype(L, 2, LUA_TFUNCTION);
  go_start(L, 2, lua_gettop(L) - 2, 0);
  return 1;
}

static int push_results(lua_State *L, ghandle *h, int hidx) {
  int n = h->nres;
  luaL_checkstack(L, n + 2, "too many results");
  lua_pushboolean(L, h->state == H_OK);
  if (n == 1) {
    lua_getiuservalue(L, hidx, 1);
  } else if (n > 1) {
    lua_getiuservalue(L, hidx, 1);
    int t = lua_gettop(L);
    for (int i = 1; i <= n; i++) lua_rawgeti(L, t, i);
    lua_remove(L, t);
  }
  return n + 1;
}

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  G *g = vm_p(L)->curg;
  chan_dequeue(&g->sg);
  g->sel = NULL;
  ghandle *h = lua_touserdata(L, 1);
  if (h->state == H_RUNNING) {
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  }
  return push_results(L, h, 1);
}

static int go_wait(lua_State *L) {
  if (portable_is_handle(L, 1)) return portable_wait(L);
  ghandle *h = glr_checkclass(L, 1, &HANDLE_KEY, HANDLE_MT);
  double timeout = lua_isnoneornil(L, 2) ? -1 : check_seconds(L, 2);
  if (h->state != H_RUNNING) return push_results(L, h, 1);
  if (timeout == 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  }
  G *g = cur_g(L, "go.wait");
  need_park(L, "go.wait");
  lua_settop(L, 1);
  g->sg = (sudog){.g = g, .isrecv = true, .caseidx = 0};
  atomic_store(&g->gsel.done, false);
  g->gsel.fired = -1;
  g->sg.sel = &g->gsel;
  chan_enqueue(&h->waiters, &g->sg);
  if (timeout > 0) {
    g->sel = &g->gsel;
    sched_arm_gtimer(vm_p(L), g, deadline_from_seconds(timeout));
  }
  return sched_park(L, NULL, NULL, "wait", timeout > 0 ? PARK_WORLD : PARK_SYNC,
                    0, wait_k);
}

static int h_gc(lua_State *L) {
  ghandle *h = glr_checkclass(L, 1, &HANDLE_KEY, HANDLE_MT);
  chan_free(&h->waiters);
  return 0;
}

static int h_tostring(lua_State *L) {
  ghandle *h = glr_checkclass(L, 1, &HANDLE_KEY, HANDLE_MT);
  static const char *st[] = {"running", "done", "failed"};
  lua_pushfstring(L, "goroutine %I (%s)", (lua_Integer)h->id, st[h->state]);
  return 1;
}

static int h_id(lua_State *L) {
  ghandle *h = glr_checkclass(L, 1, &HANDLE_KEY, HANDLE_MT);
  lua_pushinteger(L, (lua_Integer)h->id);
  return 1;
}

static int resume0_k(lua_State *L, int status, lua_KContext ctx) {
  (void)L;
  (void)status;
  (void)ctx;
  return 0;
}

static int go_yield(lua_State *L) {
  cur_g(L, "go.yield");
  need_park(L, "go.yield");
  return sched_gosched(L, 0, resume0_k);
}

static int go_sleep(lua_State *L) {
  double s = check_seconds(L, 1);
  cur_g(L, "go.sleep");
  need_park(L, "go.sleep");
  if (s <= 0) return sched_gosched(L, 0, resume0_k);
  return glr_sleep(L, deadline_from_seconds(s), 0, resume0_k);
}

static int go_now(lua_State *L) {
  lua_pushnumber(L, (double)mono_now() / 1e9);
  return 1;
}

static int go_id(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)glr_goid(L));
  return 1;
}

static int go_procid(lua_State *L) {
  lua_pushinteger(L, glr_procid(L));
  return 1;
}

static int go_nprocs(lua_State *L) {
  lua_pushinteger(L, glr_nprocs(L));
  return 1;
}

/* ---------- stats, exit ---------- */

static void set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static int go_stats(lua_State *L) {
  P *self = vm_p(L);
  rt *r = self->rt;
  sched_publish(self);
  lua_Integer gs = 0, rq = 0, pw = 0, sum[5] = {0};
  lua_newtable(L);
  lua_createtable(L, r->nprocs, 0);
  for (int i = 0; i < r->nprocs; i++) {
    P *p = r->ps[i];
    lua_Integer pg = atomic_load(&p->ngoroutines_pub), prq = atomic_load(&p->runq_pub);
    gs += pg;
    rq += prq;
    pw += atomic_load(&p->npollwait);
    for (int k = 0; k < 5; k++) sum[k] += (lua_Integer)atomic_load(&p->st_pub[k]);
    lua_createtable(L, 0, 8);
    set_int(L, "goroutines", pg);
    set_int(L, "runq", prq);
    set_int(L, "id", i);
    set_int(L, "portable", atomic_load(&p->pq.n));
    set_int(L, "spawned", (lua_Integer)atomic_load(&p->st_pub[0]));
    set_int(L, "steals", (lua_Integer)atomic_load(&p->st_pub[2]));
    set_int(L, "preemptions", (lua_Integer)atomic_load(&p->st_pub[3]));
    set_int(L, "handoffs", (lua_Integer)atomic_load(&p->st_pub[4]));
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "procs");
  set_int(L, "goroutines", gs);
  set_int(L, "runnable", rq);
  pthread_mutex_lock(&r->mlock);
  set_int(L, "threads", r->nm); /* Ms, counting pool threads for hand-offs */
  pthread_mutex_unlock(&r->mlock);
  set_int(L, "netpoll_waiters", pw);
  set_int(L, "spawned", sum[0]);
  set_int(L, "coroutines_created", sum[1]);
  set_int(L, "steals", sum[2]);
  set_int(L, "preemptions", sum[3]);
  set_int(L, "handoffs", sum[4]);
  size_t alloc, inuse;
  pd_cache_stats(&alloc, &inuse);
  set_int(L, "polldescs", (lua_Integer)inuse);
  set_int(L, "sharedchans", schan_live());
  return 1;
}

static int exit_code_arg(lua_State *L, int idx) {
  if (lua_isboolean(L, idx)) return lua_toboolean(L, idx) ? EXIT_SUCCESS : EXIT_FAILURE;
  return (int)luaL_optinteger(L, idx, EXIT_SUCCESS);
}

/* do_exit — stop the runtime; the calling goroutine never runs again */
static int do_exit(lua_State *L, int code, bool close_vms) {
  rt *r = vm_p(L)->rt;
  if (!sched_can_park(L)) { /* cannot leave the VM cleanly from here */
    fflush(NULL);
    _exit(code);
  }
  rt_stop(r, STOP_EXIT, code, close_vms);
  return sched_park(L, NULL, NULL, "exit", PARK_WORLD, 0, resume0_k);
}

static int go_exit(lua_State *L) { return do_exit(L, exit_code_arg(L, 1), true); }

static int os_exit(lua_State *L) {
  return do_exit(L, exit_code_arg(L, 1), lua_toboolean(L, 2));
}

/* ---------- module ---------- */

static const luaL_Reg go_funcs[] = {
    {"wait", go_wait},     {"sleep", go_sleep},   {"yield", go_yield},
    {"now", go_now},       {"id", go_id},         {"procid", go_procid},
    {"nprocs", go_nprocs}, {"stats", go_stats},   {"exit", go_exit},
    {NULL, NULL}};

static const luaL_Reg handle_methods[] = {{"id", h_id}, {NULL, NULL}};


int luaopen_go(lua_State *L) {
  static const luaL_Reg handle_meta[] = {
      {"__gc", h_gc}, {"__tostring", h_tostring}, {NULL, NULL}};
  glr_defclass(L, &HANDLE_KEY, HANDLE_MT, handle_methods, handle_meta);
  lua_pop(L, 1);
  luaL_newlib(L, go_funcs);
  lchan_open(L);
  glr_open_shared(L);
  glr_open_sharedchan(L);
  glr_open_spawn(L);
  lua_newtable(L);
  lua_pushcfunction(L, go_call);
  lua_setfield(L, -2, "__call");
  lua_setmetatable(L, -2);
  /* os.exit stops the runtime cleanly */
  if (lua_getglobal(L, "os") == LUA_TTABLE) {
    lua_pushcfunction(L, os_exit);
    lua_setfield(L, -2, "exit");
  }
  lua_pop(L, 1);
  return 1;
}
