/*
** lgo.c — the `go` module: goroutines (go, go.wait, sleep, yield, id...),
** local channels with select and after, stats and exit.
**
** A goroutine handle (metatable goluarun.g) outlives its G: the G keeps the
** handle on its own stack while it runs and stores its results (or error)
** in it when it ends. Channel values live in the channel's uservalue table
** under uint64 keys; the C core (runtime/chan.c) moves only the keys.
** go.select also takes shared channels (lschan.c): such a select locks its
** shared channels (address order) for its try pass and enqueue, waits with
** its own timer, and every claim of its selstate is a CAS (other threads
** may claim it). Everything here runs on the M holding the VM's P.
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
#include "../runtime/sysmon.h"
#include "bindings.h"
#include "goluarun.h"

#define HANDLE_MT "goluarun.g"
#define CHAN_MT "goluarun.chan"
static const char HANDLE_KEY = 'h', CHAN_KEY = 'c', SELFRAME_KEY = 'f';

enum { H_RUNNING = 0, H_OK, H_ERR };

typedef struct ghandle {
  uint64_t id;
  int state;
  int nres;     /* results: 0, 1 (the uservalue itself) or a table {n=} */
  chan waiters; /* only its recvq is used: goroutines in go.wait */
} ghandle;

/* Values live in the channel's uservalue table under small integer keys,
** recycled through a free list so they stay dense (the table's array part:
** no hashing, no rehash as keys grow). */
typedef struct lchan {
  chan c;
  uint64_t nextkey;   /* highest key ever used */
  uint64_t *freekeys; /* keys whose slot is empty */
  size_t nfree, capfree;
} lchan;

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

static uint32_t rnd(void) {
  static _Thread_local uint32_t x = 0;
  if (!x) x = (uint32_t)mono_now() | 1;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return x;
}

static void wake_sudog(sudog *sg, void *arg) {
  (void)arg;
  G *g = sg->g;
  sched_ready(g->tag.p, g, false);
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
  chan_close(&h->waiters, wake_sudog, NULL);
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

/* ---------- channels ---------- */

static lchan *check_chan(lua_State *L, int idx) {
  return glr_checkclass(L, idx, &CHAN_KEY, CHAN_MT);
}

static void push_new_chan(lua_State *L, lua_Integer cap) {
  lchan *c = lua_newuserdatauv(L, sizeof *c, 1);
  chan_init(&c->c, (uint32_t)cap);
  c->nextkey = 0;
  c->freekeys = NULL;
  c->nfree = c->capfree = 0;
  lua_newtable(L);
  lua_setiuservalue(L, -2, 1);
  glr_setclass(L, &CHAN_KEY);
}

static int go_chan(lua_State *L) {
  lua_Integer cap = luaL_optinteger(L, 1, 0);
  luaL_argcheck(L, cap >= 0 && cap <= (1 << 30), 1, "capacity out of range");
  push_new_chan(L, cap);
  return 1;
}

static void free_key(lchan *c, uint64_t key) {
  if (c->nfree == c->capfree) {
    size_t ncap = c->capfree ? c->capfree * 2 : 8;
    uint64_t *n = realloc(c->freekeys, ncap * sizeof *n);
    if (!n) return; /* the key is just not reused */
    c->freekeys = n;
    c->capfree = ncap;
  }
  c->freekeys[c->nfree++] = key;
}

/* store value at vidx in chan (userdata at cidx); returns its key */
static uint64_t store_value(lua_State *L, int cidx, lchan *c, int vidx) {
  uint64_t key = c->nfree ? c->freekeys[--c->nfree] : ++c->nextkey;
  lua_getiuservalue(L, cidx, 1);
  lua_pushvalue(L, vidx);
  lua_rawseti(L, -2, (lua_Integer)key);
  lua_pop(L, 1);
  return key;
}

/* push and forget the value under key */
static void take_value(lua_State *L, int cidx, uint64_t key) {
  lua_getiuservalue(L, cidx, 1);
  lua_rawgeti(L, -1, (lua_Integer)key);
  lua_pushnil(L);
  lua_rawseti(L, -3, (lua_Integer)key);
  lua_remove(L, -2);
  free_key(lua_touserdata(L, cidx), key);
}

static void drop_value(lua_State *L, int cidx, uint64_t key) {
  take_value(L, cidx, key);
  lua_pop(L, 1);
}

static void ready_woken(lua_State *L, sudog *w) {
  if (w) sched_ready(vm_p(L), w->g, true);
}

static int send_k(lua_State *L, int status, lua_KContext key) {
  (void)status;
  G *g = vm_p(L)->curg;
  if (!g->sg.ok) {
    drop_value(L, 1, (uint64_t)key);
    return luaL_error(L, "send on closed channel");
  }
  return 0;
}

static int ch_send(lua_State *L) {
  lchan *c = check_chan(L, 1);
  luaL_checkany(L, 2);
  lua_settop(L, 2);
  uint64_t key = store_value(L, 1, c, 2);
  sudog *w;
  int r = chan_trysend(&c->c, key, &w);
  if (r == CHAN_CLOSED) {
    drop_value(L, 1, key);
    return luaL_error(L, "send on closed channel");
  }
  if (r == CHAN_OK) {
    ready_woken(L, w);
    return 0;
  }
  G *g = cur_g(L, "send");
  if (!sched_can_park(L)) {
    drop_value(L, 1, key);
    return glr_cannot_block_error(L, "send");
  }
  g->sg = (sudog){.g = g, .elem = key, .isrecv = false};
  chan_enqueue(&c->c, &g->sg);
  return sched_park(L, NULL, NULL, "chan send", PARK_SYNC, (lua_KContext)key, send_k);
}

static int recv_result(lua_State *L, bool ok, uint64_t key) {
  if (!ok) {
    lua_pushnil(L);
    lua_pushboolean(L, 0);
    return 2;
  }
  take_value(L, 1, key);
  lua_pushboolean(L, 1);
  return 2;
}

static int recv_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  G *g = vm_p(L)->curg;
  return recv_result(L, g->sg.ok, g->sg.elem);
}

static int ch_recv(lua_State *L) {
  lchan *c = check_chan(L, 1);
  lua_settop(L, 1);
  uint64_t key;
  bool ok;
  sudog *w;
  if (chan_tryrecv(&c->c, &key, &ok, &w) == CHAN_OK) {
    ready_woken(L, w);
    return recv_result(L, ok, key);
  }
  G *g = cur_g(L, "recv");
  need_park(L, "recv");
  g->sg = (sudog){.g = g, .isrecv = true};
  chan_enqueue(&c->c, &g->sg);
  return sched_park(L, NULL, NULL, "chan receive", PARK_SYNC, 0, recv_k);
}

static int ch_close(lua_State *L) {
  lchan *c = check_chan(L, 1);
  if (chan_close(&c->c, wake_sudog, NULL) == CHAN_CLOSED)
    return luaL_error(L, "close of closed channel");
  return 0;
}

static int ch_len(lua_State *L) {
  lua_pushinteger(L, check_chan(L, 1)->c.count);
  return 1;
}

static int ch_cap(lua_State *L) {
  lua_pushinteger(L, check_chan(L, 1)->c.cap);
  return 1;
}

static int ch_gc(lua_State *L) {
  lchan *c = check_chan(L, 1);
  chan_free(&c->c);
  free(c->freekeys);
  c->freekeys = NULL;
  c->nfree = c->capfree = 0;
  return 0;
}

static int ch_tostring(lua_State *L) {
  lchan *c = check_chan(L, 1);
  lua_pushfstring(L, "chan (%d/%d%s)", (int)c->c.count, (int)c->c.cap,
                  c->c.closed ? ", closed" : "");
  return 1;
}

/* ---------- select ---------- */

typedef struct selcase {
  lchan *c;   /* a local channel, or */
  schan *sc;  /* a shared one */
  int cidx;   /* stack index of the channel (in the cases' scratch area) */
  bool isrecv;
  uint64_t key; /* send value key, once stored */
} selcase;

/* parse cases into sc[]; pushes each channel on the stack (for indices);
** returns how many are shared */
static int parse_cases(lua_State *L, selcase *sc, int n) {
  int nshared = 0;
  for (int i = 0; i < n; i++) {
    if (lua_rawgeti(L, 1, i + 1) != LUA_TTABLE)
      return luaL_error(L, "go.select: case %d is not a table", i + 1);
    int t = lua_gettop(L);
    lua_rawgeti(L, t, 1);
    sc[i].c = glr_testclass(L, -1, &CHAN_KEY);
    sc[i].sc = sc[i].c ? NULL : lschan_test(L, -1);
    if (!sc[i].c && !sc[i].sc)
      return luaL_error(L, "go.select: case %d has no channel", i + 1);
    nshared += sc[i].sc != NULL;
    lua_rawgeti(L, t, 2);
    const char *op = lua_tostring(L, -1);
    if (!op || (strcmp(op, "recv") != 0 && strcmp(op, "send") != 0))
      return luaL_error(L, "go.select: case %d: op must be \"recv\" or \"send\"", i + 1);
    sc[i].isrecv = op[0] == 'r';
    lua_pop(L, 1);
    lua_replace(L, t); /* keep the channel where the case table was */
    sc[i].cidx = t;
    sc[i].key = 0;
  }
  return nshared;
}

static int select_fire(lua_State *L, selcase *sc, int i, bool ok, uint64_t key) {
  if (!sc[i].isrecv) {
    if (!ok) return luaL_error(L, "send on closed channel");
    lua_pushinteger(L, i + 1);
    return 1;
  }
  lua_pushinteger(L, i + 1);
  if (ok) take_value(L, sc[i].cidx, key);
  else lua_pushnil(L);
  lua_pushboolean(L, ok);
  return 3;
}

/* select_try — one non-blocking pass in random order; >=0 case fired */
static int select_try(lua_State *L, selcase *sc, int n, int *nret) {
  uint32_t start = n ? rnd() % (uint32_t)n : 0;
  for (int j = 0; j < n; j++) {
    int i = (int)((start + (uint32_t)j) % (uint32_t)n);
    sudog *w;
    if (sc[i].isrecv) {
      uint64_t key;
      bool ok;
      if (chan_tryrecv(&sc[i].c->c, &key, &ok, &w) != CHAN_OK) continue;
      ready_woken(L, w);
      *nret = select_fire(L, sc, i, ok, key);
      return i;
    }
    if (sc[i].c->c.closed) return luaL_error(L, "send on closed channel");
    lua_rawgeti(L, 1, i + 1);
    lua_rawgeti(L, -1, 3);
    uint64_t key = store_value(L, sc[i].cidx, sc[i].c, lua_gettop(L));
    lua_pop(L, 2);
    if (chan_trysend(&sc[i].c->c, key, &w) == CHAN_OK) {
      ready_woken(L, w);
      *nret = select_fire(L, sc, i, true, key);
      return i;
    }
    drop_value(L, sc[i].cidx, key);
  }
  return -1;
}

/* stack during a blocking select: 1 cases, 2 timeout, 3 selcase[] udata,
** 4 sudog[] udata, 5.. channels */
static int select_k(lua_State *L, int status, lua_KContext n_) {
  (void)status;
  int n = (int)n_;
  G *g = vm_p(L)->curg;
  selcase *sc = lua_touserdata(L, 3);
  sudog *sgs = lua_touserdata(L, 4);
  for (int i = 0; i < n; i++) chan_dequeue(&sgs[i]);
  g->sel = NULL;
  int fired = g->gsel.fired;
  for (int i = 0; i < n; i++)
    if (!sc[i].isrecv && i != fired) drop_value(L, sc[i].cidx, sc[i].key);
  if (fired < 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  }
  if (!sc[fired].isrecv && !sgs[fired].ok) drop_value(L, sc[fired].cidx, sc[fired].key);
  return select_fire(L, sc, fired, sgs[fired].ok, sgs[fired].elem);
}

/* ---------- select with shared channels ---------- */

/* selframe — a select that has shared cases: its own timer (claims by
** CAS, like every claimer), the selstate, and one swaiter per case (used
** by the shared ones). A userdata on the selecting goroutine's stack; its
** __gc unlinks waiters and frees values still held (VM closed at exit). */
typedef struct selframe {
  timer t; /* first member */
  selstate sel;
  G *g;
  int n, nlocks;
  schan **locks; /* n slots, after w[] */
  swaiter w[];
} selframe;

/* selres — the case that fired in a try pass, and whom to wake */
typedef struct selres {
  int i;
  bool ok;
  uint64_t key;  /* local recv */
  void *val;     /* shared recv */
  sudog *lw;     /* local counterpart to wake */
  swaiter *sw;   /* shared counterpart to wake */
} selres;

static int selframe_gc(lua_State *L) {
  selframe *f = lua_touserdata(L, 1);
  for (int i = 0; i < f->n; i++) {
    schan_dequeue(&f->w[i]);
    lschan_drop(f->w[i].val);
    f->w[i].val = NULL;
  }
  return 0;
}

static void selframe_timeout(timer *t, void *arg) {
  (void)arg;
  selframe *f = (selframe *)t;
  if (!selstate_claim(&f->sel)) return; /* a channel won: it wakes g */
  f->sel.fired = -1;
  sched_ready(f->g->tag.p, f->g, true);
}

static selframe *new_selframe(lua_State *L, int n) {
  size_t sz = sizeof(selframe) + (size_t)n * (sizeof(swaiter) + sizeof(schan *));
  selframe *f = lua_newuserdatauv(L, sz, 0);
  memset(f, 0, sz);
  f->n = n;
  f->locks = (schan **)(void *)(f->w + n);
  timer_init(&f->t, selframe_timeout, NULL);
  atomic_init(&f->sel.done, false);
  f->sel.fired = -1;
  glr_setclass(L, &SELFRAME_KEY);
  return f;
}

/* send values: shared ones encoded (may raise; the frame owns them), local
** ones stored under keys (dropped by drop_unsent) */
static void prepare_sends(lua_State *L, selcase *sc, selframe *f, int n) {
  for (int i = 0; i < n; i++) {
    if (sc[i].isrecv) continue;
    lua_rawgeti(L, 1, i + 1);
    lua_rawgeti(L, -1, 3);
    if (sc[i].sc) f->w[i].val = lschan_encode(L, lua_gettop(L), "go.select");
    else sc[i].key = store_value(L, sc[i].cidx, sc[i].c, lua_gettop(L));
    lua_pop(L, 2);
  }
}

/* free every send value not delivered (keep: the case whose send fired) */
static void drop_unsent(lua_State *L, selcase *sc, selframe *f, int n, int keep) {
  for (int i = 0; i < n; i++) {
    if (sc[i].isrecv || i == keep) continue;
    if (sc[i].sc) {
      lschan_drop(f->w[i].val);
      f->w[i].val = NULL;
    } else {
      drop_value(L, sc[i].cidx, sc[i].key);
    }
  }
}

/* try_case — with the shared channels locked; no Lua calls */
static bool try_case(selcase *c, selframe *f, int i, selres *r) {
  *r = (selres){.i = i};
  int x;
  if (c->sc && c->isrecv) return schan_recv_locked(c->sc, &r->val, &r->ok, &r->sw) == CHAN_OK;
  if (c->isrecv) return chan_tryrecv(&c->c->c, &r->key, &r->ok, &r->lw) == CHAN_OK;
  if (c->sc) x = schan_send_locked(c->sc, f->w[i].val, &r->sw);
  else x = chan_trysend(&c->c->c, c->key, &r->lw);
  if (x == CHAN_WOULDBLOCK) return false;
  r->ok = x == CHAN_OK;
  if (r->ok && c->sc) f->w[i].val = NULL; /* delivered */
  return true;
}

static bool try_locked(selcase *sc, selframe *f, int n, selres *r) {
  uint32_t start = rnd() % (uint32_t)n;
  for (int j = 0; j < n; j++)
    if (try_case(&sc[(start + (uint32_t)j) % (uint32_t)n], f,
                 (int)((start + (uint32_t)j) % (uint32_t)n), r))
      return true;
  return false;
}

static void enqueue_locked(G *g, selcase *sc, sudog *sgs, selframe *f, int n) {
  f->g = g;
  for (int i = 0; i < n; i++) {
    if (sc[i].sc) {
      swaiter *w = &f->w[i];
      w->g = g;
      w->sel = &f->sel;
      w->caseidx = i;
      w->isrecv = sc[i].isrecv;
      schan_enqueue_locked(sc[i].sc, w);
    } else {
      sgs[i] = (sudog){.g = g, .elem = sc[i].key, .isrecv = sc[i].isrecv,
                       .caseidx = i, .sel = &f->sel};
      chan_enqueue(&sc[i].c->c, &sgs[i]);
    }
  }
}

/* results of the fired case r (r->i < 0: timeout); frees what is left */
static int shared_result(lua_State *L, selcase *sc, selframe *f, int n, selres *r) {
  int i = r->i;
  drop_unsent(L, sc, f, n, i >= 0 && !sc[i].isrecv && r->ok ? i : -1);
  if (i < 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  }
  if (!sc[i].sc) return select_fire(L, sc, i, r->ok, r->key);
  if (!sc[i].isrecv) {
    if (!r->ok) return luaL_error(L, "send on closed channel");
    lua_pushinteger(L, i + 1);
    return 1;
  }
  lua_pushinteger(L, i + 1);
  if (r->ok) lschan_push_value(L, r->val);
  else lua_pushnil(L);
  lua_pushboolean(L, r->ok);
  return 3;
}

/* stack as in select_k, plus the selframe at n + 5 */
static int select_shared_k(lua_State *L, int status, lua_KContext n_) {
  (void)status;
  int n = (int)n_;
  selcase *sc = lua_touserdata(L, 3);
  sudog *sgs = lua_touserdata(L, 4);
  selframe *f = lua_touserdata(L, n + 5);
  timer_disarm(&vm_p(L)->timers, &f->t);
  for (int i = 0; i < n; i++) {
    if (sc[i].sc) schan_dequeue(&f->w[i]);
    else chan_dequeue(&sgs[i]);
  }
  selres r = {.i = f->sel.fired};
  if (r.i >= 0 && sc[r.i].sc) {
    swaiter *w = &f->w[r.i];
    lschan_settle(w);
    r.ok = w->ok;
    if (w->isrecv) {
      r.val = w->val;
      w->val = NULL;
    }
  } else if (r.i >= 0) {
    r.ok = sgs[r.i].ok;
    r.key = sgs[r.i].elem;
  }
  return shared_result(L, sc, f, n, &r);
}

static int select_shared(lua_State *L, selcase *sc, sudog *sgs, int n, double timeout) {
  selframe *f = new_selframe(L, n);
  prepare_sends(L, sc, f, n);
  G *g = vm_p(L)->curg;
  bool park = timeout != 0 && sched_can_park(L);
  for (int i = 0; i < n; i++)
    if (sc[i].sc) f->locks[f->nlocks++] = sc[i].sc;
  selres r;
  schan_lock_many(f->locks, f->nlocks);
  bool fired = try_locked(sc, f, n, &r);
  if (!fired && park) enqueue_locked(g, sc, sgs, f, n);
  schan_unlock_many(f->locks, f->nlocks);
  if (fired) {
    if (r.lw) ready_woken(L, r.lw);
    if (r.sw) lschan_wake(r.sw);
    return shared_result(L, sc, f, n, &r);
  }
  if (!park) {
    r.i = -1;
    if (timeout == 0) return shared_result(L, sc, f, n, &r);
    drop_unsent(L, sc, f, n, -1);
    return glr_cannot_block_error(L, "go.select");
  }
  if (timeout > 0) timer_arm(&vm_p(L)->timers, &f->t, deadline_from_seconds(timeout));
  return sched_park(L, NULL, NULL, "select", timeout > 0 ? PARK_WORLD : PARK_SYNC, n,
                    select_shared_k);
}

static int go_select(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  double timeout = lua_isnoneornil(L, 2) ? -1 : check_seconds(L, 2);
  lua_settop(L, 2);
  int n = (int)luaL_len(L, 1);
  luaL_checkstack(L, n + 8, "too many select cases");
  selcase *sc = lua_newuserdatauv(L, sizeof(selcase) * (size_t)(n ? n : 1), 0);
  sudog *sgs = lua_newuserdatauv(L, sizeof(sudog) * (size_t)(n ? n : 1), 0);
  if (parse_cases(L, sc, n) > 0) return select_shared(L, sc, sgs, n, timeout);
  int nret = 0;
  if (select_try(L, sc, n, &nret) >= 0) return nret;
  if (timeout == 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  }
  G *g = cur_g(L, "go.select");
  need_park(L, "go.select");
  atomic_store(&g->gsel.done, false);
  g->gsel.fired = -1;
  for (int i = 0; i < n; i++) {
    if (!sc[i].isrecv) {
      lua_rawgeti(L, 1, i + 1);
      lua_rawgeti(L, -1, 3);
      sc[i].key = store_value(L, sc[i].cidx, sc[i].c, lua_gettop(L));
      lua_pop(L, 2);
    }
    sgs[i] = (sudog){.g = g, .elem = sc[i].key, .isrecv = sc[i].isrecv,
                     .caseidx = i, .sel = &g->gsel};
    chan_enqueue(&sc[i].c->c, &sgs[i]);
  }
  if (timeout > 0) {
    g->sel = &g->gsel;
    sched_arm_gtimer(vm_p(L), g, deadline_from_seconds(timeout));
  }
  return sched_park(L, NULL, NULL, n ? "select" : "select (no cases)",
                    timeout > 0 ? PARK_WORLD : PARK_SYNC, n, select_k);
}

/* ---------- go.after ---------- */

typedef struct after_t {
  timer t;
  int ref; /* registry ref to this userdata while armed */
} after_t;

static void after_fire(timer *t, void *arg) {
  P *p = arg;
  after_t *a = (after_t *)t;
  lua_State *L = p->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->ref);
  int aidx = lua_gettop(L);
  lua_getiuservalue(L, aidx, 1); /* the channel */
  int cidx = lua_gettop(L);
  lchan *c = lua_touserdata(L, cidx);
  lua_pushnumber(L, (double)mono_now() / 1e9);
  uint64_t key = store_value(L, cidx, c, lua_gettop(L));
  sudog *w;
  if (chan_trysend(&c->c, key, &w) == CHAN_OK) {
    if (w) sched_ready(p, w->g, false);
  } else {
    drop_value(L, cidx, key); /* closed by the user meanwhile */
  }
  luaL_unref(L, LUA_REGISTRYINDEX, a->ref);
  lua_settop(L, aidx - 1);
  sched_progress_add(p->rt, -1);
}

static int go_after(lua_State *L) {
  double s = check_seconds(L, 1);
  P *p = vm_p(L);
  push_new_chan(L, 1);
  after_t *a = lua_newuserdatauv(L, sizeof *a, 1);
  lua_pushvalue(L, -2);
  lua_setiuservalue(L, -2, 1);
  timer_init(&a->t, after_fire, p);
  a->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  sched_progress_add(p->rt, 1);
  timer_arm(&p->timers, &a->t, deadline_from_seconds(s));
  return 1;
}

/* ---------- stats, exit ---------- */

static void set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static void push_proc_stats(lua_State *L, int id, const proc_stats *s) {
  lua_createtable(L, 0, 8);
  set_int(L, "goroutines", s->goroutines);
  set_int(L, "runq", s->runq);
  set_int(L, "id", id);
  set_int(L, "portable", s->portable);
  set_int(L, "spawned", (lua_Integer)s->st.spawned);
  set_int(L, "steals", (lua_Integer)s->st.steals);
  set_int(L, "preemptions", (lua_Integer)s->st.preemptions);
  set_int(L, "handoffs", (lua_Integer)s->st.handoffs);
}

static int go_stats(lua_State *L) {
  P *self = vm_p(L);
  rt *r = self->rt;
  sched_publish(self);
  proc_stats *per_p = lua_newuserdatauv(L, (size_t)r->nprocs * sizeof *per_p, 0);
  rt_stats s;
  sysmon_stats(r, &s, per_p);
  lua_newtable(L);
  lua_createtable(L, r->nprocs, 0);
  for (int i = 0; i < r->nprocs; i++) {
    push_proc_stats(L, i, &per_p[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "procs");
  set_int(L, "goroutines", s.total.goroutines);
  set_int(L, "runnable", s.total.runq);
  set_int(L, "threads", s.threads); /* Ms, counting pool threads for hand-offs */
  set_int(L, "netpoll_waiters", s.total.npollwait);
  set_int(L, "spawned", (lua_Integer)s.total.st.spawned);
  set_int(L, "coroutines_created", (lua_Integer)s.total.st.created);
  set_int(L, "steals", (lua_Integer)s.total.st.steals);
  set_int(L, "preemptions", (lua_Integer)s.total.st.preemptions);
  set_int(L, "handoffs", (lua_Integer)s.total.st.handoffs);
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
    {"nprocs", go_nprocs}, {"chan", go_chan},     {"select", go_select},
    {"after", go_after},   {"stats", go_stats},   {"exit", go_exit},
    {NULL, NULL}};

static const luaL_Reg chan_methods[] = {
    {"send", ch_send}, {"recv", ch_recv}, {"close", ch_close},
    {"cap", ch_cap},   {NULL, NULL}};

static const luaL_Reg handle_methods[] = {{"id", h_id}, {NULL, NULL}};


int luaopen_go(lua_State *L) {
  static const luaL_Reg handle_meta[] = {
      {"__gc", h_gc}, {"__tostring", h_tostring}, {NULL, NULL}};
  static const luaL_Reg chan_meta[] = {
      {"__gc", ch_gc}, {"__tostring", ch_tostring}, {"__len", ch_len}, {NULL, NULL}};
  glr_defclass(L, &HANDLE_KEY, HANDLE_MT, handle_methods, handle_meta);
  glr_defclass(L, &CHAN_KEY, CHAN_MT, chan_methods, chan_meta);
  glr_newclass(L, &SELFRAME_KEY, "goluarun.selframe");
  lua_pushcfunction(L, selframe_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 3);
  luaL_newlib(L, go_funcs);
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
