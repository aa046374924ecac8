/*
** lgroup.c — go.group: the Lua object over runtime/group.c.
**
**   grp = go.group([{timeout = s}])  a group; a child of the caller's group
**   grp:go(fn, ...)                   a member goroutine; its handle
**   grp:wait([timeout])               true | false, first error | nil, "timeout"
**   grp:cancel([reason])              cancels it and its children
**   grp:cancelled()                   whether it is cancelled
**
** The userdata holds one ref on its ggroup (members and children hold the
** others), so a group outlives its object while members run.
*/
#include <lauxlib.h>
#include <lua.h>

#include "../runtime/group.h"
#include "../runtime/sched.h"
#include "args.h"
#include "classes.h"
#include "errstr.h"
#include "gohandle.h"
#include "goluarun.h"
#include "lgroup.h"

#define GROUP_MT "goluarun.group"
static const char GROUP_KEY = 'g';

typedef struct lgroup {
  ggroup *grp; /* a ref; NULL once collected */
} lgroup;

static ggroup *check_group(lua_State *L, int idx) {
  return ((lgroup *)class_check(L, idx, &GROUP_KEY, GROUP_MT))->grp;
}

static double opt_timeout(lua_State *L) {
  if (lua_isnoneornil(L, 1)) return -1;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "timeout");
  double t = lua_isnil(L, -1) ? -1 : args_seconds(L, -1);
  lua_pop(L, 1);
  return t;
}

static int l_group(lua_State *L) {
  double timeout = opt_timeout(L);
  P *p = vm_p(L);
  lgroup *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->grp = NULL;
  class_set(L, &GROUP_KEY);
  u->grp = group_new(p, p->curg ? p->curg->grp : NULL);
  if (timeout >= 0) group_set_timeout(u->grp, deadline_from_seconds(timeout));
  return 1;
}

static int g_go(lua_State *L) {
  ggroup *grp = check_group(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  G *g = go_start(L, 2, lua_gettop(L) - 2, 0);
  group_join(grp, g);
  return 1;
}

/* push_outcome — every member finished: true, or false and the first error */
static int push_outcome(lua_State *L, ggroup *grp) {
  if (!grp->haserr) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushboolean(L, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, grp->errref);
  return 2;
}

static int push_timeout(lua_State *L) {
  lua_pushnil(L);
  lua_pushliteral(L, ERRSTR_TIMEOUT);
  return 2;
}

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  go_waiter_woke(L);
  ggroup *grp = check_group(L, 1);
  return grp->nlive > 0 ? push_timeout(L) : push_outcome(L, grp);
}

/* inside — whether g belongs to grp or to one of its descendants */
static bool inside(G *g, ggroup *grp) {
  for (ggroup *x = g->grp; x; x = x->parent)
    if (x == grp) return true;
  return false;
}

static int g_wait(lua_State *L) {
  ggroup *grp = check_group(L, 1);
  double timeout = lua_isnoneornil(L, 2) ? -1 : args_seconds(L, 2);
  G *g = vm_p(L)->curg;
  if (!g) return luaL_error(L, "grp:wait: not inside a goroutine");
  if (inside(g, grp)) return luaL_error(L, "grp:wait: a member cannot wait for its own group");
  if (grp->nlive == 0) return push_outcome(L, grp);
  if (timeout == 0) return push_timeout(L);
  if (!sched_can_wait(L)) return glr_cannot_block(L, "grp:wait");
  sched_check_cancel(L);
  lua_settop(L, 1);
  return go_park_waiter(L, &grp->waiters, timeout, "group wait", wait_k);
}

static int g_cancel(lua_State *L) {
  ggroup *grp = check_group(L, 1);
  const char *reason = luaL_optstring(L, 2, NULL);
  group_cancel(grp, reason);
  return 0;
}

static int g_cancelled(lua_State *L) {
  lua_pushboolean(L, group_is_cancelled(check_group(L, 1)));
  return 1;
}

static int g_gc(lua_State *L) {
  lgroup *u = lua_touserdata(L, 1);
  if (u->grp) group_unref(u->grp);
  u->grp = NULL;
  return 0;
}

static int g_tostring(lua_State *L) {
  ggroup *grp = check_group(L, 1);
  lua_pushfstring(L, "go.group (%d running%s)", grp->nlive,
                  group_is_cancelled(grp) ? ", cancelled" : "");
  return 1;
}

void lgroup_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"go", g_go},
                                     {"wait", g_wait},
                                     {"cancel", g_cancel},
                                     {"cancelled", g_cancelled},
                                     {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", g_gc}, {"__tostring", g_tostring}, {NULL, NULL}};
  class_define(L, &GROUP_KEY, GROUP_MT, methods, meta);
  lua_pop(L, 1);
  lua_pushcfunction(L, l_group);
  lua_setfield(L, -2, "group");
}
