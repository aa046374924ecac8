/*
** lsignal.c — go.signal / go.signal_stop (Go: os/signal.Notify / Stop).
**
** A subscription is a local channel of the subscribing VM (capacity 1) kept
** in that VM's registry table SUBS: channel -> mask of signal numbers. The
** VM's mask (the OR of its subscriptions) is published to the runtime with
** signal_subscribe (runtime/signal.h); a signal that arrives sets the bit
** in the P's sig_pend and breaks it, and the P's M, between two slices,
** calls deliver here: each subscribed channel is offered the name without
** waiting (a full channel drops it, as Go's Notify). Local, not shared: only
** the VM's own M ever sends to it, so no lock and no copy; a goroutine of
** another VM subscribes with its own go.signal.
**
** Invariants: SUBS holds each channel until signal_stop (the subscription
** keeps it alive); each subscription counts as progress (a signal can wake
** its receiver), so a script waiting on one is not a deadlock.
*/
#include "lsignal.h"

#include <lauxlib.h>

#include "../runtime/chan.h"
#include "../runtime/sched.h"
#include "../runtime/signal.h"
#include "lchan.h"

static const char SUBS_KEY = 's';

static void push_subs(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &SUBS_KEY) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &SUBS_KEY);
}

/* publish — the VM's mask is the OR of its subscriptions (subs at idx) */
static void publish(lua_State *L, int idx) {
  uint64_t mask = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    mask |= (uint64_t)lua_tointeger(L, -1);
    lua_pop(L, 1);
  }
  signal_subscribe(vm_p(L), mask);
}

static uint64_t check_names(lua_State *L) {
  int n = lua_gettop(L);
  if (n == 0) luaL_error(L, "go.signal: at least one signal name expected");
  uint64_t mask = 0;
  for (int i = 1; i <= n; i++) {
    const char *name = luaL_checkstring(L, i);
    int sig = signal_by_name(name);
    if (!sig) luaL_error(L, "go.signal: unknown or reserved signal '%s'", name);
    mask |= UINT64_C(1) << sig;
  }
  return mask;
}

static int go_signal(lua_State *L) {
  uint64_t mask = check_names(L);
  push_subs(L);
  int subs = lua_gettop(L);
  lchan_push_new(L, 1);
  lua_pushvalue(L, -1);
  lua_pushinteger(L, (lua_Integer)mask);
  lua_rawset(L, subs);
  sched_progress_add(vm_p(L)->rt, 1);
  publish(L, subs);
  return 1;
}

static int go_signal_stop(lua_State *L) {
  luaL_argexpected(L, lchan_test(L, 1) != NULL, 1, "channel from go.signal");
  push_subs(L);
  int subs = lua_gettop(L);
  lua_pushvalue(L, 1);
  if (lua_rawget(L, subs) == LUA_TNIL) return 0; /* not subscribed (any more) */
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  lua_rawset(L, subs);
  sched_progress_add(vm_p(L)->rt, -1);
  publish(L, subs);
  return 0;
}

/* offer — every signal of mask that ch (at -2, its mask at -1) wants */
static void offer(lua_State *L, uint64_t mask) {
  uint64_t want = mask & (uint64_t)lua_tointeger(L, -1);
  for (int sig = 1; sig < 64 && want; sig++) {
    if (!(want & (UINT64_C(1) << sig))) continue;
    want &= ~(UINT64_C(1) << sig);
    lua_pushstring(L, signal_name(sig));
    lchan_offer(L, -3, -1);
    lua_pop(L, 1);
  }
}

/* deliver — rt->sig_deliver: p's M, outside any goroutine */
static void deliver(P *p, uint64_t mask) {
  lua_State *L = p->L;
  int top = lua_gettop(L);
  push_subs(L);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    offer(L, mask);
    lua_pop(L, 1);
  }
  lua_settop(L, top);
}

void lsignal_open(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"signal", go_signal}, {"signal_stop", go_signal_stop}, {NULL, NULL}};
  luaL_setfuncs(L, funcs, 0);
  vm_p(L)->rt->sig_deliver = deliver;
}
