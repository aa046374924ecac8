/* classes.c — fast userdata class checks (see classes.h). */
#include <lauxlib.h>
#include <lua.h>

#include "classes.h"

void class_new(lua_State *L, const void *key, const char *name) {
  luaL_newmetatable(L, name);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, key);
}

void class_define(lua_State *L, const void *key, const char *name, const luaL_Reg *methods,
                  const luaL_Reg *metamethods) {
  class_new(L, key, name);
  lua_newtable(L);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, methods, 1); /* upvalue 1: the metatable (class_method) */
  lua_setfield(L, -2, "__index");
  luaL_setfuncs(L, metamethods, 0);
}

void class_set(lua_State *L, const void *key) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, key);
  lua_setmetatable(L, -2);
}

void *class_test(lua_State *L, int idx, const void *key) {
  void *p = lua_touserdata(L, idx);
  if (!p || !lua_getmetatable(L, idx)) return NULL;
  lua_rawgetp(L, LUA_REGISTRYINDEX, key);
  int eq = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return eq ? p : NULL;
}

void *class_check(lua_State *L, int idx, const void *key, const char *tname) {
  void *p = class_test(L, idx, key);
  if (!p) luaL_typeerror(L, idx, tname);
  return p;
}

void class_weaktable(lua_State *L, const char *mode) {
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushstring(L, mode);
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
}

void *class_method(lua_State *L, int idx, const void *key, const char *tname) {
  void *p = lua_touserdata(L, idx);
  if (p && lua_getmetatable(L, idx)) {
    bool same = lua_rawequal(L, -1, lua_upvalueindex(1));
    lua_pop(L, 1);
    if (same) return p;
  }
  return class_check(L, idx, key, tname);
}
