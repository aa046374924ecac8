/*
** lschan.c — go.sharedchan: channels usable from every VM (runtime/HACKING.md
** "Parking"), on the core in runtime/schan.c.
**
** A handle (metatable goluarun.sharedchan) owns one ref on its channel; a
** VM has at most one live handle per channel (a weak cache), so a channel
** that comes back to a VM is the same Lua value. Elements are heap vbufs
** (bindings/vcopy.c) stored as words of the core (runtime/chan.h), encoded
** by the sender in its VM and decoded by the receiver in its own VM: a
** value handed to a parked receiver waits in its sudog until the receiver
** runs again. go.select's shared cases (lchan.c) use the element and wake
** functions exported here (lschan.h).
**
** A plain send/recv parks with its sudog in a userdata on the goroutine's
** stack; its __gc unlinks it and frees any value it still holds (a VM
** closed at exit with goroutines parked). Everything here runs on the M
** holding the VM's P; the core's lock guards what other threads see.
**
** Wake-ups and progress (sched.h): a goroutine parked here is woken by
** whoever claims its sudog, on any thread: through sched_ready on the same
** P, else through its P's inbox (sched_ready_remote). It parks PARK_SYNC,
** which is safe across threads because the waker first adds a progress
** token (sg->token) that the woken goroutine removes when it runs: while the
** wake-up sits in an inbox, n_progress cannot read 0. So a goroutine blocked
** for good on a shared channel counts as blocked (exit / deadlock report),
** as with local channels.
*/
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>

#include "lschan.h"

#include "../runtime/schan.h"
#include "../runtime/group.h"
#include "../runtime/sched.h"
#include "classes.h"
#include "errstr.h"
#include "goluarun.h"
#include "vcopy.h"

#define SCHAN_MT "goluarun.sharedchan"
#define WAITER_MT "goluarun.schanwaiter"
static const char SCHAN_KEY = 's', WAITER_KEY = 'w', CACHE_KEY = 'c';

typedef struct shandle {
  schan *c; /* one ref; NULL once collected */
} shandle;

/* ---------- elements ---------- */

static vbuf *vbuf_of(uint64_t elem) { return (vbuf *)(uintptr_t)elem; }

void lschan_drop(uint64_t elem) {
  if (!elem) return;
  vbuf_free(vbuf_of(elem));
  free(vbuf_of(elem));
}

uint64_t lschan_encode(lua_State *L, int idx, const char *what) {
  vbuf b = {0};
  vcopy_encode_ex(L, idx, 1, &b, what, VC_NOCONN); /* raises: b freed */
  vbuf *v = malloc(sizeof *v);
  if (!v) {
    vbuf_free(&b);
    luaL_error(L, ERRSTR_NOMEM);
  }
  *v = b;
  return (uint64_t)(uintptr_t)v;
}

void lschan_push_value(lua_State *L, uint64_t elem) {
  vcopy_decode(L, vbuf_of(elem));
  lschan_drop(elem);
}

/* ---------- handles ---------- */

schan *lschan_test(lua_State *L, int idx) {
  shandle *h = class_test(L, idx, &SCHAN_KEY);
  return h ? h->c : NULL;
}

static schan *check_schan(lua_State *L, int idx) {
  shandle *h = class_check(L, idx, &SCHAN_KEY, SCHAN_MT);
  if (!h->c) luaL_argerror(L, idx, "shared channel already collected");
  return h->c;
}

/* push a new handle owning one ref of c (the caller's) and cache it */
static void push_owning(lua_State *L, schan *c) {
  shandle *h = lua_newuserdatauv(L, sizeof *h, 0);
  h->c = NULL;
  class_set(L, &SCHAN_KEY);
  h->c = c;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &CACHE_KEY);
  lua_pushvalue(L, -2);
  lua_rawsetp(L, -2, c);
  lua_pop(L, 1);
}

void lschan_push(lua_State *L, schan *c) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &CACHE_KEY);
  if (lua_rawgetp(L, -1, c) != LUA_TNIL) {
    lua_remove(L, -2);
    return;
  }
  lua_pop(L, 2);
  schan_retain(c);
  push_owning(L, c);
}

static int go_sharedchan(lua_State *L) {
  lua_Integer cap = luaL_optinteger(L, 1, 0);
  luaL_argcheck(L, cap >= 0 && cap <= (1 << 30), 1, "capacity out of range");
  schan *c = schan_new((uint32_t)cap, lschan_drop);
  push_owning(L, c); /* lua_newuserdatauv may raise: c would leak (OOM) */
  return 1;
}

static int sc_gc(lua_State *L) {
  shandle *h = lua_touserdata(L, 1);
  if (h->c) schan_release(h->c);
  h->c = NULL;
  return 0;
}

/* ---------- waking and waiters ---------- */

void lschan_wake(sudog *sg) {
  G *g = sg->g;
  P *p = g->tag.p;
  sched_progress_add(p->rt, 1); /* before the wake-up exists: see header */
  sg->token = true;
  if (sched_current_p() == p) sched_ready(p, g, true);
  else sched_ready_remote(g);
}

void lschan_settle(sudog *sg) {
  if (!sg->token) return;
  sg->token = false;
  sched_progress_add(((G *)sg->g)->tag.p->rt, -1);
}

static void wake_list(sudog *sg) {
  while (sg) {
    sudog *next = sg->next; /* sg may be gone once woken */
    lschan_wake(sg);
    sg = next;
  }
}

/* take the value a sudog holds (0: none) */
static uint64_t take_elem(sudog *sg) {
  uint64_t elem = sg->elem;
  sg->elem = 0;
  return elem;
}

static int waiter_gc(lua_State *L) {
  sudog *sg = lua_touserdata(L, 1);
  schan_dequeue(sg);
  lschan_drop(take_elem(sg));
  return 0;
}

/* a plain send/recv waiter: its sudog (first, so the userdata is the
** sudog) and a selstate of its own, which makes it a one-case select: a
** claimer on another thread and a go.group cancel (WK_SEL) race by CAS */
typedef struct waiter {
  sudog sg;
  selstate sel;
} waiter;

static sudog *new_waiter(lua_State *L, bool isrecv) {
  waiter *w = lua_newuserdatauv(L, sizeof *w, 0);
  w->sg = (sudog){.g = vm_p(L)->curg, .isrecv = isrecv, .sel = &w->sel};
  atomic_store(&w->sel.done, false);
  w->sel.fired = -1;
  class_set(L, &WAITER_KEY);
  return &w->sg;
}

/* park_waiter — park on the queued waiter sg (a group's cancel may claim it) */
static int park_waiter(lua_State *L, sudog *sg, const char *reason, lua_KFunction k) {
  sched_park_on(L, WK_SEL, sg->sel);
  return sched_park(L, NULL, NULL, reason, PARK_SYNC, 0, k);
}

/* the cancel claimed the waiter: raise (after settle_waiter) */
static bool waiter_cancelled(sudog *sg) { return sg->sel->fired == SEL_CANCELLED; }

/* the waiter at the top of the stack, once its goroutine runs again */
static sudog *settle_waiter(lua_State *L) {
  sudog *sg = lua_touserdata(L, -1);
  schan_dequeue(sg);
  lschan_settle(sg);
  return sg;
}

/* ---------- send / recv / close ---------- */

static int closed_send(lua_State *L) { return luaL_error(L, "send on closed channel"); }

/* the waiter is at the top of the stack */
static int send_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  sudog *sg = settle_waiter(L);
  if (waiter_cancelled(sg)) {
    lschan_drop(take_elem(sg)); /* never taken */
    return sched_raise_cancelled(L);
  }
  if (!sg->ok) {
    lschan_drop(take_elem(sg)); /* closed: the value was never taken */
    return closed_send(L);
  }
  return 0;
}

/* try once under the lock; on WOULDBLOCK with sg, queue sg */
static int send_locked(schan *c, uint64_t v, sudog *sg) {
  sudog *woken;
  schan_lock(c);
  int r = chan_trysend(&c->c, v, &woken);
  if (r == CHAN_WOULDBLOCK && sg) schan_enqueue_locked(c, sg);
  schan_unlock(c);
  if (woken) lschan_wake(woken);
  return r;
}

static int sc_send(lua_State *L) {
  schan *c = check_schan(L, 1);
  luaL_checkany(L, 2);
  sched_check_cancel(L);
  lua_settop(L, 2);
  uint64_t v = lschan_encode(L, 2, "shared channel send");
  int r = send_locked(c, v, NULL);
  if (r == CHAN_OK) return 0;
  if (r == CHAN_CLOSED || !sched_can_wait(L)) {
    lschan_drop(v);
    if (r == CHAN_CLOSED) return closed_send(L);
    return glr_cannot_block(L, "send");
  }
  sudog *sg = new_waiter(L, false); /* OOM here would leak v */
  sg->elem = v;
  r = send_locked(c, v, sg);
  if (r == CHAN_OK) {
    sg->elem = 0; /* delivered or buffered; sg was not queued */
    return 0;
  }
  if (r == CHAN_CLOSED) return send_k(L, 0, 0); /* sg->ok is false */
  return park_waiter(L, sg, "chan send", send_k);
}

static int recv_result(lua_State *L, bool ok, uint64_t v) {
  if (!ok) {
    lua_pushnil(L);
    lua_pushboolean(L, 0);
    return 2;
  }
  lschan_push_value(L, v);
  lua_pushboolean(L, 1);
  return 2;
}

static int recv_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  sudog *sg = settle_waiter(L);
  if (waiter_cancelled(sg)) return sched_raise_cancelled(L);
  return recv_result(L, sg->ok, take_elem(sg));
}

static int recv_locked(schan *c, uint64_t *v, bool *ok, sudog *sg) {
  sudog *woken;
  schan_lock(c);
  int r = chan_tryrecv(&c->c, v, ok, &woken);
  if (r == CHAN_WOULDBLOCK && sg) schan_enqueue_locked(c, sg);
  schan_unlock(c);
  if (woken) lschan_wake(woken);
  return r;
}

static int sc_recv(lua_State *L) {
  schan *c = check_schan(L, 1);
  sched_check_cancel(L);
  lua_settop(L, 1);
  uint64_t v;
  bool ok;
  if (recv_locked(c, &v, &ok, NULL) == CHAN_OK) return recv_result(L, ok, v);
  if (!sched_can_wait(L)) return glr_cannot_block(L, "recv");
  sudog *sg = new_waiter(L, true);
  if (recv_locked(c, &v, &ok, sg) == CHAN_OK) return recv_result(L, ok, v);
  return park_waiter(L, sg, "chan receive", recv_k);
}

static int sc_close(lua_State *L) {
  sudog *woken;
  if (schan_close(check_schan(L, 1), &woken) == CHAN_CLOSED)
    return luaL_error(L, "close of closed channel");
  wake_list(woken);
  return 0;
}

static int sc_len(lua_State *L) {
  lua_pushinteger(L, schan_len(check_schan(L, 1)));
  return 1;
}

static int sc_cap(lua_State *L) {
  lua_pushinteger(L, check_schan(L, 1)->c.cap);
  return 1;
}

static int sc_tostring(lua_State *L) {
  schan *c = check_schan(L, 1);
  schan_lock(c);
  lua_pushfstring(L, "sharedchan (%d/%d%s)", (int)c->c.count, (int)c->c.cap,
                  c->c.closed ? ", closed" : "");
  schan_unlock(c);
  return 1;
}

/* ---------- crossing VMs: the vcopy class hook (vcopy.h) ---------- */

/* payload: the schan pointer; a buffer holds one ref on it */
static const char *sc_vc_encode(lua_State *L, int idx, vbuf *b, bool commit) {
  (void)commit;
  shandle *h = lua_touserdata(L, idx);
  vbuf_put(L, b, &h->c, sizeof h->c);
  return NULL;
}

static void sc_vc_decode(lua_State *L, const char **p) {
  schan *c;
  vbuf_get(p, &c, sizeof c);
  lschan_push(L, c);
}

static void sc_vc_walk(const char **p, int delta) {
  schan *c;
  vbuf_get(p, &c, sizeof c);
  if (delta > 0) schan_retain(c);
  else if (delta < 0) schan_release(c);
}

static const vcopy_class schan_vcopy = {false, "shared channels", sc_vc_encode,
                                        sc_vc_decode, sc_vc_walk, true};

void lschan_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"send", sc_send},   {"recv", sc_recv},
                                     {"close", sc_close}, {"cap", sc_cap},
                                     {NULL, NULL}};
  static const luaL_Reg meta[] = {
      {"__gc", sc_gc}, {"__tostring", sc_tostring}, {"__len", sc_len}, {NULL, NULL}};
  static const luaL_Reg wmeta[] = {{"__gc", waiter_gc}, {NULL, NULL}};
  class_define(L, &SCHAN_KEY, SCHAN_MT, methods, meta);
  vcopy_sethook(L, -1, &schan_vcopy);
  class_new(L, &WAITER_KEY, WAITER_MT);
  luaL_setfuncs(L, wmeta, 0);
  lua_pop(L, 2);
  class_weaktable(L, "v"); /* cache: schan pointer -> handle, weak values */
  lua_rawsetp(L, LUA_REGISTRYINDEX, &CACHE_KEY);
  lua_pushcfunction(L, go_sharedchan);
  lua_setfield(L, -2, "sharedchan");
}
