/*
** lspawn.c — go.spawn: portable goroutines (runtime/HACKING.md, "Portable goroutines").
**
** A pgrec is a C record (module, function, copied arguments, the spawner's
** package paths) queued on the spawner's P; any P may take it (stealing)
** and start it as a goroutine of its own VM (start_portable, on that P's
** M). The results are copied back into the record; goroutines waiting in
** go.wait (in any VM) are woken with glr_ready; go.wait finds portable_wait
** through the handle's class (go_setwait, gohandle.h).
**
** Invariants: rec->lock guards state, result and waiters; the record is
** reference counted (the handle; the running goroutine, through a prun userdata
** on its stack, so a goroutine still blocked when its VM closes releases it
** too) and freed by the last release. A waiter lives in a userdata on its goroutine's stack and is
** claimed exactly once (finish or timeout) through an atomic flag.
*/
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "../runtime/pgq.h"
#include "../runtime/sched.h"
#include "../runtime/steal.h"
#include "../runtime/timer.h"
#include "classes.h"
#include "errstr.h"
#include "gohandle.h"
#include "goluarun.h"
#include "lspawn.h"
#include "vcopy.h"

#define PHANDLE_MT "goluarun.portable"
static const char PHANDLE_KEY = 'p';
static const char DRIVER_KEY = 'd';
static const char PRUN_KEY = 'r';

enum { PG_QUEUED = 0, PG_RUNNING, PG_OK, PG_ERR };

typedef struct pwaiter pwaiter;
struct pwaiter {
  timer t;                /* timeout (owner M of the waiter): first, the
                          ** timer callback casts it back */
  wcancel cancel;         /* a go.group cancel claims it (pwaiter_detach) */
  glr_g *g;
  _Atomic int claimed;
  bool timedout;
  bool cancelled;         /* the cancel won the claim: pwait_k raises */
  pwaiter *next;          /* guarded by rec->lock */
};

typedef struct pgrec {
  portable q;             /* queue link: first member */
  pthread_mutex_t lock;
  _Atomic int refs;
  int state;              /* guarded by lock */
  char *mod, *fn, *path, *cpath;
  vbuf args, result;      /* result: ok-flag then values (guarded by lock) */
  pwaiter *waiters;       /* guarded by lock */
  int procid;             /* the P that ran it */
  uint64_t goid;          /* guarded by lock: the goroutine running it (0:
                          ** not started) */
} pgrec;

static void rec_release(pgrec *r) {
  if (atomic_fetch_sub(&r->refs, 1) != 1) return;
  free(r->mod);
  free(r->fn);
  free(r->path);
  free(r->cpath);
  vbuf_free(&r->args);
  vbuf_free(&r->result);
  pthread_mutex_destroy(&r->lock);
  free(r);
}

/* prun — the running goroutine's ref on its record: a userdata on its
** stack, released by finish or, if the goroutine never finishes (still
** blocked when the VM is closed at exit), by __gc */
typedef struct prun {
  pgrec *r; /* NULL once released */
} prun;

static int prun_gc(lua_State *L) {
  prun *run = lua_touserdata(L, 1);
  if (run->r) rec_release(run->r);
  run->r = NULL;
  return 0;
}

static char *dupstr(const char *s) {
  char *d = strdup(s ? s : "");
  if (!d) rt_throw("out of memory");
  return d;
}

/* ---------- spawning ---------- */

/* on_path — mod is loaded or preloaded here, or a file on package.path or
** cpath: what go.spawn asked before, and cheap (no file is read) */
static bool on_path(lua_State *L, const char *mod) {
  int top = lua_gettop(L);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  bool found = lua_getfield(L, -1, mod) != LUA_TNIL;
  lua_getglobal(L, "package");
  int pkg = lua_gettop(L);
  if (!found && lua_getfield(L, pkg, "preload") == LUA_TTABLE)
    found = lua_getfield(L, -1, mod) != LUA_TNIL;
  for (int i = 0; i < 2 && !found; i++) {
    lua_getfield(L, pkg, "searchpath");
    lua_pushstring(L, mod);
    lua_getfield(L, pkg, i == 0 ? "path" : "cpath");
    lua_call(L, 2, 1);
    found = !lua_isnil(L, -1);
  }
  lua_settop(L, top);
  return found;
}

/* check_module — raises unless require(mod) would find it here. Past
** on_path, the searchers themselves are asked (goluarun's own library is
** found by the last one; that compiles the file, so only then) */
static void check_module(lua_State *L, const char *mod) {
  if (on_path(L, mod)) return;
  int top = lua_gettop(L);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchers");
  bool found = false;
  for (lua_Integer i = 1; !found && lua_rawgeti(L, -1, i) == LUA_TFUNCTION; i++) {
    lua_pushstring(L, mod);
    lua_call(L, 1, 1);
    found = lua_isfunction(L, -1);
    lua_pop(L, 1);
  }
  lua_settop(L, top);
  if (!found) luaL_error(L, "go.spawn: module '%s' not found", mod);
}

static void paths(lua_State *L, pgrec *r) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  r->path = dupstr(lua_tostring(L, -1));
  lua_getfield(L, -2, "cpath");
  r->cpath = dupstr(lua_tostring(L, -1));
  lua_pop(L, 3);
}

/* spawn — go.spawn / go.spawn_on: the target is at index `at`, its
** arguments follow; pin (or NULL) is the only P allowed to take it */
static int spawn(lua_State *L, int at, P *pin) {
  const char *target = luaL_checkstring(L, at);
  const char *colon = strchr(target, ':');
  size_t ml = colon ? (size_t)(colon - target) : strlen(target);
  luaL_argcheck(L, ml > 0 && (!colon || colon[1]), at, "want \"module:function\"");
  int nargs = lua_gettop(L) - at;
  lua_pushlstring(L, target, ml);
  const char *mod = lua_tostring(L, -1);
  check_module(L, mod);
  vbuf args = {0};
  vcopy_encode(L, at + 1, nargs, &args, "go.spawn"); /* may raise: nothing to free yet */
  pgrec *r = calloc(1, sizeof *r);
  if (!r) {
    vbuf_free(&args);
    return luaL_error(L, ERRSTR_NOMEM);
  }
  r->args = args;
  pthread_mutex_init(&r->lock, NULL);
  atomic_store(&r->refs, 2); /* the handle and the run */
  r->mod = dupstr(mod);
  r->fn = dupstr(colon ? colon + 1 : "");
  paths(L, r);
  pgrec **h = lua_newuserdatauv(L, sizeof *h, 0);
  *h = r;
  class_set(L, &PHANDLE_KEY);
  if (pin) steal_spawn_on(pin, &r->q);
  else steal_spawn(vm_p(L), &r->q);
  return 1;
}

static int go_spawn(lua_State *L) { return spawn(L, 1, NULL); }


/* go.spawn_on(p, "mod:fn", ...) — as go.spawn, started by P p (0-based)
** and never stolen: per-core servers and shards */
static int go_spawn_on(lua_State *L) {
  rt *r = vm_p(L)->rt;
  lua_Integer p = luaL_checkinteger(L, 1);
  luaL_argcheck(L, p >= 0 && p < r->nprocs, 1, "no such P");
  return spawn(L, 2, r->ps[p]);
}

/* ---------- running, in the taking P's VM ---------- */

/* prepare(rec) -> fn, args: the module loaded with the spawner's paths */
static int l_prepare(lua_State *L) {
  pgrec *r = ((prun *)lua_touserdata(L, 1))->r;
  lua_getglobal(L, "package");
  int pkg = lua_gettop(L);
  lua_getfield(L, pkg, "path");
  lua_getfield(L, pkg, "cpath");
  lua_pushstring(L, r->path);
  lua_setfield(L, pkg, "path");
  lua_pushstring(L, r->cpath);
  lua_setfield(L, pkg, "cpath");
  lua_getglobal(L, "require");
  lua_pushstring(L, r->mod);
  int st = lua_pcall(L, 1, 1, 0);
  lua_pushvalue(L, pkg + 1); /* restore this VM's paths */
  lua_setfield(L, pkg, "path");
  lua_pushvalue(L, pkg + 2);
  lua_setfield(L, pkg, "cpath");
  if (st != LUA_OK) return lua_error(L);
  if (r->fn[0]) lua_getfield(L, -1, r->fn);
  else if (!lua_isfunction(L, -1)) lua_getfield(L, -1, "handle");
  if (!lua_isfunction(L, -1))
    return luaL_error(L, "go.spawn: %s%s%s is not a function", r->mod, r->fn[0] ? ":" : "",
                      r->fn[0] ? r->fn : " (nor its 'handle')");
  lua_createtable(L, 0, 1);
  int t = lua_gettop(L);
  int n = vcopy_decode(L, &r->args);
  vbuf_free(&r->args); /* decoded once: drop its shared channel refs now */
  for (int i = n; i >= 1; i--) lua_rawseti(L, t, i);
  lua_pushinteger(L, n);
  lua_setfield(L, t, "n");
  return 2;
}

static void wake_waiters(pgrec *r) {
  for (pwaiter *w = r->waiters; w; w = w->next) {
    int expect = 0;
    if (atomic_compare_exchange_strong(&w->claimed, &expect, 1)) glr_ready(w->g);
  }
  r->waiters = NULL;
}

/* finish(rec, ok, ...) — copy [ok, results...] back and wake the waiters;
** raises (before touching the record) if a result cannot be copied */
static int l_finish(lua_State *L) {
  prun *run = lua_touserdata(L, 1);
  pgrec *r = run->r;
  int ok = lua_toboolean(L, 2);
  vbuf b = {0};
  vcopy_encode(L, 2, lua_gettop(L) - 1, &b, "go.spawn result");
  pthread_mutex_lock(&r->lock);
  r->result = b;
  r->state = ok ? PG_OK : PG_ERR;
  wake_waiters(r);
  pthread_mutex_unlock(&r->lock);
  run->r = NULL;
  rec_release(r);
  return 0;
}

static const char driver_src[] =
    "local prepare, finish = ...\n"
    "local function report(e)\n"
    "  io.stderr:write('goroutine ', go.id(), ': ', debug.traceback(tostring(e), 2), '\\n')\n"
    "  return e\n"
    "end\n"
    "return function(rec)\n"
    "  local okp, fn, args = pcall(prepare, rec)\n"
    "  if not okp then report(fn); return finish(rec, false, tostring(fn)) end\n"
    "  local r = table.pack(xpcall(fn, report, table.unpack(args, 1, args.n)))\n"
    "  if not r[1] then r[2] = tostring(r[2]) end\n"
    "  local okf, e = pcall(finish, rec, table.unpack(r, 1, r.n))\n"
    "  if not okf then finish(rec, false, tostring(e)) end\n"
    "end\n";

static void start_portable(P *p, portable *q) {
  pgrec *r = (pgrec *)q;
  lua_State *L = p->L;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &DRIVER_KEY);
  prun *run = lua_newuserdatauv(L, sizeof *run, 0);
  run->r = r;
  class_set(L, &PRUN_KEY);
  G *g = go_start(L, lua_gettop(L) - 1, 1, 0);
  lua_pop(L, 3);
  /* only now: the G counts as progress, so the record may stop counting
  ** (a goroutine that sees procid and parks must not make n_progress 0) */
  steal_started(p->rt);
  pthread_mutex_lock(&r->lock);
  r->state = PG_RUNNING;
  r->procid = p->id;
  r->goid = g->id;
  pthread_mutex_unlock(&r->lock);
}

/* ---------- go.wait on a portable handle ---------- */

static pgrec *check_phandle(lua_State *L, int idx) {
  return *(pgrec **)class_check(L, idx, &PHANDLE_KEY, PHANDLE_MT);
}

static int push_result(lua_State *L, pgrec *r) {
  return vcopy_decode(L, &r->result); /* ok flag, then values */
}

static void waiter_timeout(timer *t, void *arg) {
  (void)arg;
  pwaiter *w = (pwaiter *)t;
  int expect = 0;
  if (atomic_compare_exchange_strong(&w->claimed, &expect, 1)) {
    w->timedout = true;
    glr_ready(w->g);
  }
}

/* pwaiter_detach — a go.group cancel races the finisher and the timer */
static bool pwaiter_detach(wcancel *wc) {
  pwaiter *w = (pwaiter *)((char *)wc - offsetof(pwaiter, cancel));
  int expect = 0;
  if (!atomic_compare_exchange_strong(&w->claimed, &expect, 1)) return false;
  w->cancelled = true;
  return true;
}

static int pwait_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  pgrec *r = check_phandle(L, 1);
  pwaiter *w = lua_touserdata(L, 3);
  timer_disarm(&vm_p(L)->timers, &w->t);
  pthread_mutex_lock(&r->lock);
  for (pwaiter **pp = &r->waiters; *pp; pp = &(*pp)->next)
    if (*pp == w) { *pp = w->next; break; }
  bool done = r->state >= PG_OK;
  pthread_mutex_unlock(&r->lock);
  if (w->cancelled) return glr_raise_cancelled(L);
  if (!done) {
    lua_pushnil(L);
    lua_pushliteral(L, ERRSTR_TIMEOUT);
    return 2;
  }
  return push_result(L, r);
}

/* portable_wait — go.wait on a portable handle (its class's wait) */
static int portable_wait(lua_State *L) {
  pgrec *r = check_phandle(L, 1);
  double timeout = lua_isnoneornil(L, 2) ? -1 : luaL_checknumber(L, 2);
  lua_settop(L, 2);
  uint64_t self = glr_goid(L);
  pthread_mutex_lock(&r->lock);
  bool done = r->state >= PG_OK, own = self != 0 && r->goid == self;
  pthread_mutex_unlock(&r->lock);
  if (own) return go_raise_waitself(L);
  if (done) return push_result(L, r);
  if (timeout == 0) {
    lua_pushnil(L);
    lua_pushliteral(L, ERRSTR_TIMEOUT);
    return 2;
  }
  if (!glr_canblock(L)) return glr_cannot_block(L, "go.wait");
  if (glr_cancelled(L)) return glr_raise_cancelled(L);
  pwaiter *w = lua_newuserdatauv(L, sizeof *w, 0);
  memset(w, 0, sizeof *w);
  w->cancel.detach = pwaiter_detach;
  timer_init(&w->t, waiter_timeout, NULL);
  w->g = glr_self(L);
  pthread_mutex_lock(&r->lock);
  done = r->state >= PG_OK;
  if (!done) {
    w->next = r->waiters;
    r->waiters = w;
  }
  pthread_mutex_unlock(&r->lock);
  if (done) return push_result(L, r);
  if (timeout > 0) timer_arm(&vm_p(L)->timers, &w->t, glr_deadline(timeout));
  sched_park_on(L, WK_CALL, &w->cancel);
  return glr_park(L, "wait", 0, pwait_k);
}

static int ph_gc(lua_State *L) {
  pgrec **h = class_check(L, 1, &PHANDLE_KEY, PHANDLE_MT);
  if (*h) rec_release(*h);
  *h = NULL;
  return 0;
}

static int ph_tostring(lua_State *L) {
  pgrec *r = check_phandle(L, 1);
  pthread_mutex_lock(&r->lock);
  static const char *st[] = {"queued", "running", "done", "failed"};
  lua_pushfstring(L, "portable goroutine %s:%s (%s, P %d)", r->mod, r->fn, st[r->state],
                  r->procid);
  pthread_mutex_unlock(&r->lock);
  return 1;
}

static int ph_procid(lua_State *L) {
  pgrec *r = check_phandle(L, 1);
  pthread_mutex_lock(&r->lock);
  int started = r->state >= PG_RUNNING;
  int id = r->procid;
  pthread_mutex_unlock(&r->lock);
  if (started) lua_pushinteger(L, id);
  else lua_pushnil(L);
  return 1;
}

void lspawn_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"procid", ph_procid}, {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", ph_gc}, {"__tostring", ph_tostring}, {NULL, NULL}};
  class_define(L, &PHANDLE_KEY, PHANDLE_MT, methods, meta);
  go_setwait(L, portable_wait);
  class_new(L, &PRUN_KEY, "goluarun.portablerun");
  lua_pushcfunction(L, prun_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 2);
  if (luaL_loadbuffer(L, driver_src, sizeof driver_src - 1, "=go.spawn") != LUA_OK)
    lua_error(L);
  lua_pushcfunction(L, l_prepare);
  lua_pushcfunction(L, l_finish);
  lua_call(L, 2, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &DRIVER_KEY);
  lua_pushcfunction(L, go_spawn);
  lua_setfield(L, -2, "spawn");
  lua_pushcfunction(L, go_spawn_on);
  lua_setfield(L, -2, "spawn_on");

  vm_p(L)->rt->start_portable = start_portable;
}
