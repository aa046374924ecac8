/* ldbhook.c — see ldbhook.h. The behaviour, the arguments and the
** registry table (registry._HOOKKEY, weak keys: thread -> function) are
** the standard debug library's, so scripts and debuggers see no change. */
#include "ldbhook.h"

#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "../runtime/preempt.h"

#define HOOKKEY "_HOOKKEY"

/* thread_arg — the thread argument if there is one (*arg = 1), else L */
static lua_State *thread_arg(lua_State *L, int *arg) {
  *arg = lua_isthread(L, 1) ? 1 : 0;
  return *arg ? lua_tothread(L, 1) : L;
}

static int make_mask(const char *s, int count) {
  int mask = 0;
  if (strchr(s, 'c')) mask |= LUA_MASKCALL;
  if (strchr(s, 'r')) mask |= LUA_MASKRET;
  if (strchr(s, 'l')) mask |= LUA_MASKLINE;
  if (count > 0) mask |= LUA_MASKCOUNT;
  return mask;
}

static void push_mask(lua_State *L, int mask) {
  char s[4];
  int i = 0;
  if (mask & LUA_MASKCALL) s[i++] = 'c';
  if (mask & LUA_MASKRET) s[i++] = 'r';
  if (mask & LUA_MASKLINE) s[i++] = 'l';
  lua_pushlstring(L, s, (size_t)i);
}

static void push_thread_of(lua_State *L, lua_State *L1) {
  if (L != L1 && !lua_checkstack(L1, 1)) luaL_error(L, "stack overflow");
  lua_pushthread(L1);
  lua_xmove(L1, L, 1);
}

/* hook_table — registry._HOOKKEY, made (weak keys) on first use */
static void hook_table(lua_State *L) {
  if (luaL_getsubtable(L, LUA_REGISTRYINDEX, HOOKKEY)) return;
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_pushvalue(L, -1);
  lua_setmetatable(L, -2);
}

static int db_sethook(lua_State *L) {
  int arg, mask = 0, count = 0;
  lua_State *L1 = thread_arg(L, &arg);
  if (lua_isnoneornil(L, arg + 1)) {
    lua_settop(L, arg + 1);
  } else {
    const char *smask = luaL_checkstring(L, arg + 2);
    luaL_checktype(L, arg + 1, LUA_TFUNCTION);
    count = (int)luaL_optinteger(L, arg + 3, 0);
    mask = make_mask(smask, count);
  }
  hook_table(L);
  push_thread_of(L, L1);
  lua_pushvalue(L, arg + 1);
  lua_rawset(L, -3);
  preempt_sethook(L1, mask, count);
  return 0;
}

static int db_gethook(lua_State *L) {
  int arg, mask, count;
  lua_State *L1 = thread_arg(L, &arg);
  lua_Hook h = preempt_gethook(L1, &mask, &count);
  if (h == NULL) {
    luaL_pushfail(L);
    return 1;
  }
  if (h != preempt_user_hook) {
    lua_pushliteral(L, "external hook");
  } else {
    lua_getfield(L, LUA_REGISTRYINDEX, HOOKKEY);
    push_thread_of(L, L1);
    lua_rawget(L, -2);
    lua_remove(L, -2);
  }
  push_mask(L, mask);
  lua_pushinteger(L, count);
  return 3;
}

void ldbhook_open(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, LUA_DBLIBNAME) == LUA_TTABLE) {
    lua_pushcfunction(L, db_sethook);
    lua_setfield(L, -2, "sethook");
    lua_pushcfunction(L, db_gethook);
    lua_setfield(L, -2, "gethook");
  }
  lua_pop(L, 2);
}
