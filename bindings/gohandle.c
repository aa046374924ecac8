/*
** gohandle.c — goroutines of one VM and their handles (see gohandle.h).
**
** Every goroutine but main is direct: fn is its thread's first frame and
** go_end (rt->g_end) ends it once lua_resume returns, storing its results
** (or its error) in the handle and waking its waiters (see "direct
** goroutines" below). The main goroutine's body is g_entry: [handle, msgh,
** fn, args...] on the G's own lua_State; it runs fn under msgh (which
** reports an error with its traceback where it happens, in lua's format).
** Goroutines in go.wait queue on the handle's `waiters` (only its recvq is
** used), as on a channel that closes when the goroutine ends.
*/
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "../runtime/chan.h"
#include "../runtime/group.h"
#include "../runtime/sched.h"
#include "args.h"
#include "classes.h"
#include "errstr.h"
#include "gohandle.h"
#include "goluarun.h"

#define HANDLE_MT "goluarun.g"
static const char HANDLE_KEY = 'h', WAIT_KEY = 'w';

/* handle states; each moves once, H_RUNNING -> H_OK or H_ERR (handle_done) */
enum {
  H_RUNNING = 0, /* the G runs (or is parked); no results yet */
  H_OK,          /* fn returned: its results are in the uservalue */
  H_ERR          /* fn raised: the error object is in the uservalue */
};

enum { NRES_ON_THREAD = -1 };

typedef struct ghandle {
  uint64_t id;  /* const after go_start */
  int state;    /* H_*; owner P only (handle_set_status) */
  int nres;     /* results: 0, 1 (the uservalue itself) or a table {n=};
                ** NRES_ON_THREAD: failed, the error is slot 1 of the thread
                ** in the uservalue (a direct goroutine's, see go_end) */
  chan waiters; /* only its recvq is used: goroutines in go.wait */
} ghandle;

/* handle_set_status — the one state change of a handle; aborts on any other */
static void handle_set_status(ghandle *h, int to) {
  if (h->state != H_RUNNING || (to != H_OK && to != H_ERR))
    rt_throw("gohandle: bad handle status change");
  h->state = to;
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

/* ---------- a goroutine's life ---------- */

/* main_prefix — lua's error prefix: the executable's name as run */
static const char *main_prefix(lua_State *L) {
  const char *name = vm_p(L)->rt->cfg.progname;
  return name ? name : "goluarun";
}

static void report_error(lua_State *L, G *g, const char *msg) {
  pthread_mutex_lock(&vm_p(L)->rt->dump_lock);
  if (g->ismain) fprintf(stderr, "%s: %s\n", main_prefix(L), msg);
  else fprintf(stderr, "goroutine %llu: %s\n", (unsigned long long)g->id, msg);
  fflush(stderr);
  pthread_mutex_unlock(&vm_p(L)->rt->dump_lock);
}

/* trim_c_tail — the main goroutine's traceback ends as lua's, with one
** "[C]: in ?" for the C frames under the script (entry, driver) */
static void trim_c_tail(lua_State *L) {
  static const char tail[] = "\n\t[C]: in ?";
  const size_t t = sizeof tail - 1;
  size_t n, end;
  const char *s = lua_tolstring(L, -1, &n);
  for (end = n; end >= 2 * t; end -= t)
    if (memcmp(s + end - t, tail, t) != 0 || memcmp(s + end - 2 * t, tail, t) != 0) break;
  if (end == n) return;
  lua_pushlstring(L, s, end);
  lua_replace(L, -2);
}

/* cancelled_error — a member's error is its group's cancellation: the
** group expected it, no report */
static bool cancelled_error(G *g, const char *msg) {
  return group_is_cancelled(g->grp) && strncmp(msg, "cancelled", 9) == 0;
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
  if (!g || !cancelled_error(g, msg)) { /* a cancellation needs no traceback */
    luaL_traceback(L, L, msg, 1);
    if (g && g->ismain) trim_c_tail(L);
    if (g) report_error(L, g, lua_tostring(L, -1));
  }
  lua_settop(L, 1);
  return 1;
}

/* unreported — the text of an error Lua raises without calling msgh (out
** of memory; an error inside msgh itself, e.g. no memory for the
** traceback): static, so reporting it needs no memory */
static const char *unreported(int status) {
  if (status == LUA_ERRMEM) return ERRSTR_NOMEM;
  if (status == LUA_ERRERR) return "error in error handling";
  return NULL;
}

/* interrupted — the goroutine died of SIGINT's "interrupted!" (its error
** object, on top): as under lua, that ends the process with status 1 */
static bool interrupted(lua_State *L, rt *r) {
  if (atomic_load(&r->ninterrupts) == 0 || lua_type(L, -1) != LUA_TSTRING) return false;
  return strstr(lua_tostring(L, -1), "interrupted!") != NULL;
}

/* handle_done — the handle's one state change: n results (or the error,
** n == 1) are in its uservalue; wake its waiters */
static void handle_done(ghandle *h, int n, bool failed) {
  h->nres = n;
  handle_set_status(h, failed ? H_ERR : H_OK);
  sudog *woken;
  chan_close(&h->waiters, &woken);
  wake_list(woken);
}

/* keep_results — [handle, msgh, results...]: the results (or the error)
** into the handle, which then wakes its waiters */
static void keep_results(lua_State *L, ghandle *h, bool failed) {
  int n = lua_gettop(L) - 2;
  if (n > 1) {
    lua_createtable(L, n, 0);
    lua_insert(L, 3);
    for (int i = n; i >= 1; i--) lua_rawseti(L, 3, i);
  }
  if (n > 0) lua_setiuservalue(L, 1, 1);
  handle_done(h, n, failed);
}

static int g_entry_k(lua_State *L, int status, lua_KContext ctx) {
  (void)ctx;
  G *g = vm_g(L);
  const char *why = unreported(status);
  if (why) report_error(L, g, why);
  rt *r = vm_p(L)->rt;
  bool failed = status != LUA_OK && status != LUA_YIELD;
  bool intr = failed && interrupted(L, r);
  if (failed && g->grp) { /* the first error cancels the group */
    lua_pushvalue(L, -1);
    group_fail(g->grp, luaL_ref(L, LUA_REGISTRYINDEX));
  }
  ghandle *h = lua_touserdata(L, 1); /* NULL: started by go.start */
  if (h) keep_results(L, h, failed);
  if (failed && (g->ismain || intr)) rt_stop(r, STOP_EXIT, 1, false);
  if (g->ismain) sched_main_done(r);
  return 0;
}

/* g_entry — the body of the main goroutine: [handle, msgh,
** fn, args...] */
static int g_entry(lua_State *L) {
  int nargs = lua_gettop(L) - 3;
  int st = lua_pcallk(L, nargs, LUA_MULTRET, 2, 0, g_entry_k);
  return g_entry_k(L, st, 0);
}

/* ---------- direct goroutines (every one but main) ---------- */

/* A direct goroutine's thread holds [slot, fn, args...] and lua_resume runs
** fn as the thread's first frame, with no entry function and no pcall below
** it (two CallInfos fewer; ~300 instructions less per goroutine than
** g_entry). g->direct says what the slot is and how go_end (rt->g_end),
** from the VM's main thread once the resume returns, ends the goroutine:
**   END_KEEP   the handle (go(fn), group:go, glr_go): fn's results or its
**              error go into it;
**   END_NONE   no slot (go.start): the thread holds [fn, args...] only;
**   END_CLOSE  a value marked to be closed in the thread's base frame
**              (net.serve's conns, go_run_closing), closed however fn ends.
** An error is reported with the traceback of the dead thread (which keeps
** every frame down to the error, as msgh would see it), then
** lua_resetthread closes fn's pending to-be-closed variables, then the
** final error fails the group and is kept in the handle: the order of
** g_entry_k under a pcall. */
enum { END_ENTRY = 0, END_KEEP, END_NONE, END_CLOSE }; /* g->direct */

/* err_text — the text to report for error object e (of thread co): a
** string, its __tostring (called on L), or its type */
static const char *err_text(lua_State *L, lua_State *co, int e) {
  const char *msg = lua_tostring(co, e);
  if (msg) return msg;
  lua_pushvalue(co, e);
  lua_xmove(co, L, 1);
  if (luaL_callmeta(L, -1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
    return lua_tostring(L, -1);
  return lua_pushfstring(L, "(error object is a %s value)", luaL_typename(co, e));
}

/* report_dead — a direct goroutine raised: report it with the traceback of
** its dead thread, which still has every frame down to the error */
static void report_dead(lua_State *L, G *g, lua_State *co, int status) {
  const char *why = unreported(status);
  const char *msg = why ? why : err_text(L, co, lua_gettop(co));
  if (!why && cancelled_error(g, msg)) return; /* its group expected it */
  luaL_traceback(L, co, msg, 0);
  report_error(L, g, lua_tostring(L, -1));
}

/* push_co_top — push (a copy of) co's top value on L */
static void push_co_top(lua_State *L, lua_State *co) {
  lua_pushvalue(co, -1);
  lua_xmove(co, L, 1);
}

/* end_failed — [g, status]: report, close the thread's to-be-closed
** variables (fn's, then an END_CLOSE slot), then fail the group with the
** final error, which it returns. An END_KEEP handle is done before the
** closes, while slot 1 still holds it (it may be unreachable after); its
** error is then the one lua_resetthread leaves at slot 1 of the thread,
** which the handle's uservalue holds (NRES_ON_THREAD). */
static int end_failed(lua_State *L) {
  G *g = lua_touserdata(L, 1);
  int status = (int)lua_tointeger(L, 2);
  lua_State *co = g->L;
  report_dead(L, g, co, status);
  lua_settop(L, 2);
  push_co_top(L, co);
  if (g->direct == END_KEEP) {
    handle_done(g->endarg, NRES_ON_THREAD, true);
    g->endarg = NULL;
  }
  lua_resetthread(co); /* the error, or a failed close's, stays on top */
  push_co_top(L, co);
  if (!lua_rawequal(L, 3, 4)) report_dead(L, g, co, LUA_ERRRUN); /* a close failed */
  lua_settop(L, 4);
  if (g->grp) {
    lua_pushvalue(L, 4);
    group_fail(g->grp, luaL_ref(L, LUA_REGISTRYINDEX));
  }
  if (interrupted(L, vm_p(L)->rt)) rt_stop(vm_p(L)->rt, STOP_EXIT, 1, false);
  return 0;
}

/* end_ok — [g]: the body returned. END_CLOSE: close the value in the base
** frame (an error there reaches this pcall: Lua passes a stopped thread's
** error to its main thread); END_KEEP: return a table of fn's results
** (more than one: they need memory) */
static int end_ok(lua_State *L) {
  G *g = lua_touserdata(L, 1);
  lua_State *co = g->L;
  if (g->direct == END_CLOSE) {
    lua_closeslot(co, 1);
    return 0;
  }
  int n = lua_gettop(co) - 1;
  luaL_checkstack(L, n + 1, "too many results");
  lua_createtable(L, n, 0);
  lua_xmove(co, L, n);
  for (int i = n; i >= 1; i--) lua_rawseti(L, 3, i);
  return 1;
}

/* keep_few — END_KEEP, fn returned n <= 1 values (above the handle, slot
** 1 of g's thread): into the handle with no allocation, so with no pcall */
static void keep_few(G *g, int n) {
  if (n == 1) lua_setiuservalue(g->L, 1, 1); /* else it keeps the thread */
  handle_done(g->endarg, n, false);
  g->endarg = NULL;
}

/* end_protected — go_end's cases that may raise, under lua_pcall: an
** error (end_failed), a close (END_CLOSE), or more than one result to keep
** (end_ok's table: the handle is held on L meanwhile) */
static int end_protected(P *p, G *g, int status) {
  lua_State *L = p->L, *co = g->L;
  bool keep = g->direct == END_KEEP && status == LUA_OK;
  int nres = lua_gettop(co) - 1;
  if (keep) {
    lua_pushvalue(co, 1);
    lua_xmove(co, L, 1);
  }
  lua_pushcfunction(L, status == LUA_OK ? end_ok : end_failed);
  lua_pushlightuserdata(L, g);
  lua_pushinteger(L, status);
  p->curg = g;
  int st = lua_pcall(L, 2, 1, 0);
  p->curg = NULL;
  if (st != LUA_OK) /* out of memory, or a failed close */
    report_error(L, g, lua_isstring(L, -1) ? lua_tostring(L, -1) : "(error object)");
  if (keep) {
    lua_setiuservalue(L, -2, 1); /* the results' table, or the error */
    handle_done(g->endarg, st == LUA_OK ? nres : 1, st != LUA_OK);
  } else if (g->endarg && g->direct == END_KEEP) { /* end_failed stopped early */
    handle_done(g->endarg, NRES_ON_THREAD, true); /* slot 1 still holds it */
    lua_resetthread(co); /* protected: only the closes' error can stay */
  }
  lua_pop(L, 1); /* the handle, or the pcall's result */
  g->endarg = NULL;
  return status == LUA_OK && st == LUA_OK && lua_status(co) == LUA_OK ? LUA_OK : LUA_ERRRUN;
}

/* go_end — rt->g_end. The closes run as the goroutine (p->curg), where
** nothing can yield: a blocking operation (an fd wait, a channel send, a
** sleep) waits on the goroutine's M under hand-off, as in any
** non-yieldable place (serve_spec, go_spec) */
static int go_end(P *p, G *g, int status) {
  if (status == LUA_OK && g->direct == END_NONE) return LUA_OK;
  if (status == LUA_OK && g->direct == END_KEEP) {
    int n = lua_gettop(g->L) - 1;
    if (n <= 1) {
      keep_few(g, n);
      return LUA_OK;
    }
  }
  return end_protected(p, g, status);
}

/* push_handle — a new handle, or nothing (with_handle false: go.start);
** mt: index of the handles' metatable (go()'s upvalue), 0 to look it up */
static ghandle *push_handle(lua_State *L, bool with_handle, int mt) {
  if (!with_handle) return NULL;
  ghandle *h = lua_newuserdatauv(L, sizeof *h, 1);
  h->state = H_RUNNING;
  h->nres = 0;
  chan_init(&h->waiters, 0);
  if (mt) {
    lua_pushvalue(L, mt);
    lua_setmetatable(L, -2);
  } else {
    class_set(L, &HANDLE_KEY);
  }
  return h;
}

/* reserve_args — room for n values on a new G's thread: the thread and
** its stack are the scheduler's, never refused (memlimit.h), so nothing
** raises once the G exists */
static void reserve_args(P *p, lua_State *co, int n) {
  G *curg = p->curg;
  p->curg = NULL;
  bool room = lua_checkstack(co, n);
  p->curg = curg;
  if (!room) rt_throw("go: no memory for a goroutine's arguments");
}

/* move_fn_args — fn (at fnidx) and the nargs values above it onto co */
static void move_fn_args(lua_State *L, lua_State *co, int fnidx, int nargs) {
  for (int i = 0; i <= nargs; i++) {
    lua_pushvalue(L, fnidx + i);
    lua_xmove(L, co, 1);
  }
}

/* give_fn_args — fn and its nargs arguments, the top of L (under the
** handle, if any, which takes the slot below fn), onto co in one move */
static void give_fn_args(lua_State *L, lua_State *co, int nargs, bool handle) {
  if (handle) lua_replace(L, -(nargs + 3));
  lua_xmove(L, co, nargs + 1);
}

/* start — go_start; with_handle false: no handle pushed. give: fn and its
** args are L's top (under the handle) and the slot below fn is free: they
** move to the G instead of being copied (go.start). The main
** goroutine runs under g_entry (its error ends the program, with lua's
** traceback); every other is direct (END_KEEP or END_NONE) */
static G *start(lua_State *L, int fnidx, int nargs, int ismain, bool with_handle, int mt,
                bool give) {
  P *p = vm_p(L);
  /* what may raise (the handle: a goroutine's memory) comes before the G,
  ** which nothing would free if an error left here (GOLUA_ALLOCFAIL + ASan
  ** found the leak) */
  ghandle *h = push_handle(L, with_handle, mt);
  G *g = g_new(p);
  lua_State *co = g->L;
  reserve_args(p, co, nargs + 4);
  if (ismain) {
    lua_pushcfunction(co, g_entry);
    lua_pushvalue(L, -1);
    lua_xmove(L, co, 1); /* handle */
    lua_pushcfunction(co, msgh);
    g->nargs = nargs + 3;
  } else {
    if (h) { /* the handle holds the thread until it ends (end_failed) */
      lua_pushvalue(L, -1);
      lua_xmove(L, co, 1);
      lua_pushthread(co);
      lua_setiuservalue(co, 1, 1);
      g->endarg = h;
    }
    g->nargs = nargs;
    g->direct = h ? END_KEEP : END_NONE;
  }
  if (give) give_fn_args(L, co, nargs, h != NULL);
  else move_fn_args(L, co, fnidx, nargs);
  g->ismain = ismain != 0;
  sched_start(p, g);
  if (h) h->id = g->id;
  return g;
}

G *go_start(lua_State *L, int fnidx, int nargs, int ismain) {
  return start(L, fnidx, nargs, ismain, true, 0, false);
}

int go_run(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  start(L, 1, lua_gettop(L) - 1, 0, false, 0, true);
  return 0;
}

int go_run_closing(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (luaL_getmetafield(L, 2, "__close") == LUA_TNIL)
    return luaL_typeerror(L, 2, "closable value");
  lua_pop(L, 1);
  int nargs = lua_gettop(L) - 1;
  G *g = g_new(vm_p(L)); /* nothing below raises (see start) */
  lua_State *co = g->L;
  reserve_args(vm_p(L), co, nargs + 2);
  lua_pushvalue(L, 2);
  lua_xmove(L, co, 1);
  lua_toclose(co, 1); /* it has a __close: cannot raise */
  lua_xmove(L, co, nargs + 1); /* fn, args */
  g->nargs = nargs;
  g->ismain = false;
  g->direct = END_CLOSE;
  sched_start(vm_p(L), g);
  return 0;
}

/* go(fn, ...) via __call: arg 1 is go; upvalue 1: the handles' metatable */
static int go_call(lua_State *L) {
  luaL_checktype(L, 2, LUA_TFUNCTION);
  /* copied, not given: with no arguments (the usual go(function() end))
  ** the copy is cheaper than making room for the handle below fn */
  start(L, 2, lua_gettop(L) - 2, 0, true, lua_upvalueindex(1), false);
  return 1;
}

void go_push_call(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &HANDLE_KEY);
  lua_pushcclosure(L, go_call, 1);
}

void glr_go(lua_State *L, int nargs) {
  int fnidx = lua_gettop(L) - nargs;
  luaL_checktype(L, fnidx, LUA_TFUNCTION);
  go_start(L, fnidx, nargs, 0);
  lua_replace(L, fnidx);
  lua_settop(L, fnidx);
}

/* ---------- go.wait ---------- */

/* push_thread_error — a direct goroutine's error: slot 1 of its thread */
static int push_thread_error(lua_State *L, int hidx) {
  lua_pushboolean(L, 0);
  lua_getiuservalue(L, hidx, 1);
  lua_State *t = lua_tothread(L, -1);
  if (t) { /* else debug.setuservalue replaced it: no error to give */
    lua_pushvalue(t, 1);
    lua_xmove(t, L, 1);
  } else {
    lua_pushnil(L);
  }
  lua_remove(L, -2);
  return 2;
}

static int push_results(lua_State *L, ghandle *h, int hidx) {
  int n = h->nres;
  if (n == NRES_ON_THREAD) return push_thread_error(L, hidx);
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

void go_waiter_woke(lua_State *L) {
  gcold *c = vm_p(L)->curg->cold;
  chan_dequeue(&c->sg);
  c->sel = NULL;
  if (c->gsel.fired == SEL_CANCELLED) sched_raise_cancelled(L);
}

int go_park_waiter(lua_State *L, chan *waiters, double timeout, const char *why,
                   lua_KFunction k) {
  G *g = vm_p(L)->curg;
  gcold *c = gcold_of(g);
  c->sg = (sudog){.g = g, .isrecv = true, .caseidx = 0};
  atomic_store(&c->gsel.done, false);
  c->gsel.fired = -1;
  c->sg.sel = &c->gsel;
  chan_enqueue(waiters, &c->sg);
  if (timeout > 0) {
    c->sel = &c->gsel;
    sched_arm_gtimer(vm_p(L), g, deadline_from_seconds(timeout));
  }
  sched_park_on(L, WK_SEL, &c->gsel);
  return sched_park(L, NULL, NULL, why, timeout > 0 ? PARK_WORLD : PARK_SYNC, 0, k);
}

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  go_waiter_woke(L);
  ghandle *h = lua_touserdata(L, 1);
  if (h->state == H_RUNNING) {
    lua_pushnil(L);
    lua_pushliteral(L, ERRSTR_TIMEOUT);
    return 2;
  }
  return push_results(L, h, 1);
}

/* handle_wait — go.wait on a goroutine of this VM: queue on its waiters */
static int handle_wait(lua_State *L) {
  ghandle *h = class_check(L, 1, &HANDLE_KEY, HANDLE_MT);
  double timeout = lua_isnoneornil(L, 2) ? -1 : args_seconds(L, 2);
  /* before the state: a failing goroutine's __close runs with its handle
  ** already failed, while slot 1 of its thread still holds the handle */
  G *self = vm_p(L)->curg;
  if (self && self->id == h->id)
    return go_raise_waitself(L);
  if (h->state != H_RUNNING) return push_results(L, h, 1);
  if (timeout == 0) {
    lua_pushnil(L);
    lua_pushliteral(L, ERRSTR_TIMEOUT);
    return 2;
  }
  /* (outside any goroutine: glr_cannot_block says "not inside a goroutine") */
  if (!sched_can_wait(L)) return glr_cannot_block(L, "go.wait");
  sched_check_cancel(L);
  lua_settop(L, 1);
  return go_park_waiter(L, &h->waiters, timeout, "wait", wait_k);
}

int go_wait(lua_State *L) {
  lua_CFunction wait = NULL;
  if (lua_type(L, 1) == LUA_TUSERDATA && lua_getmetatable(L, 1)) {
    lua_rawgetp(L, -1, &WAIT_KEY);
    wait = lua_tocfunction(L, -1);
    lua_pop(L, 2);
  }
  if (!wait) return luaL_typeerror(L, 1, HANDLE_MT);
  return wait(L);
}

int go_raise_waitself(lua_State *L) {
  return luaL_error(L, "go.wait: a goroutine cannot wait for itself");
}

void go_setwait(lua_State *L, lua_CFunction wait) {
  lua_pushcfunction(L, wait);
  lua_rawsetp(L, -2, &WAIT_KEY);
}

/* ---------- the handle class ---------- */

static int h_tostring(lua_State *L) {
  ghandle *h = class_check(L, 1, &HANDLE_KEY, HANDLE_MT);
  static const char *st[] = {"running", "done", "failed"};
  lua_pushfstring(L, "goroutine %I (%s)", (lua_Integer)h->id, st[h->state]);
  return 1;
}

static int h_id(lua_State *L) {
  ghandle *h = class_check(L, 1, &HANDLE_KEY, HANDLE_MT);
  lua_pushinteger(L, (lua_Integer)h->id);
  return 1;
}

void go_open_handles(lua_State *L) {
  vm_p(L)->rt->g_end = go_end;
  static const luaL_Reg methods[] = {{"id", h_id}, {NULL, NULL}};
  /* no __gc: `waiters` has no buffer (chan_init with cap 0 allocates
  ** nothing), so a handle owns no C memory, and a finalizer would make every
  ** goroutine's handle survive one more GC cycle (Lua resurrects finalized
  ** objects) and cost a call: about a fifth of go()'s time */
  static const luaL_Reg meta[] = {{"__tostring", h_tostring}, {NULL, NULL}};
  class_define(L, &HANDLE_KEY, HANDLE_MT, methods, meta);
  go_setwait(L, handle_wait);
  lua_pop(L, 1);
}
