/*
** lchan.c — local channels (go.chan), go.select and go.after, on the
** channel core (runtime/chan.h).
**
** A local channel belongs to its VM: everything here runs on the M holding
** the VM's P, so a local channel needs no lock. Its values live in the
** channel's uservalue table under small integer keys; the core moves only
** the keys.
**
** go.select is one path for any mix of local and shared channels (Go:
** selectgo): parse the cases into a select frame, store every send value
** into its case's sudog (case_store: a key for a local channel, an encoded
** copy for a shared one), lock the shared channels in address order, try
** each case once in random order, else queue one sudog per case, unlock
** and park. Every claimer — a local counterpart, a shared one on any
** thread, the frame's own timer — takes the frame's selstate by CAS; the
** winner wakes the goroutine, which dequeues every case and frees the send
** values not delivered. A select with no shared case skips the locking and
** the frame's finalizer, nothing else.
*/
#include "lchan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "../runtime/chan.h"
#include "../runtime/group.h"
#include "../runtime/schan.h"
#include "../runtime/sched.h"
#include "args.h"
#include "classes.h"
#include "errstr.h"
#include "goluarun.h"
#include "lschan.h"

#define CHAN_MT "goluarun.chan"
static const char CHAN_KEY = 'c', SELFRAME_KEY = 'f';

/* Values live in the channel's uservalue table under small integer keys,
** recycled through a free list so they stay dense (the table's array part:
** no hashing, no rehash as keys grow). Keys start at 1: 0 is no value. */
typedef struct lchan {
  chan c;             /* first member */
  uint64_t nextkey;   /* highest key ever used */
  uint64_t *freekeys; /* keys whose slot is empty */
  size_t nfree, capfree;
  uintptr_t self;     /* const: self_tag(this), the methods' fast check */
} lchan;

/* self_tag — what a channel's `self` holds: its own address mixed with
** the class key. Only push_new_chan writes it; no other userdata of this
** exact size holds its own address so mixed by accident. */
static uintptr_t self_tag(const lchan *c) { return (uintptr_t)c ^ (uintptr_t)&CHAN_KEY; }

/* the elem of a hand-off whose value went straight onto the receiver's
** stack (hand_off); never a table key (keys count up from 1) */
#define KEY_ONSTACK UINT64_MAX

static uint32_t rnd(void) {
  static _Thread_local uint32_t x = 0;
  if (!x) x = (uint32_t)mono_now() | 1;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return x;
}

static int push_timeout(lua_State *L) {
  lua_pushnil(L);
  lua_pushliteral(L, ERRSTR_TIMEOUT);
  return 2;
}

/* ---------- local channels ---------- */

static lchan *check_chan(lua_State *L, int idx) {
  return class_check(L, idx, &CHAN_KEY, CHAN_MT);
}

/* self_chan — the channel a method was called on (argument 1). The fast
** path reads the block's `self` tag (a full userdata of the channel's size:
** the read stays inside the block) instead of comparing metatables, which
** cost four API calls per ch:send / ch:recv; anything else goes to
** class_method, which raises the usual error. */
static lchan *self_chan(lua_State *L) {
  if (GLR_LIKELY(lua_rawlen(L, 1) == sizeof(lchan))) { /* a string, a table or a userdata */
    lchan *c = lua_touserdata(L, 1);                    /* NULL but for a userdata */
    if (GLR_LIKELY(c && c->self == self_tag(c))) return c;
  }
  return class_method(L, 1, &CHAN_KEY, CHAN_MT);
}

/* check_cancel — sched_check_cancel with the goroutine at hand */
static void check_cancel(lua_State *L, G *g) {
  if (g && GLR_UNLIKELY(group_is_cancelled(g->grp))) sched_raise_cancelled(L);
}

static void push_new_chan(lua_State *L, lua_Integer cap) {
  lchan *c = lua_newuserdatauv(L, sizeof *c, 1);
  chan_init(&c->c, 0); /* nothing to free yet: the next calls may raise */
  c->nextkey = 0;
  c->freekeys = NULL;
  c->nfree = c->capfree = 0;
  c->self = self_tag(c);
  lua_newtable(L);
  lua_setiuservalue(L, -2, 1);
  class_set(L, &CHAN_KEY);
  /* the buffer only once __gc frees it (GOLUA_ALLOCFAIL + ASan: a memory
  ** error in lua_newtable leaked it) */
  chan_init(&c->c, (uint32_t)cap);
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

/* ready the owner of a sudog claimed on a local channel */
static void ready_woken(lua_State *L, sudog *w) {
  if (w) sched_ready(vm_p(L), w->g, true);
}

static int closed_send(lua_State *L) { return luaL_error(L, "send on closed channel"); }

static int send_k(lua_State *L, int status, lua_KContext key) {
  (void)status;
  G *g = vm_p(L)->curg;
  if (g->wake == WAKE_CANCELLED) { /* group.c dequeued us */
    if ((uint64_t)key != KEY_ONSTACK) drop_value(L, 1, (uint64_t)key);
    return sched_raise_cancelled(L);
  }
  if (!g->cold->sg.ok) {
    if ((uint64_t)key != KEY_ONSTACK) drop_value(L, 1, (uint64_t)key);
    return closed_send(L);
  }
  return 0;
}

/* park_onstack — an unbuffered channel with nobody waiting to receive: the
** sender parks with its value left on its own stack (index 2, the top of
** the thread that parks), elem = KEY_ONSTACK; the receiver moves it from
** there (take_parked). Only unbuffered: a buffered channel moves a parked
** sender's elem into its buffer. */
static int park_onstack(lua_State *L, lchan *c) {
  G *g = vm_p(L)->curg;
  gcold_of(g)->sg = (sudog){.g = g, .elem = KEY_ONSTACK, .isrecv = false};
  chan_enqueue(&c->c, &g->cold->sg);
  sched_park_on(L, WK_CHAN, NULL); /* a group's cancel dequeues it */
  return sched_park(L, NULL, NULL, "chan send", PARK_SYNC, (lua_KContext)KEY_ONSTACK,
                    send_k);
}

/* take_parked — push the value of a sender parked by park_onstack (claimed:
** it is still suspended, its value on top of the thread that parked) */
static void take_parked(lua_State *L, sudog *sender) {
  G *g = sender->g;
  lua_xmove(g->parkL, L, 1);
}

/* hand_off — a plain receiver parked on this VM gets the value on its own
** stack (recv_k finds it there, elem = KEY_ONSTACK): no slot in the
** channel's table, which costs a store and a take. False if that thread's
** stack cannot grow (the caller then stores the value as usual). */
static bool hand_off(lua_State *L, lchan *c) {
  sudog *r = chan_peek_plain_recv(&c->c);
  if (!r) return false;
  G *g = r->g;
  lua_State *to = g->parkL;
  if (!to || !lua_checkstack(to, 1)) return false;
  lua_pushvalue(L, 2);
  lua_xmove(L, to, 1);
  sudog *w;
  if (chan_trysend(&c->c, KEY_ONSTACK, &w) != CHAN_OK || w != r)
    rt_throw("lchan: hand-off to a receiver that was not first");
  ready_woken(L, w);
  return true;
}

static int ch_send(lua_State *L) {
  lchan *c = self_chan(L);
  if (GLR_UNLIKELY(lua_gettop(L) != 2)) {
    luaL_checkany(L, 2);
    lua_settop(L, 2);
  }
  check_cancel(L, vm_p(L)->curg);
  if (hand_off(L, c)) return 0;
  if (c->c.cap == 0 && !c->c.closed && !c->c.recvq.first && sched_can_wait(L))
    return park_onstack(L, c);
  uint64_t key = store_value(L, 1, c, 2);
  sudog *w;
  int r = chan_trysend(&c->c, key, &w);
  if (r == CHAN_CLOSED) {
    drop_value(L, 1, key);
    return closed_send(L);
  }
  if (r == CHAN_OK) {
    ready_woken(L, w);
    return 0;
  }
  if (!sched_can_wait(L)) {
    drop_value(L, 1, key);
    return glr_cannot_block(L, "send");
  }
  G *g = vm_p(L)->curg;
  gcold_of(g)->sg = (sudog){.g = g, .elem = key, .isrecv = false};
  chan_enqueue(&c->c, &g->cold->sg);
  sched_park_on(L, WK_CHAN, NULL);
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
  if (g->cold->sg.ok && g->cold->sg.elem == KEY_ONSTACK) { /* hand_off: [chan, value] */
    lua_pushboolean(L, 1);
    return 2;
  }
  if (g->wake == WAKE_CANCELLED) return sched_raise_cancelled(L); /* dequeued, nothing received */
  return recv_result(L, g->cold->sg.ok, g->cold->sg.elem);
}

static int ch_recv(lua_State *L) {
  lchan *c = self_chan(L);
  if (GLR_UNLIKELY(lua_gettop(L) != 1)) lua_settop(L, 1);
  check_cancel(L, vm_p(L)->curg);
  uint64_t key;
  bool ok;
  sudog *w;
  if (chan_tryrecv(&c->c, &key, &ok, &w) == CHAN_OK) {
    if (ok && key == KEY_ONSTACK) {
      take_parked(L, w);
      ready_woken(L, w);
      lua_pushboolean(L, 1);
      return 2;
    }
    ready_woken(L, w);
    return recv_result(L, ok, key);
  }
  if (!sched_can_wait(L)) return glr_cannot_block(L, "recv");
  G *g = vm_p(L)->curg;
  gcold_of(g)->sg = (sudog){.g = g, .isrecv = true};
  chan_enqueue(&c->c, &g->cold->sg);
  sched_park_on(L, WK_CHAN, NULL);
  return sched_park(L, NULL, NULL, "chan receive", PARK_SYNC, 0, recv_k);
}

static int ch_close(lua_State *L) {
  lchan *c = check_chan(L, 1);
  sudog *w;
  if (chan_close(&c->c, &w) == CHAN_CLOSED) return luaL_error(L, "close of closed channel");
  while (w) {
    sudog *next = w->next;
    sched_ready(vm_p(L), w->g, false);
    w = next;
  }
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

/* selcase — one case: its channel and the sudog that waits on it. A send
** case's sudog holds the value (elem) from case_store until it is
** delivered (then elem == 0: the core moved it out). */
typedef struct selcase {
  chan *c;   /* the core: a local channel's or a shared one's */
  schan *sc; /* the shared channel, NULL for a local one */
  int cidx;  /* stack index of the channel */
  sudog sg;
} selcase;

/* selframe — one select, a userdata at stack index 3 (1: cases, 2:
** timeout, 4..n+3: the channels). With shared cases its __gc dequeues
** them and frees their values (a VM closed at exit with the goroutine
** parked); local ones need nothing (their channels die with the VM). */
typedef struct selframe {
  timer t;       /* first member: the timeout, a claimer like any other */
  selstate sel;  /* claimed by CAS: counterparts may run on other threads */
  G *g;          /* set when the cases are queued */
  int n, nshared;
  schan **locks; /* nshared shared channels, after cases[] */
  selcase cases[];
} selframe;

/* selres — what a try pass found: the counterpart to wake, ok, the value */
typedef struct selres {
  sudog *woken;
  bool ok;
  uint64_t elem;
} selres;

static void selframe_timeout(timer *t, void *arg) {
  (void)arg;
  selframe *f = (selframe *)(void *)t;
  if (!selstate_claim(&f->sel)) return; /* a channel won: it wakes g */
  f->sel.fired = -1;
  sched_ready(f->g->tag.p, f->g, true);
}

static selframe *new_selframe(lua_State *L, int n) {
  size_t sz = sizeof(selframe) + (size_t)n * (sizeof(selcase) + sizeof(schan *));
  selframe *f = lua_newuserdatauv(L, sz, 0);
  timer_init(&f->t, selframe_timeout, NULL);
  atomic_init(&f->sel.done, false);
  f->sel.fired = -1;
  f->g = NULL;
  f->n = n;
  f->nshared = 0;
  f->locks = (schan **)(void *)(f->cases + n);
  return f;
}

static void parse_case(lua_State *L, selframe *f, int i) {
  if (lua_rawgeti(L, 1, i + 1) != LUA_TTABLE)
    luaL_error(L, "go.select: case %d is not a table", i + 1);
  int t = lua_gettop(L);
  selcase *c = &f->cases[i];
  lua_rawgeti(L, t, 1);
  lchan *lc = class_test(L, -1, &CHAN_KEY);
  c->sc = lc ? NULL : lschan_test(L, -1);
  if (!lc && !c->sc) luaL_error(L, "go.select: case %d has no channel", i + 1);
  c->c = lc ? &lc->c : &c->sc->c;
  lua_rawgeti(L, t, 2);
  const char *op = lua_tostring(L, -1);
  if (!op || (strcmp(op, "recv") != 0 && strcmp(op, "send") != 0))
    luaL_error(L, "go.select: case %d: op must be \"recv\" or \"send\"", i + 1);
  c->sg = (sudog){.isrecv = op[0] == 'r', .caseidx = i, .sel = &f->sel};
  lua_pop(L, 1);
  lua_replace(L, t); /* keep the channel where the case table was */
  c->cidx = t;
  if (c->sc) f->locks[f->nshared++] = c->sc;
}

/* case_store — the send value of case i (cases[i][3]) into its sudog: a
** key into a local channel's table, or an encoded copy for a shared one */
static void case_store(lua_State *L, selframe *f, int i) {
  selcase *c = &f->cases[i];
  lua_rawgeti(L, 1, i + 1);
  lua_rawgeti(L, -1, 3);
  int v = lua_gettop(L);
  if (c->sc) c->sg.elem = lschan_encode(L, v, "go.select");
  else c->sg.elem = store_value(L, c->cidx, (lchan *)(void *)c->c, v);
  lua_pop(L, 2);
}

/* store every send value; the shared ones first: encoding may raise, and
** the frame's __gc frees what was encoded, not what local tables hold */
static void store_sends(lua_State *L, selframe *f) {
  for (int shared = f->nshared > 0; shared >= 0; shared--)
    for (int i = 0; i < f->n; i++)
      if (!f->cases[i].sg.isrecv && (f->cases[i].sc != NULL) == shared) case_store(L, f, i);
}

/* free the value a case's sudog still holds (a send not delivered) */
static void case_drop(lua_State *L, selcase *c) {
  uint64_t elem = c->sg.elem;
  c->sg.elem = 0;
  if (!elem) return;
  if (c->sc) lschan_drop(elem);
  else drop_value(L, c->cidx, elem);
}

static void drop_sends(lua_State *L, selframe *f) {
  for (int i = 0; i < f->n; i++) case_drop(L, &f->cases[i]);
}

static int selframe_gc(lua_State *L) {
  selframe *f = lua_touserdata(L, 1);
  for (int i = 0; i < f->n; i++) {
    if (!f->cases[i].sc) continue;
    schan_dequeue(&f->cases[i].sg);
    lschan_drop(f->cases[i].sg.elem);
    f->cases[i].sg.elem = 0;
  }
  return 0;
}

/* try_case — with the shared channels locked; no Lua calls */
static bool try_case(selcase *c, selres *r) {
  if (c->sg.isrecv) return chan_tryrecv(c->c, &r->elem, &r->ok, &r->woken) == CHAN_OK;
  int x = chan_trysend(c->c, c->sg.elem, &r->woken);
  if (x == CHAN_WOULDBLOCK) return false;
  r->ok = x == CHAN_OK;
  if (r->ok) c->sg.elem = 0; /* delivered */
  r->elem = 0;
  return true;
}

/* one pass over the cases in random order: the case that fired, or -1 */
static int try_all(selframe *f, selres *r) {
  uint32_t n = (uint32_t)f->n, start = n ? rnd() % n : 0;
  for (uint32_t j = 0; j < n; j++) {
    int i = (int)((start + j) % n);
    if (try_case(&f->cases[i], r)) return i;
  }
  return -1;
}

static void enqueue_all(selframe *f, G *g) {
  f->g = g;
  for (int i = 0; i < f->n; i++) {
    selcase *c = &f->cases[i];
    c->sg.g = g;
    if (c->sc) schan_enqueue_locked(c->sc, &c->sg);
    else chan_enqueue(c->c, &c->sg);
  }
}

/* the result of case i (-1: timeout); frees the send values left */
static int select_result(lua_State *L, selframe *f, int i, bool ok, uint64_t elem) {
  drop_sends(L, f);
  if (i < 0) return push_timeout(L);
  selcase *c = &f->cases[i];
  lua_pushinteger(L, i + 1);
  if (!c->sg.isrecv) return ok ? 1 : closed_send(L);
  if (!ok) lua_pushnil(L);
  else if (c->sc) lschan_push_value(L, elem);
  else take_value(L, c->cidx, elem);
  lua_pushboolean(L, ok);
  return 3;
}

/* select_parked — local recv case i took the value of a sender parked by
** park_onstack; the value is on top */
static int select_parked(lua_State *L, selframe *f, int i) {
  drop_sends(L, f);
  lua_pushinteger(L, i + 1);
  lua_insert(L, -2);
  lua_pushboolean(L, 1);
  return 3;
}

static int select_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  selframe *f = lua_touserdata(L, 3);
  timer_disarm(&vm_p(L)->timers, &f->t);
  for (int i = 0; i < f->n; i++) {
    if (f->cases[i].sc) schan_dequeue(&f->cases[i].sg);
    else chan_dequeue(&f->cases[i].sg);
  }
  int i = f->sel.fired;
  if (i == SEL_CANCELLED) { /* group.c claimed the frame */
    drop_sends(L, f);
    return sched_raise_cancelled(L);
  }
  if (i < 0) return select_result(L, f, -1, false, 0);
  selcase *c = &f->cases[i];
  if (c->sc) lschan_settle(&c->sg);
  uint64_t elem = 0;
  if (c->sg.isrecv) {
    elem = c->sg.elem;
    c->sg.elem = 0;
  }
  return select_result(L, f, i, c->sg.ok, elem);
}

/* try, else queue and park (or time out, or fail where it cannot park) */
static int select_run(lua_State *L, selframe *f, double timeout) {
  bool can_park = timeout != 0 && sched_can_wait(L);
  selres r;
  if (f->nshared) schan_lock_many(f->locks, f->nshared);
  int i = try_all(f, &r);
  if (i < 0 && can_park) enqueue_all(f, vm_p(L)->curg);
  if (f->nshared) schan_unlock_many(f->locks, f->nshared);
  if (i >= 0) {
    if (r.ok && r.elem == KEY_ONSTACK) { /* a local sender's, on its stack */
      take_parked(L, r.woken);
      ready_woken(L, r.woken);
      return select_parked(L, f, i);
    }
    if (r.woken && f->cases[i].sc) lschan_wake(r.woken);
    else ready_woken(L, r.woken);
    return select_result(L, f, i, r.ok, r.elem);
  }
  if (timeout == 0) return select_result(L, f, -1, false, 0);
  if (!can_park) {
    drop_sends(L, f);
    return glr_cannot_block(L, "go.select");
  }
  if (timeout > 0) timer_arm(&vm_p(L)->timers, &f->t, deadline_from_seconds(timeout));
  sched_park_on(L, WK_SEL, &f->sel);
  return sched_park(L, NULL, NULL, f->n ? "select" : "select (no cases)",
                    timeout > 0 ? PARK_WORLD : PARK_SYNC, 0, select_k);
}

static int go_select(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  double timeout = lua_isnoneornil(L, 2) ? -1 : args_seconds(L, 2);
  if (timeout != 0) sched_check_cancel(L);
  lua_settop(L, 2);
  int n = (int)luaL_len(L, 1);
  luaL_checkstack(L, n + 8, "too many select cases");
  selframe *f = new_selframe(L, n);
  for (int i = 0; i < n; i++) parse_case(L, f, i);
  if (f->nshared) { /* before any value is encoded */
    lua_pushvalue(L, 3);
    class_set(L, &SELFRAME_KEY);
    lua_pop(L, 1);
  }
  store_sends(L, f);
  return select_run(L, f, timeout);
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
  double s = args_seconds(L, 1);
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

/* ---------- for other modules (lchan.h) ---------- */

void lchan_push_new(lua_State *L, lua_Integer cap) { push_new_chan(L, cap); }

lchan_t *lchan_test(lua_State *L, int idx) { return class_test(L, idx, &CHAN_KEY); }

int lchan_offer(lua_State *L, int cidx, int vidx) {
  cidx = lua_absindex(L, cidx);
  vidx = lua_absindex(L, vidx);
  lchan *c = check_chan(L, cidx);
  uint64_t key = store_value(L, cidx, c, vidx);
  sudog *w;
  int r = chan_trysend(&c->c, key, &w);
  if (r == CHAN_OK) ready_woken(L, w);
  else drop_value(L, cidx, key);
  return r;
}

/* ---------- module ---------- */

void lchan_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"send", ch_send},   {"recv", ch_recv},
                                     {"close", ch_close}, {"cap", ch_cap},
                                     {NULL, NULL}};
  static const luaL_Reg meta[] = {
      {"__gc", ch_gc}, {"__tostring", ch_tostring}, {"__len", ch_len}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {
      {"chan", go_chan}, {"select", go_select}, {"after", go_after}, {NULL, NULL}};
  class_define(L, &CHAN_KEY, CHAN_MT, methods, meta);
  class_new(L, &SELFRAME_KEY, "goluarun.selframe");
  lua_pushcfunction(L, selframe_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 2);
  luaL_setfuncs(L, funcs, 0);
}
