/*
** args.h — argument checks every binding shares (floor 1: includes nothing
** from bindings/). Lua misuse raises, as luaL_check* do. Runs on the M
** holding the VM's P, like any Lua API call.
*/
#ifndef GLR_ARGS_H
#define GLR_ARGS_H

#include <math.h>

#include <lauxlib.h>
#include <lua.h>

/* args_seconds — a time in seconds at idx (a number, never NaN) */
static inline double args_seconds(lua_State *L, int idx) {
  double s = luaL_checknumber(L, idx);
  if (isnan(s)) luaL_argerror(L, idx, "time is NaN");
  return s;
}

#endif
